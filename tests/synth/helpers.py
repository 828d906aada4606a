"""Reading a synthetic series back the way a consumer would: from its headers only."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom

from synth.phantom import head_labels_at


def read_series(out: Path, series: dict) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(out / f) for f in series["files"]]


def header_points(ds: pydicom.Dataset) -> np.ndarray:
    """LPS centres (rows, cols, 3) of a slice's pixels computed from IPP/IOP/PixelSpacing alone."""
    ipp = np.array([float(v) for v in ds.ImagePositionPatient])
    iop = np.array([float(v) for v in ds.ImageOrientationPatient])
    dr, dc = (float(v) for v in ds.PixelSpacing)
    r = np.arange(int(ds.Rows))[:, None, None]
    c = np.arange(int(ds.Columns))[None, :, None]
    return ipp + c * dc * iop[:3] + r * dr * iop[3:]


def header_labels(ds: pydicom.Dataset, head_scale: float) -> np.ndarray:
    return head_labels_at(header_points(ds) / head_scale)


def patient_of(truth: dict, patient_id: str) -> dict:
    return next(p for p in truth["patients"] if p["patient_id"] == patient_id)
