"""How good the findings model is, in the numbers its model card states: AUC per label with a
percentile bootstrap CI over images, calibration (expected calibration error and the reliability
table behind it) and the pointing game (does the heatmap's maximum fall inside the planted region).
Plain numpy and scikit-learn: the same functions measure a site's own model on the same release.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

#: Bootstrap resamples and confidence level of the AUC intervals.
BOOTSTRAP = 1000
LEVEL = 0.95
#: Equal-width probability bins of the calibration table.
BINS = 10


def _known(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = np.isfinite(y)
    return y[keep].astype(int), p[keep]


def auc_ci(y: np.ndarray, p: np.ndarray, seed: int = 0, n_boot: int = BOOTSTRAP, level: float = LEVEL
           ) -> dict[str, Any]:
    """ROC AUC of probabilities `p` for labels `y` (NaN: no consensus, left out) with a percentile
    bootstrap interval over images; resamples without both classes are redrawn out of the count
    (their number is reported). None where the split lacks a class."""
    y, p = _known(np.asarray(y, float), np.asarray(p, float))
    out: dict[str, Any] = {"n": int(len(y)), "positives": int(y.sum()), "auc": None, "ci": None}
    if len(y) == 0 or y.min() == y.max():
        return out
    out["auc"] = float(roc_auc_score(y, p))
    rng = np.random.default_rng(seed)
    draws, skipped = [], 0
    while len(draws) < n_boot and skipped < 10 * n_boot:
        idx = rng.integers(0, len(y), len(y))
        if y[idx].min() == y[idx].max():
            skipped += 1
            continue
        draws.append(roc_auc_score(y[idx], p[idx]))
    tail = (1 - level) / 2
    out["ci"] = [float(np.quantile(draws, tail)), float(np.quantile(draws, 1 - tail))]
    out["bootstrap"], out["one_class_resamples"] = len(draws), skipped
    return out


def calibration(y: np.ndarray, p: np.ndarray, bins: int = BINS) -> dict[str, Any]:
    """Expected calibration error (bin-size-weighted |observed rate - mean probability|) over equal-width
    bins, the reliability table (per non-empty bin: range, count, mean probability, observed rate)
    and the Brier score."""
    y, p = _known(np.asarray(y, float), np.asarray(p, float))
    if len(y) == 0:
        return {"n": 0, "ece": None, "brier": None, "reliability": []}
    which = np.minimum((p * bins).astype(int), bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        inside = which == b
        if not inside.any():
            continue
        mean_p, rate = float(p[inside].mean()), float(y[inside].mean())
        ece += inside.sum() / len(y) * abs(rate - mean_p)
        table.append({"bin": [b / bins, (b + 1) / bins], "n": int(inside.sum()), "mean_probability": round(mean_p, 4),
                      "observed_rate": round(rate, 4)})
    return {"n": int(len(y)), "ece": float(ece), "brier": float(np.mean((p - y) ** 2)), "reliability": table}


def pointing_hit(heat: np.ndarray, region: np.ndarray) -> bool:
    """The pointing game: the point the heatmap names -- the centre of the pixels at its maximum (one
    pixel, or the few around a grid node after resampling) -- lies inside `region` (a boolean mask on
    the same grid). A flat heatmap points nowhere (a miss), and a plateau at the maximum names its
    centre, not every pixel it covers: else a heatmap saturated over most of the image would hit
    every region."""
    if heat.max() <= heat.min():
        return False
    rows, cols = np.nonzero(heat >= heat.max())
    return bool(region[int(round(rows.mean())), int(round(cols.mean()))])


def pointing_game(hits: Sequence[bool]) -> dict[str, Any]:
    """Hit rate of the pointing game with a Wilson 95 % interval (hits are images, not resamples)."""
    n, k = len(hits), int(sum(hits))
    if n == 0:
        return {"n": 0, "hits": 0, "rate": None, "ci": None}
    z = 1.959964
    centre = (k + z * z / 2) / (n + z * z)
    half = z * np.sqrt(k * (n - k) / n + z * z / 4) / (n + z * z)
    return {"n": n, "hits": k, "rate": k / n, "ci": [float(max(0.0, centre - half)), float(min(1.0, centre + half))]}
