"""Co-registration of two volumes: one call, either backend, a result in the shared convention.

`register_images(fixed, moving, params)` returns the 4x4 matrix mapping fixed-space points (LPS mm)
to moving-space points, what it means in degrees and mm, and the before/after similarity.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk

from curation.registration import dipy_engine, sitk_engine
from curation.registration.similarity import before_after
from curation.registration.transforms import euler_angles_deg, image_centre, rotation_angle_deg, translation_about


@dataclass
class Registration:
    """One registration result (JSON-able through `to_dict`)."""

    matrix: np.ndarray
    backend: str
    transform: str
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def describe(self, centre_mm: np.ndarray | None = None) -> dict[str, Any]:
        return describe_matrix(self.matrix, centre_mm)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "matrix": [[float(v) for v in row] for row in self.matrix],
            "backend": self.backend,
            "transform": self.transform,
            "seconds": round(self.seconds, 3),
            "metrics": {k: (round(v, 6) if isinstance(v, float) else v) for k, v in self.metrics.items()},
        }
        out.update(describe_matrix(self.matrix, self.details.get("centre_mm")))
        out["optimizer"] = {k: v for k, v in self.details.items() if k != "centre_mm"}
        return out


def describe_matrix(matrix: np.ndarray, centre_mm: Any = None) -> dict[str, Any]:
    """Rotation (degrees) and translation (mm) read from a fixed -> moving matrix.

    translation_mm is the matrix's last column (rotation about the LPS origin); the shift of the
    head's centre (rotation about it), which is what "moved by N mm" means, is given too.
    """
    m = np.asarray(matrix, dtype=np.float64)
    out: dict[str, Any] = {
        "rotation_deg": round(rotation_angle_deg(m), 6),
        "rotation_xyz_deg": [round(v, 6) for v in euler_angles_deg(m)],
        "translation_mm": [round(float(v), 6) for v in m[:3, 3]],
    }
    if centre_mm is not None:
        c = np.asarray(centre_mm, dtype=np.float64)
        out["centre_mm"] = [round(float(v), 4) for v in c]
        out["translation_at_centre_mm"] = [round(float(v), 6) for v in translation_about(m, c)]
    if not np.allclose(m[:3, :3] @ m[:3, :3].T, np.eye(3), atol=1e-6):
        out["scales"] = [round(float(v), 6) for v in np.linalg.svd(m[:3, :3], compute_uv=False)]
    return out


def register_images(
    fixed: sitk.Image,
    moving: sitk.Image,
    params: Mapping[str, Any],
    initial_matrix: np.ndarray | None = None,
    similarity: bool = True,
    same_frame: bool = False,
) -> Registration:
    """Register `moving` to `fixed` with the settings of one config section (e.g. cfg["coregister"]).

    same_frame: both images are known to share one scanner frame; the SimpleITK backend may then end at
    identity after a coarse check (`aligned_below_mm`, recorded in `details["aligned"]`)."""
    backend = str(params.get("backend", "simpleitk"))
    if backend == "dipy":
        res = dipy_engine.register(fixed, moving, params, initial_matrix)
    else:
        res = sitk_engine.register(fixed, moving, params, initial_matrix, same_frame=same_frame)
    details = dict(res.details)
    details.setdefault("centre_mm", [float(v) for v in image_centre(fixed)])
    details.update({"iterations": res.iterations, "stop_condition": res.stop_condition,
                    "metric_value": res.metric_value})
    metrics = before_after(fixed, moving, res.matrix, int(params.get("histogram_bins", 32))) if similarity else {}
    return Registration(res.matrix, backend, str(params.get("transform", "rigid")), res.seconds, metrics, details)


__all__ = ["Registration", "describe_matrix", "register_images"]
