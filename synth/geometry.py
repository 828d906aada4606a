"""Slice geometry of a synthetic acquisition in DICOM patient coordinates (LPS, mm).

DICOM's rule (PS3.3 C.7.6.2.1.1): the centre of pixel (row r, column c) of a slice lies at
ImagePositionPatient + c * PixelSpacing[1] * X + r * PixelSpacing[0] * Y, with X, Y the two
direction cosines of ImageOrientationPatient. Slices follow the normal N = X x Y, one
SpacingBetweenSlices apart. Sampling the analytic phantom at exactly these points makes the header
and the pixels agree by construction.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: (row direction X, column direction Y) of the three standard planes, as scanners write them.
PLANE_AXES: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "axial": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    "sagittal": ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0)),
    "coronal": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),
}


def _rot_x(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


@dataclass(frozen=True)
class SliceGeometry:
    """A stack of parallel slices: orientation, size, spacing and the position of the first pixel."""

    plane: str
    rows: int
    columns: int
    n_slices: int
    row_spacing: float  # PixelSpacing[0]: distance between rows (along Y)
    col_spacing: float  # PixelSpacing[1]: distance between columns (along X)
    slice_spacing: float  # SpacingBetweenSlices
    slice_thickness: float
    x_dir: tuple[float, float, float]
    y_dir: tuple[float, float, float]
    origin: tuple[float, float, float]  # ImagePositionPatient of slice 0

    @property
    def normal(self) -> np.ndarray:
        return np.cross(np.asarray(self.x_dir), np.asarray(self.y_dir))

    @property
    def orientation(self) -> list[float]:
        """ImageOrientationPatient, rounded as scanners write it (6 decimals)."""
        return [round(float(v), 6) for v in (*self.x_dir, *self.y_dir)]

    def position(self, k: int) -> list[float]:
        """ImagePositionPatient of slice k (mm, 4 decimals)."""
        p = np.asarray(self.origin) + k * self.slice_spacing * self.normal
        return [round(float(v), 4) for v in p]

    def slice_location(self, k: int) -> float:
        """SliceLocation: the position along the normal, as most scanners write it."""
        return round(float(np.dot(self.position(k), self.normal)), 4)

    def points(self, k: int | None = None) -> np.ndarray:
        """LPS points of voxel centres, shape (slices, rows, columns, 3), or (rows, columns, 3) for one slice.

        Computed from the rounded header values, so the pixels match what a reader of the header computes.
        """
        x = np.asarray(self.orientation[:3])
        y = np.asarray(self.orientation[3:])
        cols = np.arange(self.columns) * self.col_spacing
        rows = np.arange(self.rows) * self.row_spacing
        plane = rows[:, None, None] * y + cols[None, :, None] * x
        ks = range(self.n_slices) if k is None else [k]
        out = np.stack([np.asarray(self.position(i)) + plane for i in ks])
        return out if k is None else out[0]

    def affine_lps(self) -> np.ndarray:
        """4x4 matrix from voxel index (column, row, slice) to LPS mm."""
        a = np.eye(4)
        a[:3, 0] = np.asarray(self.orientation[:3]) * self.col_spacing
        a[:3, 1] = np.asarray(self.orientation[3:]) * self.row_spacing
        a[:3, 2] = self.normal * self.slice_spacing
        a[:3, 3] = self.position(0)
        return a


def centred_stack(
    plane: str,
    matrix: int,
    fov_mm: float,
    n_slices: int,
    coverage_mm: float,
    gap_fraction: float = 0.0,
    tilt_deg: float = 0.0,
    centre: tuple[float, float, float] = (0.0, 0.0, 0.0),
    rows: int | None = None,
) -> SliceGeometry:
    """A stack of `n_slices` covering `coverage_mm` along the normal, centred on `centre`.

    `gap_fraction` > 0 makes a 2D acquisition with a slice gap (thickness < spacing); `tilt_deg`
    angulates the stack about the left-right axis (as for an AC-PC-aligned axial), still read as
    its nearest plane.
    """
    x, y = PLANE_AXES[plane]
    if tilt_deg:
        r = _rot_x(tilt_deg)
        x = tuple(float(v) for v in r @ np.asarray(x))
        y = tuple(float(v) for v in r @ np.asarray(y))
    rows = rows or matrix
    spacing = round(coverage_mm / n_slices, 3)
    thickness = round(spacing * (1.0 - gap_fraction), 3)
    pix = round(fov_mm / matrix, 4)
    xv, yv = np.asarray(x), np.asarray(y)
    n = np.cross(xv, yv)
    c = np.asarray(centre)
    origin = (
        c
        - (matrix - 1) / 2.0 * pix * xv
        - (rows - 1) / 2.0 * pix * yv
        - (n_slices - 1) / 2.0 * spacing * n
    )
    return SliceGeometry(
        plane=plane, rows=rows, columns=matrix, n_slices=n_slices, row_spacing=pix, col_spacing=pix,
        slice_spacing=spacing, slice_thickness=thickness, x_dir=x, y_dir=y,
        origin=tuple(round(float(v), 4) for v in origin),
    )
