"""Review image of one registration: fixed | moving before | moving after | checkerboard, in three
planes through the head, so a curator judges a result at a glance (and compares reruns).

Panels are cut from patient space (LPS) on an isotropic grid, whatever the series' orientation and
voxel size: radiological display (patient's left on the image's right), anterior/superior up.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import SimpleITK as sitk

from curation.registration.transforms import matrix_to_transform

_PLANES = {
    # plane: (column axis, row axis) as LPS unit vectors
    "axial": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    "coronal": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),
    "sagittal": ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0)),
}


def _bounds(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    size = np.asarray(image.GetSize()) - 1
    corners = [image.TransformContinuousIndexToPhysicalPoint(tuple(float(v) for v in size * np.array(c)))
               for c in np.ndindex(2, 2, 2)]
    arr = np.asarray(corners)
    return arr.min(axis=0), arr.max(axis=0)


def _plane_grid(fixed: sitk.Image, plane: str, centre: np.ndarray, px: int) -> sitk.Image:
    lo, hi = _bounds(fixed)
    u, v = (np.asarray(a) for a in _PLANES[plane])
    extent = max(float(np.abs(u) @ (hi - lo)), float(np.abs(v) @ (hi - lo)))
    step = extent / px
    w = np.cross(u, v)
    grid = sitk.Image(px, px, 1, sitk.sitkFloat32)
    grid.SetSpacing((step, step, step))
    grid.SetDirection(tuple(np.column_stack([u, v, w]).ravel()))
    grid.SetOrigin(tuple(centre - u * step * (px - 1) / 2 - v * step * (px - 1) / 2))
    return grid


def _cut(image: sitk.Image, grid: sitk.Image, matrix: np.ndarray | None) -> np.ndarray:
    t = matrix_to_transform(np.eye(4) if matrix is None else matrix)
    out = sitk.Resample(sitk.Cast(image, sitk.sitkFloat32), grid, t, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out)[0]


def _window(img: np.ndarray, ref: np.ndarray | None = None) -> np.ndarray:
    src = img if ref is None else ref
    vals = src[src > 0] if np.any(src > 0) else src
    lo, hi = np.percentile(vals, [1, 99.5]) if vals.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    return np.clip((img - lo) / (hi - lo) * 255.0, 0, 255).astype(np.uint8)


def checkerboard(a: np.ndarray, b: np.ndarray, tiles: int = 8) -> np.ndarray:
    """Alternating tiles of `a` and `b` (same shape)."""
    yy, xx = np.indices(a.shape)
    ty = (yy * tiles // a.shape[0]) % 2
    tx = (xx * tiles // a.shape[1]) % 2
    return np.where(ty ^ tx, b, a)


def review_png(
    fixed: sitk.Image,
    moving: sitk.Image,
    matrix: np.ndarray,
    path: str | os.PathLike[str],
    title: str = "",
    tiles: int = 8,
    tile_px: int = 256,
    centre_mm: np.ndarray | None = None,
) -> Path:
    """Write the review PNG and return its path (atomic: temporary file, then rename)."""
    if centre_mm is None:
        lo, hi = _bounds(fixed)
        centre_mm = (lo + hi) / 2
    rows = []
    for plane in ("axial", "coronal", "sagittal"):
        grid = _plane_grid(fixed, plane, np.asarray(centre_mm, dtype=np.float64), tile_px)
        f = _cut(fixed, grid, None)
        before = _cut(moving, grid, None)
        after = _cut(moving, grid, matrix)
        f8, b8, a8 = _window(f), _window(before, after), _window(after)
        rows.append(np.hstack([f8, b8, a8, checkerboard(f8, a8, tiles)]))
    canvas = np.vstack(rows)
    header = np.zeros((28, canvas.shape[1]), dtype=np.uint8)
    for i, label in enumerate(("fixed", "moving before", "moving after", "checkerboard")):
        cv2.putText(header, label, (i * tile_px + 6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 255, 1, cv2.LINE_AA)
    out = np.vstack([header, canvas])
    if title:
        footer = np.zeros((24, out.shape[1]), dtype=np.uint8)
        cv2.putText(footer, title[:120], (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 255, 1, cv2.LINE_AA)
        out = np.vstack([out, footer])
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.tmp.png")
    if not cv2.imwrite(str(tmp), out):
        raise OSError(f"could not write {target.name}")
    os.replace(tmp, target)
    return target


__all__ = ["checkerboard", "review_png"]
