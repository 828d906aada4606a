"""The `quality` stage: quality metrics and the approve / review / exclude decision of a classified
series, over `curation.quality` (volumes and series) and its projection metrics (PNG/JPEG)."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from curation.catalog import Catalog
from curation.confighash import config_hash, file_digest
from curation.pipeline import deid
from curation.pipeline.files import local_files
from curation.pipeline.idempotency import StageKey, run_once
from curation.pipeline.refs import SeriesRef
from curation.pipeline.result import StageResult
from curation.store import Store, Zone
from curation.vocabulary import QualityDecision, SeriesKind, StageStatus

STAGE = "quality"

#: Formats scored as one 2D picture (projection metrics on its pixels).
_RASTER_FORMATS = ("png", "jpeg")


def resolved_config(config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The stage's resolved configuration (its idempotency key): the thresholds file with the
    overrides merged in, and the quality model's weights by content hash."""
    from curation.quality.decision import load_config, weights_path

    return {"thresholds": load_config(config), "model": file_digest(weights_path())}


def run(ref: SeriesRef, store: Store, catalog: Catalog, config: Mapping[str, Any] | None = None) -> StageResult:
    """Score the series `ref` names (skipped when it has no de-identified objects or no kind)."""
    from curation.quality.metrics import STAGE_VERSION
    from curation.quality.series import assess_series, stage_result

    keys = deid.outputs(catalog, ref)
    if ref.status != StageStatus.OK or not keys or not ref.kind:
        return StageResult(status=StageStatus.SKIPPED, refs=(ref.replace(decision=None, reused=False),))
    config = dict(config) if config else None
    classification = ref.classification()

    def work() -> StageResult:
        with local_files(store, Zone.DEID, keys) as paths:
            if (ref.format or "dicom") in _RASTER_FORMATS:
                result = assess_image(paths[0], config, classification)
            elif classification["kind"] == SeriesKind.VOLUME:  # NIfTI of unknown acquisition: foreground metrics
                result = assess_series(paths, config, classification={**classification, "kind": SeriesKind.OTHER_MR})
                result["kind"] = SeriesKind.VOLUME
                result["decision"]["reason"] += " (scored as a volume of unknown acquisition: foreground metrics)"
            else:
                result = assess_series(paths, config, classification=classification)
            row = stage_result(result)
        return StageResult(status=row["status"], metrics=row["metrics"], reason=row["reason"])

    key = StageKey.of(STAGE, str(STAGE_VERSION), "series", ref.series_id,
                      config_hash({"deid": keys, "class": classification}), resolved_config(config))
    result = run_once(catalog, key, work)
    decision = (result.metrics.get("decision") or {}).get("decision", result.status)
    result.refs = (ref.replace(decision=decision, decision_reason=result.reason, reused=result.reused),)
    return result


def assess_image(path: Path, config: Mapping[str, Any] | None, classification: Mapping[str, Any]) -> dict[str, Any]:
    """Quality of one de-identified PNG/JPEG (``assess_series``' result fields): the projection
    metrics (exposure, saturation, noise) on its pixels, the decision for its kind. A photo or a
    screenshot is scored with the same 2D proxies; where no learned model covers the kind the
    decision says so (limits only). Unreadable pixels give a review decision with the reason."""
    from curation.classify.raster import read_raster
    from curation.quality.decision import decide, load_config
    from curation.quality.metrics import PROJECTION, STAGE_VERSION, compute_metrics

    cfg = load_config(config)
    kind = classification.get("kind") or SeriesKind.OTHER
    try:
        img = read_raster(path)
        bits = 16 if img.dtype.itemsize == 2 else 8
        ms = compute_metrics(None, (1.0, 1.0, 1.0), kind if kind in PROJECTION else SeriesKind.SC, image2d=img,
                             bits_stored=bits, config=cfg)
    except (ValueError, OSError) as exc:
        return {"kind": kind, "metrics": {}, "nan_reasons": {}, "masks": {},
                "decision": {"decision": QualityDecision.REVIEW,
                             "reason": f"pixel data unusable ({type(exc).__name__})", "p_degraded": None},
                "stage_version": STAGE_VERSION}
    return {"kind": kind, "metrics": ms.values, "nan_reasons": ms.reasons, "masks": ms.masks,
            "decision": decide(ms.values, kind, cfg), "stage_version": STAGE_VERSION}


__all__ = ["STAGE", "assess_image", "resolved_config", "run"]
