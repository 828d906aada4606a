"""Spatial transforms as 4x4 homogeneous matrices in patient space (LPS, mm).

Convention (issue 5, SimpleITK's resampling convention): a matrix maps a point of the *fixed*
image's physical space to the corresponding point of the *moving* image's physical space. One
plain matrix keeps results comparable across backends (SimpleITK, dipy) and storable as JSON.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk


def rigid_matrix(
    rotation_deg: Sequence[float],
    translation_mm: Sequence[float],
    centre_mm: Sequence[float] = (0.0, 0.0, 0.0),
) -> np.ndarray:
    """4x4 rigid matrix: rotation about x, then y, then z (degrees; R = Rz Ry Rx) about `centre_mm`, then a shift.

    The same angles as ITK's Euler3DTransform with ComputeZYX on, and as `euler_angles_deg` reads back.
    """
    ax, ay, az = (float(np.deg2rad(a)) for a in rotation_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    r = rz @ ry @ rx
    c = np.asarray(centre_mm, dtype=np.float64)
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = c - r @ c + np.asarray(translation_mm, dtype=np.float64)
    return m


def transform_to_matrix(transform: sitk.Transform) -> np.ndarray:
    """4x4 matrix of a linear SimpleITK transform (Euler, Versor, Similarity, Affine, Translation...)."""
    if transform.GetDimension() != 3:
        raise ValueError("only 3D transforms are supported")
    if transform.GetName() == "CompositeTransform":
        comp = sitk.CompositeTransform(transform)
        out = np.eye(4)
        # A composite applies its last transform first: T(x) = T0(T1(...Tn(x))).
        for i in range(comp.GetNumberOfTransforms()):
            out = out @ transform_to_matrix(comp.GetNthTransform(i))
        return out
    transform = transform.Downcast()
    name = transform.GetName()
    if name == "TranslationTransform":
        m = np.eye(4)
        m[:3, 3] = transform.GetOffset()
        return m
    if name == "IdentityTransform":
        return np.eye(4)
    if not hasattr(transform, "GetMatrix"):
        raise ValueError(f"not a linear transform: {name}")
    a = np.asarray(transform.GetMatrix(), dtype=np.float64).reshape(3, 3)
    c = np.asarray(transform.GetCenter(), dtype=np.float64)
    t = np.asarray(transform.GetTranslation(), dtype=np.float64)
    m = np.eye(4)
    m[:3, :3] = a
    m[:3, 3] = t + c - a @ c
    return m


def matrix_to_transform(matrix: np.ndarray) -> sitk.AffineTransform:
    """SimpleITK AffineTransform equal to a 4x4 matrix (for resampling)."""
    m = np.asarray(matrix, dtype=np.float64)
    t = sitk.AffineTransform(3)
    t.SetMatrix(tuple(m[:3, :3].ravel()))
    t.SetTranslation(tuple(m[:3, 3]))
    return t


def rotation_angle_deg(matrix: np.ndarray) -> float:
    """Angle (degrees) of the rotation part (axis-angle), from the nearest rotation (polar decomposition)."""
    r = nearest_rotation(np.asarray(matrix)[:3, :3])
    cos = (np.trace(r) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def nearest_rotation(a: np.ndarray) -> np.ndarray:
    """Closest proper rotation to a 3x3 matrix (SVD), so affine results still report a rotation."""
    u, _, vt = np.linalg.svd(a)
    r = u @ vt
    if np.linalg.det(r) < 0:
        u[:, -1] *= -1
        r = u @ vt
    return r


def euler_angles_deg(matrix: np.ndarray) -> tuple[float, float, float]:
    """Rotation about x, y, z (degrees) with R = Rz Ry Rx, the Euler3DTransform convention."""
    r = nearest_rotation(np.asarray(matrix)[:3, :3])
    ay = float(np.arcsin(np.clip(-r[2, 0], -1.0, 1.0)))
    ax = float(np.arctan2(r[2, 1], r[2, 2]))
    az = float(np.arctan2(r[1, 0], r[0, 0]))
    return (float(np.degrees(ax)), float(np.degrees(ay)), float(np.degrees(az)))


def translation_about(matrix: np.ndarray, centre_mm: Sequence[float]) -> np.ndarray:
    """Shift (mm) of the point `centre_mm`: the translation when rotating about that centre.

    The raw last column depends on where the origin is (far from the head it mixes in rotation);
    the displacement of the head's centre is what a reader means by "moved by N mm".
    """
    m = np.asarray(matrix, dtype=np.float64)
    c = np.asarray(centre_mm, dtype=np.float64)
    return m[:3, :3] @ c + m[:3, 3] - c


def apply(matrix: np.ndarray, points_mm: np.ndarray) -> np.ndarray:
    """Apply a 4x4 matrix to points (..., 3)."""
    m = np.asarray(matrix, dtype=np.float64)
    p = np.asarray(points_mm, dtype=np.float64)
    return p @ m[:3, :3].T + m[:3, 3]


def target_registration_error(true_matrix: np.ndarray, estimated_matrix: np.ndarray, points_mm: np.ndarray) -> float:
    """Mean distance (mm) between where the true and the estimated mapping send each point."""
    d = apply(true_matrix, points_mm) - apply(estimated_matrix, points_mm)
    return float(np.linalg.norm(d, axis=-1).mean())


def rotation_error_deg(true_matrix: np.ndarray, estimated_matrix: np.ndarray) -> float:
    """Angle (degrees) of the residual rotation between the true and the estimated matrix."""
    r_true = nearest_rotation(np.asarray(true_matrix)[:3, :3])
    r_est = nearest_rotation(np.asarray(estimated_matrix)[:3, :3])
    m = np.eye(4)
    m[:3, :3] = r_true.T @ r_est
    return rotation_angle_deg(m)


def image_centre(image: sitk.Image) -> np.ndarray:
    """Physical (LPS mm) centre of an image's voxel grid."""
    size = np.asarray(image.GetSize(), dtype=np.float64)
    return np.asarray(image.TransformContinuousIndexToPhysicalPoint(tuple((size - 1) / 2.0)))


