"""The `classify` stage: series kind and attributes (plane, dimensions, contrast, derived, body part)
of a de-identified series, over `curation.classify` (headers) and `curation.classify.raster`
(PNG/JPEG/NIfTI: kind from content)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from curation.catalog import Catalog
from curation.confighash import config_hash, file_digest
from curation.pipeline import deid
from curation.pipeline.files import local_files
from curation.pipeline.idempotency import StageKey, run_once
from curation.pipeline.refs import SeriesRef
from curation.pipeline.result import StageResult
from curation.store import Store, Zone
from curation.vocabulary import StageStatus

STAGE = "classify"

#: The metrics of a classification the next stages read (carried on the series' reference).
_CARRIED = ("kind", "confidence", "plane", "dimensions", "contrast", "derived", "body_part", "rule")


def resolved_config(config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The stage's resolved configuration (its idempotency key): the overrides, the rules file and
    the header model's weights by content hash (None: rules only or no weights)."""
    from curation.classify.classifier import weights_path
    from curation.classify.rules import RULES_PATH

    config = dict(config or {})
    model = config.get("model")
    weights = None if model is False else file_digest(weights_path(model))
    return {"overrides": config, "rules": file_digest(config.get("rules") or RULES_PATH), "model": weights}


def run(ref: SeriesRef, store: Store, catalog: Catalog, config: Mapping[str, Any] | None = None) -> StageResult:
    """Classify the de-identified series `ref` names (skipped when de-identification wrote nothing)."""
    from curation.classify import STAGE_VERSION, classify_series

    keys = deid.outputs(catalog, ref)
    if ref.status != StageStatus.OK or not keys:
        return StageResult(status=StageStatus.SKIPPED, refs=(ref.replace(kind=None, reused=False),))
    config = dict(config) if config else None

    def work() -> StageResult:
        with local_files(store, Zone.DEID, keys) as paths:
            if (ref.format or "dicom") != "dicom":  # PNG/JPEG/NIfTI: kind from content
                from curation.classify.raster import classify_image

                metrics = classify_image(paths[0], config)
            else:
                metrics = classify_series(paths, config)
        return StageResult(status=StageStatus.OK, metrics=metrics)

    key = StageKey.of(STAGE, str(STAGE_VERSION), "series", ref.series_id, config_hash({"deid": keys}),
                      resolved_config(config))
    result = run_once(catalog, key, work)
    result.refs = (ref.replace(**{k: result.metrics.get(k) for k in _CARRIED}, reused=result.reused),)
    return result


__all__ = ["STAGE", "resolved_config", "run"]
