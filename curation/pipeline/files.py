"""Store objects as local files for the libraries that read paths (pydicom series, NIfTI, PNG)."""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from curation.store import Store, Zone


@contextmanager
def local_files(store: Store, zone: Zone, keys: Sequence[str]) -> Iterator[list[Path]]:
    """The objects as local files: in place for a local store, downloaded to a temp dir otherwise."""
    paths = [store.local_path(zone, k) for k in keys]
    if all(p is not None for p in paths):
        yield [p for p in paths if p is not None]
        return
    tmp = Path(tempfile.mkdtemp(prefix="curate-series-"))
    try:
        # the suffix tells NIfTI/PNG readers what a file is; DICOM keys end in .dcm already
        yield [store.download(zone, k, tmp / f"{i:06d}{_suffix(k)}") for i, k in enumerate(keys)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _suffix(key: str) -> str:
    return ".nii.gz" if key.endswith(".nii.gz") else (Path(key).suffix or ".dcm")


__all__ = ["local_files"]
