"""NIfTI conversions of a release's volume series, for tools that want one file per volume.

A CT or MR series of more than one slice with a frame of reference is stacked by
`curation.volume` (geometry from the DICOM attributes, slices ordered along the normal, stored
values rescaled to float32; a 4D series as one 4D file) and written with SimpleITK beside its
DICOM as `images/<patient>/<study>/<series>.nii.gz`. The image is built from pixels and geometry
only, so no DICOM header text reaches the NIfTI header. The gzip wrapper is written here with
mtime 0 and no file name, so converting the same series twice gives the same bytes.
"""
from __future__ import annotations

import gzip
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from curation.release.manifest import NIFTI_SUFFIX
from curation.volume import read_dicom_series, write_volumes
from curation.vocabulary import Modality

#: Modalities whose multi-slice series are volumes worth a NIfTI copy.
VOLUME_MODALITIES = (Modality.CT, Modality.MR)
#: The series' DICOM format word (tables' `format` column, `Series.format`).
DICOM_FORMAT = "dicom"


class NotAVolume(ValueError):
    """A series that cannot be one NIfTI volume (the message says why; provenance lists it)."""


def is_volume_row(row: Mapping[str, Any]) -> bool:
    """Whether a series-table row is a candidate volume: DICOM, CT or MR, more than one file."""
    return row.get("format") == DICOM_FORMAT and row.get("modality") in VOLUME_MODALITIES \
        and int(row.get("n_files") or 0) > 1


def nifti_path(first_image: str) -> str:
    """`images/<patient>/<study>/<series>.nii.gz` from the release path of one of its DICOM files."""
    return first_image.rsplit("/", 1)[0] + NIFTI_SUFFIX


def series_nifti(dicom: Sequence[bytes]) -> bytes:
    """The series' instances (any order) as gzipped NIfTI bytes; NotAVolume when they are no volume."""
    with tempfile.TemporaryDirectory(prefix="release-nifti-") as tmp:
        folder = Path(tmp) / "series"
        folder.mkdir()
        for i, data in enumerate(dicom):
            (folder / f"{i:06d}.dcm").write_bytes(data)
        try:
            series = read_dicom_series(folder)
        except ValueError as exc:
            raise NotAVolume(str(exc)) from None
        first = series.datasets[0][0]
        if not first.get("FrameOfReferenceUID"):
            raise NotAVolume("no FrameOfReferenceUID: the slices share no patient coordinate system")
        if series.volumes[0].GetSize()[2] < 2:
            raise NotAVolume("one slice per volume: not a volume")
        written = write_volumes(series.volumes, Path(tmp) / "volume.nii")
        return gzip.compress(written.read_bytes(), compresslevel=6, mtime=0)


__all__ = ["NotAVolume", "VOLUME_MODALITIES", "is_volume_row", "nifti_path", "series_nifti"]
