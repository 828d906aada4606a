"""Tissue summary statistics exactly as `mriqc.qc.anatomical.summary_stats` computes them for a binary
mask, in linear time.

Why not call summary_stats itself: it sorts every voxel of the volume once per tissue through a
weighted-quantile routine (pandas groupby), about a second on a 256x256x64 volume. For a binary
mask the weighted statistics reduce to plain ones on the voxels in the mask, and because MRIQC rounds
the data to integers first, its quantiles (SAS definition 5) follow from a bincount. The test suite
checks equality with summary_stats (rtol 1e-6).
"""
from __future__ import annotations

import numpy as np
from scipy.stats import kurtosis

#: statsmodels' MAD normaliser, Gaussian.ppf(3/4).
MAD_C = 0.6744897501960817


def _sas_quantiles(counts: np.ndarray, values: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Quantiles of data given as distinct sorted `values` with `counts` (statsmodels DescrStatsW)."""
    cw = np.cumsum(counts, dtype=np.float64)
    total = cw[-1]
    targets = probs * total
    ii = np.searchsorted(cw, targets)
    ii = np.minimum(ii, len(cw) - 1)
    out = values[ii].astype(np.float64)
    exact = np.abs(targets - cw[ii]) < 1e-10
    exact &= ii < len(cw) - 1
    out[exact] = (values[ii[exact]] + values[np.minimum(ii[exact] + 1, len(values) - 1)]) / 2.0
    return out


def tissue_stats(data: np.ndarray, mask: np.ndarray, decimals: int = 4, kurt: bool = True) -> dict[str, float]:
    """mean, median, p95, p05, k, stdv, mad, n of `data` in a binary `mask` (MRIQC's definitions:
    data rounded to integers for the weighted moments and quantiles; kurtosis and MAD on the raw
    values; every figure rounded to 4 decimals). `kurt=False` skips the kurtosis (no metric uses it)."""
    raw = np.asarray(data)[np.asarray(mask, dtype=bool)]
    n = int(raw.size)
    if n == 0:
        nan = float("nan")
        return {"mean": nan, "median": nan, "p95": nan, "p05": nan, "k": nan, "stdv": nan, "mad": nan, "n": 0.0}
    r = np.round(raw, 0)
    lo, hi = float(r.min()), float(r.max())
    if hi - lo <= 5_000_000:
        off = int(lo)
        counts = np.bincount((r - off).astype(np.int32) if hi - lo < 2**31 else (r - off).astype(np.int64))
        values = np.nonzero(counts)[0]
        counts = counts[values]
        values = values.astype(np.float64) + off
    else:
        values, counts = np.unique(r.astype(np.float64), return_counts=True)
    mean = float((values * counts).sum() / n)
    var = float((counts * (values - mean) ** 2).sum() / n)
    p05, median, p95 = _sas_quantiles(counts, values, np.array([0.05, 0.5, 0.95]))
    mad = float(np.median(np.abs(raw - median) / MAD_C))
    return {
        "mean": round(mean, decimals),
        "median": round(float(median), decimals),
        "p95": round(float(p95), decimals),
        "p05": round(float(p05), decimals),
        "k": round(float(kurtosis(raw)), decimals) if kurt else float("nan"),
        "stdv": round(float(np.sqrt(var)), decimals),
        "mad": round(mad, decimals),
        "n": float(n),
    }
