"""Similarity of two images on one grid: mutual information and normalised cross-correlation.

Stored before/after each registration so a curator (and the QC dashboard) can see that a
registration improved the overlap; MI is the one that means something across contrasts, NCC is
the intuitive one within a contrast.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from curation.registration.sitk_engine import foreground_mask
from curation.registration.transforms import matrix_to_transform


def mutual_information(a: np.ndarray, b: np.ndarray, bins: int = 32) -> float:
    """Mutual information (nats) of paired samples, from a joint histogram over their ranges."""
    if a.size < 2:
        return float("nan")
    joint, _, _ = np.histogram2d(a.ravel(), b.ravel(), bins=bins)
    p = joint / joint.sum()
    px = p.sum(axis=1, keepdims=True)
    py = p.sum(axis=0, keepdims=True)
    nz = p > 0
    return float((p[nz] * np.log(p[nz] / (px @ py)[nz])).sum())


def normalized_cross_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of paired samples (1 = identical up to gain and offset)."""
    if a.size < 2:
        return float("nan")
    a = a.ravel().astype(np.float64) - a.mean()
    b = b.ravel().astype(np.float64) - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float("nan")


def resample(moving: sitk.Image, reference: sitk.Image, matrix: np.ndarray | None = None,
             interpolator: int = sitk.sitkLinear, default_value: float = 0.0) -> sitk.Image:
    """`moving` on `reference`'s grid: each reference voxel x takes moving's value at matrix(x)."""
    transform = matrix_to_transform(np.eye(4) if matrix is None else matrix)
    return sitk.Resample(moving, reference, transform, interpolator, float(default_value), sitk.sitkFloat32)


def coverage(moving: sitk.Image, reference: sitk.Image, matrix: np.ndarray | None = None) -> np.ndarray:
    """Boolean (z, y, x) on `reference`'s grid: where the mapped point falls inside `moving`'s FOV."""
    ones = sitk.Image(moving.GetSize(), sitk.sitkUInt8) + 1
    ones.CopyInformation(moving)
    out = sitk.Resample(ones, reference, matrix_to_transform(np.eye(4) if matrix is None else matrix),
                        sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return sitk.GetArrayFromImage(out) > 0


def before_after(fixed: sitk.Image, moving: sitk.Image, matrix: np.ndarray, bins: int = 32) -> dict[str, float]:
    """MI and NCC between the fixed image and the moving image as it lay (identity) and as registered,
    over the fixed image's foreground where the moving image has data."""
    mask = sitk.GetArrayFromImage(foreground_mask(fixed, 0)) > 0
    # One region for both, so the numbers compare: the fixed foreground seen by both placements.
    sel = mask & coverage(moving, fixed, np.eye(4)) & coverage(moving, fixed, matrix)
    f = sitk.GetArrayFromImage(sitk.Cast(fixed, sitk.sitkFloat32))[sel]
    out: dict[str, float] = {"overlap_voxels": int(sel.sum())}
    for label, m in (("before", np.eye(4)), ("after", matrix)):
        moved = sitk.GetArrayFromImage(resample(moving, fixed, m))[sel]
        out[f"mi_{label}"] = mutual_information(f, moved, bins)
        out[f"ncc_{label}"] = normalized_cross_correlation(f, moved)
    return out


__all__ = ["before_after", "coverage", "mutual_information", "normalized_cross_correlation", "resample"]