def index_to_physical_matrix(image: sitk.Image) -> np.ndarray:
    """4x4 matrix from (i, j, k) voxel index to LPS mm: origin + D diag(spacing) index."""
    d = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    s = np.asarray(image.GetSpacing(), dtype=np.float64)
    m = np.eye(4)
    m[:3, :3] = d @ np.diag(s)
    m[:3, 3] = image.GetOrigin()
    return m


def physical_points(image: sitk.Image, mask: np.ndarray | None = None) -> np.ndarray:
    """LPS points (N, 3) of an image's voxels (all, or where `mask` (z, y, x) is true)."""
    if mask is None:
        mask = np.ones(image.GetSize()[::-1], dtype=bool)
    kji = np.argwhere(mask)
    ijk = kji[:, ::-1].astype(np.float64)
    return apply(index_to_physical_matrix(image), ijk)


def framewise_displacement(matrices: Sequence[np.ndarray], centre_mm: Sequence[float], radius_mm: float = 50.0) -> list[float]:
    """Power et al. (2012) framewise displacement between consecutive volumes (mm); 0 for the first.

    FD = sum |d translation| + radius * sum |d rotation (rad)|, from each volume's Euler
    parameters about `centre_mm` (the head's centre), as FSL/fMRIPrep report it.
    """
    params = []
    for m in matrices:
        ang = np.deg2rad(euler_angles_deg(m))
        params.append(np.concatenate([translation_about(m, centre_mm), ang]))
    fd = [0.0]
    for prev, cur in zip(params[:-1], params[1:]):
        d = np.abs(cur - prev)
        fd.append(float(d[:3].sum() + radius_mm * d[3:].sum()))
    return fd
