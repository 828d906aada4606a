"""approve / review / exclude for a series, with the reason: which metric, how far from clean.

The classifier gives p(degraded); thresholds in include/quality/thresholds.yaml turn it into a
decision; hard limits on single metrics can only make a decision stricter. The reason names the
metric furthest on its bad side from the clean reference of the same kind (robust z-score), so a
curator reading "snr_dietrich 6.1 is 7.4 robust SD below clean T2W (median 37.9)" knows what to look at.

DWI, ADC and DCE have a small model each (qc_models.quality_classifier.kind_weights) on their own
metrics (curation.quality.features.KIND_METRICS), read the same way, with the kind's thresholds from
`decision_by_kind` where the file has them.

Kinds without a learned model (CT, CR, DX, US) are decided by rules: `limits_by_kind` in the thresholds
file gives, per kind, one bound per defect-specific metric (review beyond it, exclude beyond
`exclude_min`/`exclude_max`) and the defect it points to, e.g. "ct_streak_index 35.2 > 10.9: streaks
(metal)". The bounds are set on training seeds by `python -m training.quality_calibration calibrate`.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from curation.quality.features import (DIRECTION, KIND_METRICS, KINDS, UNITS, kind_feature_names, kind_features,
                                       quality_features, transform)
from curation.settings import settings
from curation.vocabulary import DECISION_SEVERITY, QualityDecision

THRESHOLDS_PATH = Path(__file__).resolve().parents[2] / "include" / "quality" / "thresholds.yaml"
_SEVERITY = DECISION_SEVERITY


@lru_cache(maxsize=4)
def _read_config(path: str, stamp: tuple[int, int]) -> dict[str, Any]:
    """Parsed once per (path, mtime, size): an edited thresholds file is read again."""
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def load_config(overrides: Mapping[str, Any] | None = None, path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The shipped thresholds with `overrides` merged in (one level deep for dict sections)."""
    p = str(path or THRESHOLDS_PATH)
    st = os.stat(p)
    cfg = {k: (dict(v) if isinstance(v, dict) else v) for k, v in _read_config(p, (st.st_mtime_ns, st.st_size)).items()}
    for k, v in (overrides or {}).items():
        if isinstance(v, Mapping) and isinstance(cfg.get(k), dict):
            cfg[k].update(v)
        else:
            cfg[k] = v
    return cfg


@lru_cache(maxsize=2)
def _load_model(path: str | None):
    from qc_models.quality_classifier import QualityModel

    from curation.quality.features import FEATURE_NAMES

    p = weights_path(path)
    if not p.exists():
        return None
    model = QualityModel(p)
    if model.feature_names != list(FEATURE_NAMES):
        raise ValueError(f"{p}: quality weights were trained on other features; retrain with `curate train quality`")
    return model


@lru_cache(maxsize=8)
def _load_kind_model(kind: str):
    from qc_models.quality_classifier import QualityModel, kind_weights

    p = kind_weights(kind)
    if not p.exists():
        return None
    model = QualityModel(p)
    if model.feature_names != list(kind_feature_names(kind)):
        raise ValueError(f"{p}: {kind} quality weights were trained on other features; retrain with "
                         "`python -m training.quality_4d train`")
    return model


def kind_model(kind: str):
    """The shipped model of a kind with its own metrics (DWI, ADC, DCE), or None."""
    return _load_kind_model(str(kind)) if kind in KIND_METRICS else None


def weights_path(path: str | os.PathLike | None = None) -> Path:
    """Where the quality model's weights are read from: the argument, else CURATE_QUALITY_MODEL, else
    the shipped file. One rule for the loader and for the stage's idempotency key."""
    from qc_models.quality_classifier import WEIGHTS

    path = path or settings().quality_model
    return Path(path) if path else WEIGHTS


def default_model(path: str | None = None):
    """The shipped quality classifier, or None when its weights are absent."""
    return _load_model(str(weights_path(path)))


