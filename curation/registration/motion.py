"""Inter-volume motion correction of a 4D series (DWI, DCE, fMRI-like).

Each volume is registered to a reference volume (the first by default, as ProCancer-I does), rigid
unless told otherwise; matrices follow the shared convention (reference space -> volume i space),
so resampling volume i through its matrix puts it back onto the reference grid. Framewise
displacement (Power et al. 2012) and the mean displacement of the head flag the volumes that moved
too much.

Volumes are checked before they are corrected: a volume whose coarse registration to the reference
moved the head less than `aligned_below_mm` keeps identity and is not resampled (the measured
displacement is in its record, `aligned`), so a still series costs one coarse level per volume and a
series without any motion is not rewritten at all (`moved` is empty; the register stage then writes no
motion-corrected copy).
"""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk

from curation.registration.coregister import Registration, describe_matrix, register_images
from curation.registration.similarity import coverage, resample
from curation.registration.sitk_engine import foreground_mask
from curation.registration.transforms import apply, framewise_displacement, physical_points

_INTERP = {"linear": sitk.sitkLinear, "bspline": sitk.sitkBSpline, "nearest": sitk.sitkNearestNeighbor}


@dataclass
class MotionCorrection:
    """Per-volume motion and the corrected volumes (on the reference volume's grid)."""

    reference: int
    registrations: list[Registration | None]  # None for the reference volume
    matrices: list[np.ndarray]
    framewise_displacement_mm: list[float]
    displacement_mm: list[float]  # mean displacement of the head from the reference
    flagged: list[int]
    corrected: list[sitk.Image]
    temporal_sd_before: float
    temporal_sd_after: float
    seconds: float
    centre_mm: list[float] = field(default_factory=list)

    @property
    def still(self) -> list[int]:
        """Volumes (not the reference) whose coarse check found no motion: kept as acquired."""
        return [i for i, r in enumerate(self.registrations)
                if r is not None and r.details.get("aligned", {}).get("kept_identity")]

    @property
    def moved(self) -> list[int]:
        """Volumes that were registered and resampled."""
        return [i for i, r in enumerate(self.registrations) if r is not None and i not in self.still]

    def to_dict(self) -> dict[str, Any]:
        vols = []
        for i, (m, fd, disp) in enumerate(zip(self.matrices, self.framewise_displacement_mm, self.displacement_mm)):
            d = {"volume": i, "matrix": [[float(v) for v in row] for row in m],
                 "framewise_displacement_mm": round(fd, 4), "displacement_mm": round(disp, 4),
                 "flagged": i in self.flagged}
            d.update(describe_matrix(m, self.centre_mm))
            reg = self.registrations[i]
            if reg is not None and "aligned" in reg.details:
                d["aligned"] = reg.details["aligned"]
            vols.append(d)
        return {
            "reference_volume": self.reference,
            "volumes": vols,
            "matrices": [v["matrix"] for v in vols],
            "framewise_displacement_mm": [v["framewise_displacement_mm"] for v in vols],
            "flagged_volumes": list(self.flagged),
            "still_volumes": self.still,
            "moved_volumes": self.moved,
            "mean_framewise_displacement_mm": round(float(np.mean(self.framewise_displacement_mm)), 4),
            "temporal_sd_in_head_before": round(self.temporal_sd_before, 4),
            "temporal_sd_in_head_after": round(self.temporal_sd_after, 4),
            "seconds": round(self.seconds, 3),
        }


def temporal_sd(volumes: Sequence[np.ndarray], mask: np.ndarray) -> float:
    """Mean over the mask of each voxel's standard deviation across volumes."""
    stack = np.stack([v[mask] for v in volumes]).astype(np.float64)
    return float(stack.std(axis=0).mean()) if stack.size else float("nan")


def _same_grid(a: sitk.Image, b: sitk.Image) -> bool:
    return (a.GetSize() == b.GetSize() and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-4)
            and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=1e-6)
            and np.allclose(a.GetDirection(), b.GetDirection(), atol=1e-6))


def motion_correct(
    volumes: Sequence[sitk.Image],
    params: Mapping[str, Any],
    output_interpolator: str = "linear",
) -> MotionCorrection:
    """Register every volume to the reference volume and resample it onto the reference grid."""
    started = time.perf_counter()
    n = len(volumes)
    if n < 2:
        raise ValueError("motion correction needs a 4D series (two volumes or more)")
    ref_index = int(params.get("reference_volume", 0)) % n
    ref = sitk.Cast(volumes[ref_index], sitk.sitkFloat32)
    head = sitk.GetArrayFromImage(foreground_mask(ref, 0)) > 0
    pts = physical_points(ref, head)
    if len(pts) == 0:
        pts = physical_points(ref)
    if len(pts) > 50000:
        pts = pts[:: len(pts) // 50000 + 1]
    centre = pts.mean(axis=0)

    regs: list[Registration | None] = []
    matrices: list[np.ndarray] = []
    for i, vol in enumerate(volumes):
        if i == ref_index:
            regs.append(None)
            matrices.append(np.eye(4))
            continue
        r = register_images(ref, vol, params, similarity=False, same_frame=True)
        regs.append(r)
        matrices.append(r.matrix)

    interp = _INTERP[output_interpolator]
    # A still volume on the reference grid is used as acquired: resampling it through identity changes nothing.
    corrected = [ref if i == ref_index else
                 sitk.Cast(v, sitk.sitkFloat32) if _same_grid(v, ref) and np.array_equal(m, np.eye(4)) else
                 resample(v, ref, m, interp) for i, (v, m) in enumerate(zip(volumes, matrices))]
    fd = framewise_displacement(matrices, centre, float(params.get("fd_radius_mm", 50.0)))
    disp = [float(np.linalg.norm(apply(m, pts) - pts, axis=1).mean()) for m in matrices]
    fd_thr = float(params.get("fd_threshold_mm", 0.5))
    disp_thr = float(params.get("displacement_threshold_mm", 2.0))
    flagged = [i for i in range(n) if fd[i] > fd_thr or disp[i] > disp_thr]

    # Temporal SD over the head where every volume has data both before and after correction.
    sel = head.copy()
    for v, m in zip(volumes, matrices):
        sel &= coverage(v, ref, m) & coverage(v, ref, np.eye(4))
    before = [sitk.GetArrayFromImage(resample(v, ref, np.eye(4), interp)) for v in volumes]
    after = [sitk.GetArrayFromImage(c) for c in corrected]
    return MotionCorrection(
        reference=ref_index,
        registrations=regs,
        matrices=matrices,
        framewise_displacement_mm=fd,
        displacement_mm=disp,
        flagged=flagged,
        corrected=corrected,
        temporal_sd_before=temporal_sd(before, sel),
        temporal_sd_after=temporal_sd(after, sel),
        seconds=time.perf_counter() - started,
        centre_mm=[float(c) for c in centre],
    )


__all__ = ["MotionCorrection", "motion_correct", "temporal_sd"]
