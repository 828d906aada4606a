"""One answer per series: the kind, how sure, which rule (or the model) decided, and the attributes.

How the stages combine (each answer says which path it took):
1. a non-MR kind from Modality/SOP Class is final;
2. MR evidence (ImageType tokens, b-values, temporal positions) is final;
3. a naming rule (SeriesDescription/ProtocolName) stands, unless the header-feature model is very
   sure of another kind and the physics rules agree with the model (a misleading description);
4. without naming, the physics rules (TR/TE/TI...) and the model: a textbook-clear physics rule
   (confidence >= physics_defer_below) stands whatever the model says; a weaker one defers to a surer
   model; agreement raises the confidence.
Pixel content plays no part in any of these: an MR kind is decided from the header alone.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from curation.classify import attributes as attrs
from curation.classify.features import FEATURE_NAMES, has_physics, header_features
from curation.classify.header import SeriesHeader, read_series_header, series_files
from curation.classify.rules import Match, RuleEngine, default_engine
from curation.settings import settings
from curation.vocabulary import Modality, SeriesKind, StageStatus

log = logging.getLogger(__name__)

STAGE_VERSION = "classify/1"
MODEL_RULE = "model.header_mlp"


def weights_path(path: str | os.PathLike | None = None) -> Path:
    """Where the header model's weights are read from: the argument, else CURATE_SERIES_MODEL, else the
    shipped file. One rule for the loader and for the stage's idempotency key."""
    from qc_models.series_classifier import WEIGHTS

    path = path or settings().series_model
    return Path(path) if path else WEIGHTS


@lru_cache(maxsize=2)
def _load_model(path: str | None):
    from qc_models.series_classifier import SeriesKindModel

    p = weights_path(path)
    if not p.exists():
        log.info("series classifier weights not found at %s; rules only", p)
        return None
    m = SeriesKindModel(p)
    m.check_features(FEATURE_NAMES)
    return m


def default_model(path: str | None = None):
    """The shipped header-feature model (None when its weights are absent)."""
    return _load_model(str(weights_path(path)))


def _combine(a: float, b: float) -> float:
    """Confidence of two agreeing, independent-ish signals (noisy-or), capped below certainty."""
    return min(0.995, 1.0 - (1.0 - a) * (1.0 - b))


def _m(match: Match | None) -> dict[str, Any] | None:
    if match is None:
        return None
    return {"kind": match.kind, "confidence": match.confidence, "rule": match.rule, "detail": match.detail}


def decide(h: SeriesHeader, engine: RuleEngine | None = None, model: Any = "default") -> dict[str, Any]:
    """Kind, confidence, rule and the evidence of every stage for one series header."""
    engine = engine or default_engine()
    if model == "default":
        model = default_model()
    matches = engine.evaluate(h)
    evidence: dict[str, Any] = {name: _m(m) for name, m in matches.items()}
    mod = matches.get("modality")
    if mod is not None:
        return {"kind": mod.kind, "confidence": mod.confidence, "rule": mod.rule, "stage": "modality",
                "detail": mod.detail, "rules": evidence, "model": None}

    pred = None
    if model is not None and has_physics(h):
        kind, prob, _ = model.predict(header_features(h)[None, :])[0]
        pred = {"kind": kind, "confidence": round(prob, 4)}
    ev, nm, ph = matches.get("evidence"), matches.get("naming"), matches.get("physics")

    def result(kind: str, conf: float, rule: str, stage: str, detail: str) -> dict[str, Any]:
        return {"kind": kind, "confidence": round(conf, 4), "rule": rule, "stage": stage, "detail": detail,
                "rules": evidence, "model": pred}

    if ev is not None:
        conf = ev.confidence
        if nm is not None and nm.kind == ev.kind:
            conf = _combine(conf, nm.confidence)
        return result(ev.kind, conf, ev.rule, "evidence", ev.detail)
    if nm is not None:
        if (pred is not None and pred["kind"] != nm.kind and pred["confidence"] >= engine.model_override_confidence
                and ph is not None and ph.kind == pred["kind"]):
            return result(pred["kind"], _combine(pred["confidence"], ph.confidence) * 0.95, MODEL_RULE, "model",
                          f"naming rule {nm.rule} ({nm.kind}) contradicted by the acquisition "
                          f"({ph.rule}, model p={pred['confidence']:.3f})")
        conf = nm.confidence
        for other in (ph, pred):
            if other is not None and (other.kind if isinstance(other, Match) else other["kind"]) == nm.kind:
                conf = _combine(conf, other.confidence if isinstance(other, Match) else other["confidence"] * 0.5)
        return result(nm.kind, conf, nm.rule, "naming", nm.detail)
    if ph is not None and ph.rule != "phys.mr_fallback":
        if pred is not None and pred["kind"] == ph.kind:
            return result(ph.kind, _combine(ph.confidence, pred["confidence"] * 0.5), ph.rule, "physics",
                          f"{ph.detail}; model agrees (p={pred['confidence']:.3f})".lstrip("; "))
        if pred is not None and ph.confidence < engine.physics_defer_below and pred["confidence"] > ph.confidence:
            return result(pred["kind"], pred["confidence"] * 0.9, MODEL_RULE, "model",
                          f"physics rule {ph.rule} ({ph.kind}, {ph.confidence}) overruled")
        if pred is not None:  # textbook-clear physics stands; the disagreement is recorded, not obeyed
            return result(ph.kind, ph.confidence, ph.rule, "physics",
                          f"{ph.detail}; model disagrees ({pred['kind']}, p={pred['confidence']:.3f})".lstrip("; "))
        return result(ph.kind, ph.confidence, ph.rule, "physics", ph.detail)
    if pred is not None:
        return result(pred["kind"], pred["confidence"] * 0.8, MODEL_RULE, "model", "no rule fired")
    fallback = ph or Match(SeriesKind.OTHER_MR if h.modality in (Modality.MR, "") else SeriesKind.OTHER, 0.3,
                           "fallback", "none", "")
    return result(fallback.kind, fallback.confidence, fallback.rule, "fallback", "no rule fired and no model")