def worst_metric(metrics: Mapping[str, float], kind: str, reference: Mapping[str, Mapping[str, Mapping[str, float]]],
                 contrast: bool = False, acquisition: Mapping[str, Any] | None = None) -> tuple[str, float, str] | None:
    """(metric, robust z on its bad side, text) of the metric furthest from the clean reference of
    the same kind and, where the reference has them, the same acquisition (field, pixel and slice
    bins; curation.quality.acquisition.reference_keys): "fwhm_edge 2.6 voxels, expected 0.92-1.1 for
    T2W at 3 T, 1.1-1.6 mm pixels (14.2 robust SD above clean)"."""
    from curation.quality.acquisition import from_mapping, reference_keys

    keys = reference_keys(kind, from_mapping(acquisition), contrast)
    key = next((k for k in keys if reference.get(k)), None)
    ref = reference.get(key) if key else None
    if not ref:
        return None
    best: tuple[str, float, str] | None = None
    for name, stats in ref.items():
        sign = DIRECTION.get(name, 0)
        value = metrics.get(name, math.nan)
        if sign == 0 or value is None or not math.isfinite(value):
            continue
        t = transform(name, value)
        spread = max(stats["scale"], 1e-6)
        z = abs(t - stats["median"]) / spread if sign == 2 else \
            (stats["median"] - t) / spread if sign > 0 else (t - stats["median"]) / spread
        if best is None or z > best[1]:
            side = ("below" if t < stats["median"] else "above") if sign == 2 else "below" if sign > 0 else "above"
            unit = UNITS.get(name, "")
            if "lo" in stats:
                text = (f"{name} {value:.3g}{unit}, expected {stats['lo']:.3g}-{stats['hi']:.3g} for {key} "
                        f"({z:.1f} robust SD {side} clean)")
            else:
                text = f"{name} {value:.4g} is {z:.1f} robust SD {side} clean {key} (median {stats['median_raw']:.4g})"
            best = (name, z, text)
    return best


def _same_acquisition(kind: str, reference: Mapping[str, Any], contrast: bool,
                      acquisition: Mapping[str, Any] | None) -> bool:
    """Whether the reference holds clean series of this kind at this acquisition's field, pixel and
    slice bins (the most specific key; without acquisition facts, the kind's own group)."""
    from curation.quality.acquisition import from_mapping, reference_keys

    keys = reference_keys(kind, from_mapping(acquisition), contrast)
    first = next((k for k in keys if reference.get(k)), None)
    return first is not None and (first == keys[0] or acquisition is None)


def _beyond_clean_range(metrics: Mapping[str, float], name: str, kind: str, reference: Mapping[str, Any],
                        contrast: bool, acquisition: Mapping[str, Any] | None) -> bool:
    """Whether the metric lies beyond its clean 5-95 % range widened by half its width on its bad
    side: a robust z from a handful of near-identical clean series is large for any small shift."""
    from curation.quality.acquisition import from_mapping, reference_keys

    key = next((k for k in reference_keys(kind, from_mapping(acquisition), contrast) if reference.get(k)), None)
    stats = (reference.get(key) or {}).get(name) if key else None
    if not stats or "lo" not in stats:
        return True
    margin = 0.5 * (stats["hi"] - stats["lo"])
    v = metrics.get(name, math.nan)
    sign = DIRECTION.get(name, 0)
    if sign == 2:
        return v < stats["lo"] - margin or v > stats["hi"] + margin
    return v < stats["lo"] - margin if sign > 0 else v > stats["hi"] + margin


