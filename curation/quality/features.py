"""Metric vector for the quality classifier: which metrics, how scaled, and the kind one-hot.

Why logs: SNR, CNR and FBER span orders of magnitude between kinds and degradations; on a log scale a
halving is the same step everywhere, which suits a small network and makes the clean reference
distribution per kind closer to symmetric.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from curation.vocabulary import STRUCTURAL_MR_KINDS, SeriesKind

#: Plain strings, not enum members: they are saved inside the model weights, and torch's weights-only
#: loader refuses pickled classes.
KINDS: tuple[str, ...] = tuple(k.value for k in STRUCTURAL_MR_KINDS)
#: (metric, log-scaled?, which way is better: +1 higher, -1 lower)
METRICS: tuple[tuple[str, bool, int], ...] = (
    ("snr", True, 1), ("snr_dietrich", True, 1), ("cnr", True, 1), ("cjv", True, -1), ("efc", False, -1),
    ("fber", True, 1), ("wm2max", False, 1), ("qi1", False, -1), ("fwhm_edge", True, -1),
    ("inu_range", False, -1), ("gsr", False, -1), ("snr_wm", True, 1), ("snr_gm", True, 1),
)
#: Acquisition facts the model sees (curation.quality.acquisition): the field (relative to 3 T) and
#: 3D vs 2D change contrast and noise. Voxel size is deliberately not a feature: the metrics above are
#: the resolution-free ones (fwhm_edge in voxels, not the autocorrelation fwhm_avg, which grows with
#: the matrix; no Laplacian variance, which grows with edge density), so unseen matrices and slice
#: thicknesses are not extrapolations of the model (issue 19).
ACQUISITION_FEATURES: tuple[str, ...] = ("field_t", "three_d")
FEATURE_NAMES: tuple[str, ...] = (tuple(m for m, _, _ in METRICS) + tuple(f"kind_{k}" for k in KINDS) + ("contrast",)
                                  + tuple(f"acq_{a}" for a in ACQUISITION_FEATURES))
#: The 4D and derived MR kinds have their own small models (issue 19): their metrics
#: (curation.quality.diffusion, perfusion) share nothing with the tissue-class metrics above, and a
#: model per kind is retrained without moving the structural decisions. Direction 2: bad on both sides
#: (a plausible range, e.g. the ADC of brain).
KIND_METRICS: dict[str, tuple[tuple[str, bool, int], ...]] = {
    SeriesKind.DWI.value: (("dwi_snr_b0", True, 1), ("dwi_snr_bmax", True, 1), ("dwi_nyquist_ghost", False, -1),
                           ("dwi_dropout", False, -1), ("dwi_attenuation", False, 2)),
    SeriesKind.ADC.value: (("adc_median", True, 2), ("adc_p99", True, 2), ("adc_implausible", False, -1),
                           ("adc_noise", True, -1), ("adc_floor", False, -1)),
    SeriesKind.DCE.value: (("dce_baseline_cv", True, -1), ("dce_enhancement", True, 2), ("dce_washout", False, 2),
                           ("dce_motion_mm", False, -1), ("dce_mask_change", False, -1)),
}
KIND_ACQUISITION_FEATURES: tuple[str, ...] = ("field_t",)
DIRECTION = {m: d for m, _, d in METRICS} | {m: d for ms in KIND_METRICS.values() for m, _, d in ms}
_LOG = {m: log for m, log, _ in METRICS} | {m: log for ms in KIND_METRICS.values() for m, log, _ in ms}
#: What a metric's value is counted in, for the decision's reason.
UNITS = {"fwhm_edge": " voxels", "fwhm_avg": " voxels", "adc_median": " x10^-3 mm^2/s",
         "adc_p99": " x10^-3 mm^2/s", "dce_motion_mm": " mm"}


def transform(name: str, value: float) -> float:
    """The scale a metric is compared on (log for the multiplicative ones); NaN stays NaN."""
    if value is None or not math.isfinite(value):
        return math.nan
    if _LOG.get(name):
        return math.log(max(value, 1e-6))
    return float(value)


def _acquisition_value(name: str, acquisition: Mapping[str, object] | None) -> float | None:
    v = (acquisition or {}).get(name)
    if v is None or v == "":
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(f):
        return None
    return f / 3.0 if name == "field_t" else f


def quality_features(metrics: Mapping[str, float], kind: str, fill: Mapping[str, float] | None = None,
                     contrast: bool = False, acquisition: Mapping[str, object] | None = None) -> np.ndarray:
    """Feature vector; a NaN metric takes `fill[name]` (the clean training median), else 0.
    `contrast`: the series is contrast-enhanced (tissue intensities, hence metrics, differ).
    `acquisition`: field_t (tesla) and three_d (0/1); unknown ones take their `fill` (or 1 / 0.5)."""
    fill = fill or {}
    out = []
    for m, _, _ in METRICS:
        v = transform(m, metrics.get(m, math.nan))
        if not math.isfinite(v):
            v = float(fill.get(m, 0.0))
        out.append(v)
    out += [float(kind == k) for k in KINDS]
    out.append(float(bool(contrast)))
    for a in ACQUISITION_FEATURES:
        v = _acquisition_value(a, acquisition)
        out.append(v if v is not None else float(fill.get(f"acq_{a}", 1.0 if a == "field_t" else 0.5)))
    return np.asarray(out, dtype=np.float32)


def kind_feature_names(kind: str) -> tuple[str, ...]:
    """Feature names of a kind's own model (KIND_METRICS)."""
    return tuple(m for m, _, _ in KIND_METRICS[kind]) + tuple(f"acq_{a}" for a in KIND_ACQUISITION_FEATURES)


def kind_features(metrics: Mapping[str, float], kind: str, fill: Mapping[str, float] | None = None,
                  acquisition: Mapping[str, object] | None = None) -> np.ndarray:
    """Feature vector of a kind with its own model; NaN metrics take `fill` (clean medians), as above."""
    fill = fill or {}
    out = []
    for m, _, _ in KIND_METRICS[kind]:
        v = transform(m, metrics.get(m, math.nan))
        out.append(v if math.isfinite(v) else float(fill.get(m, 0.0)))
    for a in KIND_ACQUISITION_FEATURES:
        v = _acquisition_value(a, acquisition)
        out.append(v if v is not None else float(fill.get(f"acq_{a}", 1.0)))
    return np.asarray(out, dtype=np.float32)