def classify_header(h: SeriesHeader, engine: RuleEngine | None = None, model: Any = "default") -> dict[str, Any]:
    """Full classification record (kind, confidence, rule, attributes, evidence) of one header summary."""
    engine = engine or default_engine()
    d = decide(h, engine, model)
    a = attrs.attributes(h, d["kind"], engine.oblique_degrees)
    return {
        "kind": d["kind"],
        "confidence": d["confidence"],
        "rule": d["rule"],
        "stage": d["stage"],
        "detail": d["detail"],
        "modality": h.modality or None,
        "plane": a["plane"],
        "planes": a["planes"],
        "dimensions": a["dimensions"],
        "contrast": a["contrast"],
        "derived": a["derived"],
        "body_part": a["body_part"],
        "n_files": h.n_files,
        "n_frames": h.n_frames,
        "evidence": {**a["evidence"], "rules": d["rules"], "model": d["model"]},
        "stage_version": STAGE_VERSION,
    }


def classify_series(
    series: str | os.PathLike | Iterable[str | os.PathLike],
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Classify one series: a DICOM series folder, a list of its files, or a NIfTI file.

    `config` (all optional): `rules` (path of a rules YAML), `model` (path of weights, or False for
    rules only). Returns plain values (JSON-serialisable) for the catalog's StageRecord.metrics.
    """
    config = config or {}
    engine = RuleEngine.from_file(config["rules"]) if config.get("rules") else default_engine()
    model: Any = "default"
    if config.get("model") is False:
        model = None
    elif config.get("model"):
        model = _load_model(str(config["model"]))
    files = series_files(series)
    if len(files) == 1 and is_nifti(files[0]):
        from curation.classify.nifti import nifti_header

        h = nifti_header(files[0])
    else:
        h = read_series_header(files)
        if h.n_files == 0:
            return {"kind": SeriesKind.OTHER, "confidence": 0.0, "rule": "no_dicom", "stage": "fallback",
                    "detail": "no readable DICOM file", "modality": None, "plane": None, "planes": [],
                    "dimensions": None, "contrast": False, "derived": False, "body_part": None, "n_files": 0,
                    "n_frames": 0, "evidence": {}, "stage_version": STAGE_VERSION}
    return classify_header(h, engine, model)


def is_nifti(p: Path) -> bool:
    return p.name.endswith((".nii", ".nii.gz"))


def stage_result(result: dict[str, Any], min_confidence: float = 0.5) -> dict[str, Any]:
    """The fields of a catalog stage record (StageRecord) for a classification: status ("ok", or "review" when the
    confidence is below `min_confidence`), metrics (the whole result, plain JSON), reason."""
    low = result["confidence"] < min_confidence
    reason = f"{result['kind']} ({result['confidence']:.2f}) by {result['rule']}"
    if low:
        reason = f"low confidence: {reason}"
    return {"status": StageStatus.REVIEW if low else StageStatus.OK, "metrics": result, "reason": reason,
            "stage_version": result.get("stage_version", STAGE_VERSION)}