def _limits(metrics: Mapping[str, float], limits: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(action, reason) per bound crossed: `min`/`max` give `action` (default review), `exclude_min` /
    `exclude_max` (reached or passed) exclude; `why` names the defect in the reason."""
    hits = []
    for name, lim in (limits or {}).items():
        v = metrics.get(name)
        if v is None or not isinstance(v, (int, float)) or not math.isfinite(v):
            continue
        why = f": {lim['why']}" if lim.get("why") else ""
        if "exclude_min" in lim and v <= lim["exclude_min"]:
            hits.append((QualityDecision.EXCLUDE, f"{name} {v:.4g} <= exclusion limit {lim['exclude_min']}{why}"))
        elif "min" in lim and v < lim["min"]:
            hits.append((lim.get("action", QualityDecision.REVIEW), f"{name} {v:.4g} < limit {lim['min']}{why}"))
        if "exclude_max" in lim and v >= lim["exclude_max"]:
            hits.append((QualityDecision.EXCLUDE, f"{name} {v:.4g} >= exclusion limit {lim['exclude_max']}{why}"))
        elif "max" in lim and v > lim["max"]:
            hits.append((lim.get("action", QualityDecision.REVIEW), f"{name} {v:.4g} > limit {lim['max']}{why}"))
    return hits


def decide(metrics: Mapping[str, float], kind: str, config: Mapping[str, Any] | None = None, model: Any = "default",
           contrast: bool = False, acquisition: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """{decision, reason, p_degraded, worst_metric, z, limits_hit, thresholds, model} for one series.
    `acquisition`: pixel_mm, slice_mm, field_t, three_d (curation.quality.acquisition) when known:
    the model sees field and 2D/3D, the reason compares with clean series of the same acquisition."""
    cfg = config if config is not None and "decision" in config else load_config(config)
    own = kind in KIND_METRICS
    if model == "default":
        model = kind_model(kind) if own else default_model()
    d = {**cfg["decision"], **((cfg.get("decision_by_kind") or {}).get(kind) or {})} if own else cfg["decision"]
    out: dict[str, Any] = {"p_degraded": None, "worst_metric": None, "z": None, "model": None,
                           "thresholds": {"approve_below": d["approve_below"], "exclude_above": d["exclude_above"]}}
    covered = model is not None and kind in getattr(model, "kinds", KINDS)
    reasons: list[str] = []
    by_kind = (cfg.get("limits_by_kind") or {}).get(kind) or {}
    if covered:
        x = kind_features(metrics, kind, model.fill, acquisition) if own else \
            quality_features(metrics, kind, model.fill, contrast, acquisition)
        p = float(model.p_degraded(x[None, :])[0])
        out["p_degraded"] = round(p, 4)
        out["model"] = model.meta.get("name", "quality_classifier")
        decision = (QualityDecision.APPROVE if p < d["approve_below"]
                    else QualityDecision.EXCLUDE if p >= d["exclude_above"] else QualityDecision.REVIEW)
        w = worst_metric(metrics, kind, model.reference, contrast, acquisition)
        if w is not None:
            out["worst_metric"], out["z"] = w[0], round(w[1], 2)
            if decision == QualityDecision.APPROVE and w[1] >= d.get("review_z", math.inf) \
                    and _same_acquisition(kind, model.reference, contrast, acquisition) \
                    and _beyond_clean_range(metrics, w[0], kind, model.reference, contrast, acquisition):
                # the model is sure, but one metric is far outside clean series of this very
                # acquisition: a person looks. Against a plainer group (another resolution or
                # field) a far metric is the protocol's, not a defect (issue 19): the model decides.
                decision = QualityDecision.REVIEW
        reasons.append(f"p(degraded) {p:.2f}")
        if w is not None and (decision != QualityDecision.APPROVE or w[1] >= d.get("reason_min_z", 2.0)):
            reasons.append(w[2])
    else:
        decision = cfg.get("without_model", QualityDecision.APPROVE)
        reasons.append(f"rules for {kind} (no learned model)" if by_kind else f"no learned model for {kind}: limits only")
    hits = _limits(metrics, cfg.get("limits", {}))
    if not covered:  # a learned model's kinds keep their own decision (and limits above)
        hits += _limits(metrics, by_kind)
    out["limits_hit"] = [h[1] for h in hits]
    for action, text in hits:
        reasons.append(text)
        if _SEVERITY[action] > _SEVERITY[decision]:
            decision = action
    out["decision"] = decision
    out["reason"] = "; ".join(reasons)
    return out
