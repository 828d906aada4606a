"""Quality of dynamic contrast-enhanced series (DCE), in the acquisition's terms (issue 19).

The global foreground signal g(t) per phase (the mean of the voxels above the first phase's Otsu level,
so that the routine motion between phases does not move it) carries the contrast curve; the phases before it rises
(the leading phases below a quarter of the peak enhancement) are the baseline.
- dce_baseline_cv: coefficient of variation of g over the baseline phases (NaN with fewer than two):
  a stable scanner repeats the pre-contrast signal to about noise / sqrt(voxels);
- dce_enhancement: peak enhancement of g over its baseline (relative): a failed or extravasated bolus
  barely enhances; an unstable gain makes it up;
- dce_washout: (peak - last) / (peak - baseline): where the curve ends between its peak and baseline;
- dce_motion_mm: largest displacement (mm) of the foreground's centre between a phase and the first one
  (each phase thresholded at the first phase's Otsu level: contrast only brightens the head);
- dce_mask_change: 1 - the smallest Dice overlap of a phase's foreground with the first one's (catches
  rotations, which hardly move the centre).
"""
from __future__ import annotations

import math

import numpy as np

from curation.quality.masks import head_mask
from curation.quality.results import MetricSet

DCE_METRICS = ("dce_baseline_cv", "dce_enhancement", "dce_washout", "dce_motion_mm", "dce_mask_change")
#: A leading phase belongs to the baseline while its enhancement stays below this fraction of the peak's.
BASELINE_FRACTION = 0.25


def dce_metrics(frames: np.ndarray, spacing: tuple[float, float, float]) -> MetricSet:
    """frames: (phase, z, y, x) in acquisition order."""
    ms = MetricSet()
    f = np.asarray(frames, dtype=np.float32)
    if f.ndim != 4 or f.shape[0] < 3:
        for n in DCE_METRICS:
            ms.nan(n, "needs at least three phases")
        return ms
    head, t = head_mask(f[0], spacing)
    if head.sum() < 50:
        for n in DCE_METRICS:
            ms.nan(n, "no foreground in the first phase")
        return ms
    ms.masks.update({"foreground": int(head.sum()), "phases": int(f.shape[0])})
    g = np.array([float(p[p > t].mean(dtype=np.float64)) if (p > t).any() else 0.0 for p in f])
    peak = int(np.argmax(g))
    rise = g[peak] - g[0]
    n_base = 1
    while n_base < peak and g[n_base] - g[0] < BASELINE_FRACTION * rise:
        n_base += 1
    base = g[:n_base]
    ms.set("dce_baseline_cv", float(base.std() / base.mean()) if n_base >= 2 and base.mean() > 0 else math.nan,
           "fewer than two pre-contrast phases")
    b = float(base.mean())
    ms.set("dce_enhancement", float((g[peak] - b) / b) if b > 0 else math.nan, "no baseline signal")
    ms.set("dce_washout", float((g[peak] - g[-1]) / (g[peak] - b)) if g[peak] - b > 0 and peak < len(g) - 1
           else math.nan, "no enhancement, or the peak is the last phase")
    grids = np.indices(head.shape[1:], dtype=np.float64)
    sp = np.asarray(spacing, dtype=np.float64)
    fg0 = f[0] > t
    n0 = max(int(fg0.sum()), 1)

    def centre(m: np.ndarray) -> np.ndarray:
        z = np.flatnonzero(m.any(axis=(1, 2)))
        counts = m.sum(axis=(1, 2)).astype(np.float64)
        plane = m.sum(axis=0).astype(np.float64)
        tot = max(plane.sum(), 1.0)
        return np.array([(np.arange(m.shape[0]) * counts).sum() / tot if z.size else 0.0,
                         (grids[0] * plane).sum() / tot, (grids[1] * plane).sum() / tot]) * sp

    c0 = centre(fg0)
    moves, dice = [], []
    for p in f[1:]:
        m = p > t
        moves.append(float(np.linalg.norm(centre(m) - c0)))
        dice.append(2.0 * np.count_nonzero(m & fg0) / (n0 + max(int(m.sum()), 1)))
    ms.set("dce_motion_mm", max(moves))
    ms.set("dce_mask_change", 1.0 - min(dice))
    ms.notes["dce_baseline_phases"] = n_base
    return ms
