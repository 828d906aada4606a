"""Temporal metrics of 4D series (time or diffusion/contrast phases along the first axis).

- tsnr: median over the foreground of mean_t / std_t (MRIQC functional's tSNR);
- dvars: mean over frames of the RMS frame-to-frame difference in the foreground, as a percentage
  of the mean foreground signal (Power et al. 2012, normalised);
- gsr_drift: relative change of the global foreground signal from the first to the last frame.

For DWI, tSNR across b-values measures diffusion contrast, not stability: it is computed over the
volumes of the most frequent b-value when at least 3 share it, else NaN with that reason. For DCE the
signal changes by design; the numbers are kept but labelled in `notes`.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from curation.quality.masks import head_mask
from curation.quality.results import MetricSet
from curation.vocabulary import SeriesKind


def temporal_metrics(frames: np.ndarray, spacing: tuple[float, float, float], kind: str | None = None,
                     b_values: Sequence[float] | None = None) -> MetricSet:
    """frames: (t, slices, rows, columns)."""
    ms = MetricSet()
    f = np.asarray(frames, dtype=np.float32)
    if f.ndim != 4 or f.shape[0] < 2:
        for n in ("tsnr", "dvars", "gsr_drift"):
            ms.nan(n, "needs at least two volumes")
        return ms
    use = np.arange(f.shape[0])
    if kind == SeriesKind.DWI or (b_values and len(set(b_values)) > 1):
        if b_values and len(b_values) == f.shape[0]:
            b, n = Counter(round(float(x)) for x in b_values).most_common(1)[0]
            if n >= 3:
                use = np.array([i for i, x in enumerate(b_values) if round(float(x)) == b])
                ms.notes["tsnr_b_value"] = b
            else:
                for name in ("tsnr", "dvars", "gsr_drift"):
                    ms.nan(name, "diffusion series: fewer than 3 volumes share a b-value")
                return ms
        else:
            for name in ("tsnr", "dvars", "gsr_drift"):
                ms.nan(name, "diffusion series without per-volume b-values")
            return ms
    if kind == SeriesKind.DCE:
        ms.notes["temporal"] = "DCE: signal changes with the contrast bolus by design"
    sub = f[use]
    mean = sub.mean(axis=0)
    fg, _ = head_mask(mean, spacing)
    ms.masks.update({"foreground": int(fg.sum()), "volumes": int(len(use))})
    if fg.sum() < 10:
        for n in ("tsnr", "dvars", "gsr_drift"):
            ms.nan(n, "no foreground in the mean volume")
        return ms
    std = sub.std(axis=0)
    m, s = mean[fg], std[fg]
    ok = s > 0
    ms.set("tsnr", float(np.median(m[ok] / s[ok])) if ok.any() else math.nan, "no temporal variation")
    if len(use) >= 2:
        diffs = np.diff(sub[:, fg], axis=0)
        rms = np.sqrt((diffs.astype(np.float64) ** 2).mean(axis=1))
        ms.set("dvars", float(rms.mean() / max(float(m.mean()), 1e-12) * 100.0))
        g = sub[:, fg].mean(axis=1)
        ms.set("gsr_drift", float((g[-1] - g[0]) / max(float(g[0]), 1e-12)))
    return ms
