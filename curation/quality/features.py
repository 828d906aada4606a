"""Metric vector for the quality classifier: which metrics, how scaled, and the kind one-hot.

Why logs: SNR, CNR and FBER span orders of magnitude between kinds and degradations; on a log scale a
halving is the same step everywhere, which suits a small network and makes the clean reference
distribution per kind closer to symmetric.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from curation.vocabulary import STRUCTURAL_MR_KINDS

#: Plain strings, not enum members: they are saved inside the model weights, and torch's weights-only
#: loader refuses pickled classes.
KINDS: tuple[str, ...] = tuple(k.value for k in STRUCTURAL_MR_KINDS)
#: (metric, log-scaled?, which way is better: +1 higher, -1 lower)
METRICS: tuple[tuple[str, bool, int], ...] = (
    ("snr", True, 1), ("snr_dietrich", True, 1), ("cnr", True, 1), ("cjv", True, -1), ("efc", False, -1),
    ("fber", True, 1), ("wm2max", False, 1), ("qi1", False, -1), ("var", True, 0), ("fwhm_avg", True, -1),
    ("inu_range", False, -1), ("gsr", False, -1), ("snr_wm", True, 1), ("snr_gm", True, 1),
)
FEATURE_NAMES: tuple[str, ...] = tuple(m for m, _, _ in METRICS) + tuple(f"kind_{k}" for k in KINDS) + ("contrast",)
DIRECTION = {m: d for m, _, d in METRICS}


def transform(name: str, value: float) -> float:
    """The scale a metric is compared on (log for the multiplicative ones); NaN stays NaN."""
    if value is None or not math.isfinite(value):
        return math.nan
    for m, log, _ in METRICS:
        if m == name:
            return math.log(max(value, 1e-6)) if log else float(value)
    return float(value)


def quality_features(metrics: Mapping[str, float], kind: str, fill: Mapping[str, float] | None = None,
                     contrast: bool = False) -> np.ndarray:
    """Feature vector; a NaN metric takes `fill[name]` (the clean training median), else 0.
    `contrast`: the series is contrast-enhanced (tissue intensities, hence metrics, differ)."""
    fill = fill or {}
    out = []
    for m, _, _ in METRICS:
        v = transform(m, metrics.get(m, math.nan))
        if not math.isfinite(v):
            v = float(fill.get(m, 0.0))
        out.append(v)
    out += [float(kind == k) for k in KINDS]
    out.append(float(bool(contrast)))
    return np.asarray(out, dtype=np.float32)
