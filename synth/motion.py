"""Known rigid head motion between the volumes of a 4D series.

Convention (the one SimpleITK uses for resampling, and the one issue 5 reports): the matrix T of
volume i maps a point x of the reference volume's physical space (LPS mm) to the point T(x) of
volume i's physical space where the same anatomy now lies. So volume i at grid point y shows the
anatomy that was at T^-1(y) in the reference: we sample the analytic phantom there, exactly,
without interpolation.

Rotation angles follow SimpleITK's Euler3DTransform (ComputeZYX off): R = Rz(rz) @ Rx(rx) @ Ry(ry),
about the centre (0, 0, 0), so `sitk.Euler3DTransform((0,0,0), *radians(rotation_deg), translation_mm)`
reproduces the matrix.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _axis_rotation(axis: str, rad: float) -> np.ndarray:
    c, s = np.cos(rad), np.sin(rad)
    if axis == "x":
        return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    if axis == "y":
        return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def euler_matrix(rotation_deg: tuple[float, float, float], translation_mm: tuple[float, float, float]) -> np.ndarray:
    """4x4 homogeneous matrix of a rigid transform, SimpleITK Euler3D order, centre at the origin."""
    rx, ry, rz = np.deg2rad(np.asarray(rotation_deg, dtype=np.float64))
    m = np.eye(4)
    m[:3, :3] = _axis_rotation("z", rz) @ _axis_rotation("x", rx) @ _axis_rotation("y", ry)
    m[:3, 3] = np.asarray(translation_mm, dtype=np.float64)
    return m


def apply_inverse(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """T^-1(y) for points (..., 3): where the anatomy shown at y in the moved volume came from."""
    r = matrix[:3, :3]
    t = matrix[:3, 3]
    return (np.asarray(points) - t) @ r  # (R^T (y - t)) written for row vectors


@dataclass(frozen=True)
class VolumeMotion:
    """Motion of one volume relative to the reference volume."""

    volume: int
    rotation_deg: tuple[float, float, float]
    translation_mm: tuple[float, float, float]

    @property
    def matrix(self) -> np.ndarray:
        return euler_matrix(self.rotation_deg, self.translation_mm)

    def to_json(self) -> dict:
        return {
            "volume": self.volume,
            "rotation_deg": [float(v) for v in self.rotation_deg],
            "translation_mm": [float(v) for v in self.translation_mm],
            "matrix": [[float(round(v, 12)) for v in row] for row in self.matrix],
            "centre_mm": [0.0, 0.0, 0.0],
        }


def random_motions(
    n_volumes: int, rng: np.random.Generator, max_rotation_deg: float, max_translation_mm: float, reference: int = 0
) -> list[VolumeMotion]:
    """Independent rigid poses per volume (the reference volume stays at identity)."""
    out = []
    for v in range(n_volumes):
        if v == reference or max_rotation_deg == 0 and max_translation_mm == 0:
            out.append(VolumeMotion(v, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)))
            continue
        rot = tuple(float(round(x, 3)) for x in rng.uniform(-max_rotation_deg, max_rotation_deg, 3))
        tra = tuple(float(round(x, 3)) for x in rng.uniform(-max_translation_mm, max_translation_mm, 3))
        out.append(VolumeMotion(v, rot, tra))  # type: ignore[arg-type]
    return out
