"""Inputs and outputs of the registration commands: a series is a DICOM folder or a NIfTI file, and
the result is written as the same kind (a derived DICOM series, or a NIfTI file)."""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import SimpleITK as sitk
from pydicom.dataset import Dataset

from curation.volume import is_volume_file, load_volumes, read_dicom_series, write_dicom_series, write_volumes


@dataclass
class SeriesInput:
    """Volumes of an input series and, for DICOM, the headers a derived series is built from."""

    path: Path
    volumes: list[sitk.Image]
    datasets: list[list[Dataset]] | None  # None for NIfTI

    @property
    def is_dicom(self) -> bool:
        return self.datasets is not None

    @property
    def series_instance_uid(self) -> str | None:
        return str(self.datasets[0][0].SeriesInstanceUID) if self.datasets else None

    @property
    def frame_of_reference_uid(self) -> str | None:
        if not self.datasets:
            return None
        return str(self.datasets[0][0].get("FrameOfReferenceUID", "")) or None


def read_input(path: str | os.PathLike[str]) -> SeriesInput:
    """A DICOM series folder (or file) or a NIfTI/NRRD/MetaImage file."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist")
    if is_volume_file(p):
        return SeriesInput(p, load_volumes(p), None)
    s = read_dicom_series(p)
    return SeriesInput(p, s.volumes, s.datasets)


def write_output(
    volumes: Sequence[sitk.Image],
    out: str | os.PathLike[str],
    source: SeriesInput,
    derivation_description: str,
    series_suffix: str,
    frame_of_reference_uid: str | None = None,
    series_number_offset: int = 1000,
    source_matrices: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Write `volumes` the way the source came: NIfTI file (3D or 4D) or a derived DICOM series."""
    target = Path(out)
    if not source.is_dicom:
        if not is_volume_file(target):
            raise ValueError(f"the input is a volume file, so --out must name one too (.nii.gz), not {target.name}")
        write_volumes(list(volumes), target)
        return {"output": str(target), "format": "nifti"}
    if is_volume_file(target):
        write_volumes(list(volumes), target)
        return {"output": str(target), "format": "nifti"}
    first = source.datasets[0][0]  # type: ignore[index]
    desc = (str(first.get("SeriesDescription", "") or "").strip()[: 63 - len(series_suffix)] + " " + series_suffix).strip()
    written = write_dicom_series(
        list(volumes), target, source.datasets if len(volumes) > 1 else source.datasets[:1],  # type: ignore[arg-type]
        derivation_description,
        series_description=desc,
        series_number=int(first.get("SeriesNumber", 0) or 0) + series_number_offset,
        frame_of_reference_uid=frame_of_reference_uid,
        source_matrices=source_matrices,
    )
    return {"output": str(written.path), "format": "dicom", "series_instance_uid": written.series_instance_uid,
            "instances": len(written.files)}


__all__ = ["SeriesInput", "read_input", "write_output"]
