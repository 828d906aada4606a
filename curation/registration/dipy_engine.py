"""Rigid/affine registration with dipy's AffineRegistration (the alternative backend).

dipy works on arrays with a voxel-to-world matrix; we hand it SimpleITK's LPS geometry, so its
optimised matrix (static world -> moving world) is already in our convention. Kept selectable
because some groups validate against dipy; SimpleITK is the default because it was measured both
faster and more accurate here (docs/benchmarks.md).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import SimpleITK as sitk

from curation.registration.sitk_engine import EngineResult, foreground_mask
from curation.registration.transforms import index_to_physical_matrix


def as_dipy(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """(array indexed [i, j, k], grid-to-world 4x4 in LPS mm) of a SimpleITK image."""
    arr = sitk.GetArrayFromImage(sitk.Cast(image, sitk.sitkFloat32)).transpose(2, 1, 0)
    return np.ascontiguousarray(arr, dtype=np.float64), index_to_physical_matrix(image)


def register(
    fixed: sitk.Image,
    moving: sitk.Image,
    params: Mapping[str, Any] | None = None,
    initial_matrix: np.ndarray | None = None,
    defaults: bool = False,
) -> EngineResult:
    """Register with dipy. `defaults=True` runs AffineRegistration exactly with dipy's defaults
    (MI 32 bins on every voxel, levels [1000, 500, 100], sigmas [3, 1, 0], factors [4, 2, 1],
    start at identity); otherwise our settings map onto dipy's knobs."""
    from dipy.align.imaffine import AffineRegistration, MutualInformationMetric
    from dipy.align.transforms import AffineTransform3D, RigidTransform3D

    logging.getLogger("dipy").setLevel(logging.WARNING)
    params = params or {}
    started = time.perf_counter()
    static, static_g2w = as_dipy(fixed)
    mov, moving_g2w = as_dipy(moving)
    if defaults:
        reg = AffineRegistration(verbosity=0)
        mask = None
    else:
        shrink = [int(s) for s in params.get("shrink_factors", [4, 2, 1])]
        pct = params.get("sampling_percentage", [None] * len(shrink))
        sampling = None if params.get("sampling") == "none" else float(pct[-1])
        metric = MutualInformationMetric(nbins=int(params.get("histogram_bins", 32)), sampling_proportion=sampling)
        # dipy smooths in voxels; our sigmas are in mm.
        vox = float(min(fixed.GetSpacing()))
        sigmas = [float(s) / vox for s in params.get("smoothing_sigmas_mm", [2.0, 1.0, 0.0])]
        reg = AffineRegistration(metric=metric, level_iters=[int(params.get("iterations", 200))] * len(shrink),
                                 sigmas=sigmas, factors=shrink, verbosity=0)
        mask = None
        # dipy ignores masks when it subsamples; give it one only when it uses every voxel.
        if params.get("mask", "otsu") == "otsu" and sampling is None:
            mask = sitk.GetArrayFromImage(foreground_mask(fixed, int(params.get("mask_dilation_voxels", 2))))
            mask = np.ascontiguousarray(mask.transpose(2, 1, 0)).astype(np.int32)
    start = None if initial_matrix is None else np.asarray(initial_matrix, dtype=np.float64)
    if start is None and not defaults and params.get("initializer") in ("geometry", "moments"):
        start = "centers" if params["initializer"] == "geometry" else "mass"
    rigid = reg.optimize(static, mov, RigidTransform3D(), None, static_grid2world=static_g2w,
                         moving_grid2world=moving_g2w, starting_affine=start, static_mask=mask)
    result = rigid
    if params.get("transform", "rigid") == "affine":
        result = reg.optimize(static, mov, AffineTransform3D(), None, static_grid2world=static_g2w,
                              moving_grid2world=moving_g2w, starting_affine=rigid.affine, static_mask=mask)
    return EngineResult(
        matrix=np.asarray(result.affine, dtype=np.float64),
        metric_value=float("nan"),
        iterations=[],
        stop_condition="dipy L-BFGS-B",
        seconds=time.perf_counter() - started,
        details={"backend": "dipy", "defaults": defaults},
    )


__all__ = ["as_dipy", "register"]
