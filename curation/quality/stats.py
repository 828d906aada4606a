"""Tissue summary statistics exactly as `mriqc.qc.anatomical.summary_stats` computes them for a binary
mask, in linear time -- and, for volumes of integer stored values, every order statistic the metrics
need from a histogram of those values.

Why not call summary_stats itself: it sorts every voxel of the volume once per tissue through a
weighted-quantile routine (pandas groupby), about a second on a 256x256x64 volume. For a binary
mask the weighted statistics reduce to plain ones on the voxels in the mask, and because MRIQC rounds
the data to integers first, its quantiles (SAS definition 5) follow from a bincount. The test suite
checks equality with summary_stats (rtol 1e-6).

Why levels: MR magnitude volumes hold integer stored values (12-16 bits), and the harmonised data
MRIQC's functions see is each value times one float32 factor -- a non-decreasing map. So the k-th
smallest voxel of any mask is the value of the k-th smallest stored code, which a histogram of the
codes (a few ms) gives without the copies and partial sorts (tens of ms each) of np.median and
np.percentile on millions of voxels. Every figure is computed with the same float32 operations numpy
applies per voxel, so the results are identical, not merely close.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
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


def _empty() -> dict[str, float]:
    nan = float("nan")
    return {"mean": nan, "median": nan, "p95": nan, "p05": nan, "k": nan, "stdv": nan, "mad": nan, "n": 0.0}


def _summary(values: np.ndarray, counts: np.ndarray, n: int, decimals: int) -> tuple[dict[str, float], np.float64]:
    """The moment and quantile figures from the distinct rounded values and their counts, and the
    unrounded median (the centre of the MAD)."""
    mean = float((values * counts).sum() / n)
    var = float((counts * (values - mean) ** 2).sum() / n)
    p05, median, p95 = _sas_quantiles(counts, values, np.array([0.05, 0.5, 0.95]))
    return {"mean": round(mean, decimals), "median": round(float(median), decimals), "p95": round(float(p95), decimals),
            "p05": round(float(p05), decimals), "stdv": round(float(np.sqrt(var)), decimals), "n": float(n)}, median


def tissue_stats(data: np.ndarray, mask: np.ndarray, decimals: int = 4, kurt: bool = True) -> dict[str, float]:
    """mean, median, p95, p05, k, stdv, mad, n of `data` in a binary `mask` (MRIQC's definitions:
    data rounded to integers for the weighted moments and quantiles; kurtosis and MAD on the raw
    values; every figure rounded to 4 decimals). `kurt=False` skips the kurtosis (no metric uses it)."""
    raw = np.asarray(data)[np.asarray(mask, dtype=bool)]
    n = int(raw.size)
    if n == 0:
        return _empty()
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
    out, median = _summary(values, counts, n, decimals)
    out["k"] = round(float(kurtosis(raw)), decimals) if kurt else float("nan")
    out["mad"] = round(float(np.median(np.abs(raw - median) / MAD_C)), decimals)
    return out


@dataclass
class Levels:
    """A volume of integer codes 0..n-1 (the stored values) and the float32 value of each code; the
    volume itself is `values[codes]`."""

    codes: np.ndarray  # uint16, the volume's shape
    values: np.ndarray  # float32, one per code, non-decreasing

    @classmethod
    def of(cls, volume: np.ndarray) -> "Levels | None":
        """The levels of a non-negative float32 volume of integers below 65536 (None for any other)."""
        if volume.size == 0 or volume.dtype != np.float32:
            return None
        top = float(volume.max())
        if not 0 <= top < 65536:
            return None
        codes = volume.astype(np.uint16)
        if not np.array_equal(codes, volume):
            return None
        return cls(codes, np.arange(int(top) + 1, dtype=np.float32))

    def scaled(self, factor: np.float32) -> "Levels":
        """The levels of `volume * factor` (float32, the product numpy forms per voxel)."""
        return Levels(self.codes, self.values * np.float32(factor))

    def counts(self, mask: np.ndarray | None = None) -> np.ndarray:
        """Voxels per code, in the mask or in the whole volume."""
        n = len(self.values)
        if mask is not None:
            return np.bincount(self.codes[mask], minlength=n)
        if self.codes.size < 2**24:  # OpenCV's histogram: exact integer bins, float32 counts exact below 2^24
            flat = self.codes.reshape(-1, self.codes.shape[-1]) if self.codes.ndim > 1 else self.codes[None]
            return cv2.calcHist([flat], [0], None, [n], [0, n]).ravel().astype(np.int64)
        return np.bincount(self.codes.ravel(), minlength=n)


def _ranked(counts: np.ndarray, values: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """The values at 0-based `ranks` of the multiset `values` x `counts` (values in ascending order)."""
    return values[np.searchsorted(np.cumsum(counts), ranks, side="right")]


def middle(counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The one or two middle elements of the multiset `values` x `counts` (values ascending): what
    np.median of the whole multiset reads, so np.median(middle(...)) equals it exactly."""
    n = int(counts.sum())
    if n == 0:
        return values[:0]
    ranks = np.array([n // 2]) if n % 2 else np.array([n // 2 - 1, n // 2])
    return _ranked(counts, values, ranks)


def percentile(counts: np.ndarray, values: np.ndarray, q: float) -> np.floating:
    """np.percentile(multiset, q) (linear method) from counts: numpy's virtual index, and numpy's
    own interpolation between the two order statistics around it."""
    n = int(counts.sum())
    virtual = (n - 1) * np.true_divide(q, 100)
    below = int(np.floor(virtual))
    if below >= n - 1:
        return _ranked(counts, values, np.array([n - 1]))[0]
    pair = _ranked(counts, values, np.array([below, below + 1]))
    return np.quantile(pair, virtual - below)


def level_stats(counts: np.ndarray, levels: np.ndarray, decimals: int = 4) -> dict[str, float]:
    """tissue_stats(kurt=False) of the voxels with these code counts: identical figures."""
    n = int(counts.sum())
    if n == 0:
        return _empty()
    nz = np.flatnonzero(counts)
    lv, c = levels[nz], counts[nz]
    r = np.round(lv, 0)  # non-decreasing: equal rounded values are neighbours
    starts = np.flatnonzero(np.r_[True, r[1:] != r[:-1]])
    out, median = _summary(r[starts].astype(np.float64), np.add.reduceat(c, starts), n, decimals)
    out["k"] = float("nan")
    dev = np.abs(lv - median) / MAD_C  # per voxel value, as np.median(np.abs(raw - median) / MAD_C) forms it
    order = np.argsort(dev, kind="stable")
    out["mad"] = round(float(np.median(middle(c[order], dev[order]))), decimals)
    return out
