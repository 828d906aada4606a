"""Per-series stages of curate_source (deid -> classify -> quality), as plain functions over the
catalog and the store, so each runs and is tested without a scheduler. Operators call these.

Each function is idempotent through `curation.stages.run_stage` and returns a small dict that is
safe for XCom: catalog ids, pseudonymous keys, statuses, counts; never PHI, never pixels.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import select

from curation.catalog import Catalog, Instance, QuarantineRecord, Series
from curation.confighash import config_hash, file_digest
from curation.stages import Outcome, run_stage, series_input_hash
from curation.store import Store, Zone

log = logging.getLogger(__name__)


@contextmanager
def local_files(store: Store, zone: Zone, keys: Sequence[str]) -> Iterator[list[Path]]:
    """The objects as local files: in place for a local store, downloaded to a temp dir otherwise."""
    paths = [store.local_path(zone, k) for k in keys]
    if all(p is not None for p in paths):
        yield [p for p in paths if p is not None]
        return
    tmp = Path(tempfile.mkdtemp(prefix="curate-series-"))
    try:
        yield [store.download(zone, k, tmp / f"{i:06d}.dcm") for i, k in enumerate(keys)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _quarantine(catalog: Catalog, stage: str, items: list[dict[str, Any]]) -> None:
    with catalog.session() as s:
        for q in items:
            exists = s.scalars(select(QuarantineRecord.id).where(
                QuarantineRecord.file == q["raw_key"], QuarantineRecord.stage == stage,
                QuarantineRecord.reason_code == q["reason_code"], QuarantineRecord.sha256 == q["sha256"])).first()
            if exists is None:
                s.add(QuarantineRecord(source_id=None, file=q["raw_key"], sha256=q["sha256"], raw_key=q["raw_key"],
                                       stage=stage, reason_code=q["reason_code"], reason=q["reason"] or ""))


def deid_series(catalog: Catalog, store: Store, series_id: int, *, profile: str = "default",
                options: Sequence[str] = ()) -> dict[str, Any]:
    """De-identify one ingested series into the deid zone; quarantine what cannot be made safe."""
    from curation.deid_stage import STAGE_VERSION, deidentify_series, resolved_config

    with catalog.session() as s:
        series = s.get(Series, series_id)
        if series is None:
            raise ValueError(f"series {series_id} is not in the catalog")
        fmt = series.format
        raw_keys = list(s.scalars(select(Instance.raw_key).where(Instance.series_id == series_id)
                                  .order_by(Instance.raw_key)))
    config = resolved_config(profile, options)
    result: dict[str, Any] = {}

    def work() -> Outcome:
        if fmt != "dicom":
            # PNG/JPEG/NIfTI have no DICOM header to clean and may carry burned-in text: they stay in
            # the raw zone until a de-identifier for them exists (never silently passed on).
            return Outcome(status="skipped", reason=f"{fmt} images are not de-identified yet; kept in the raw zone")
        out = deidentify_series(store.uri, raw_keys, profile=profile, options=options)
        result.update(out)
        if out["quarantined"]:
            _quarantine(catalog, "deid", out["quarantined"])
        prefix = "/".join(out["outputs"][0].split("/")[:3]) + "/" if out["outputs"] else None
        status = {"ok": "ok", "partial": "ok", "failed": "failed"}[out["status"]]
        reason = (f"{len(out['quarantined'])} of {len(raw_keys)} instances quarantined"
                  if out["quarantined"] else None)
        return Outcome(status=status, reason=reason, output_uri=prefix,
                       metrics={"written": out["written"], "unchanged": out["unchanged"],
                                "quarantined": len(out["quarantined"]), "outputs": out["outputs"],
                                "pixels": out["pixels"]})

    run = run_stage(catalog, stage="deid", version=STAGE_VERSION, subject_type="series", subject_id=series_id,
                    input_hash=series_input_hash(catalog, series_id), config=config, work=work)
    return {"series_id": series_id, "status": run.status, "reason": run.reason, "deid_prefix": run.output_uri,
            "outputs": run.metrics.get("outputs", []), "quarantined": run.metrics.get("quarantined", 0),
            "reused": run.reused}


def _deid_keys(ref: dict[str, Any]) -> list[str]:
    return list(ref.get("outputs") or [])


def classify_config(config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The classify stage's resolved configuration (its idempotency key): the overrides, the rules
    file and the header model's weights by content hash (None: rules only or no weights)."""
    from curation.classify.rules import RULES_PATH
    from qc_models.series_classifier import WEIGHTS

    config = dict(config or {})
    model = config.get("model")
    weights = None if model is False else file_digest(model or os.environ.get("CURATE_SERIES_MODEL") or WEIGHTS)
    return {"overrides": config, "rules": file_digest(config.get("rules") or RULES_PATH), "model": weights}


def quality_config(config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The quality stage's resolved configuration (its idempotency key): the thresholds file with
    the overrides merged in, and the quality model's weights by content hash."""
    from curation.quality.decision import load_config
    from qc_models.quality_classifier import WEIGHTS

    return {"thresholds": load_config(config),
            "model": file_digest(os.environ.get("CURATE_QUALITY_MODEL") or WEIGHTS)}


def classify_deid_series(catalog: Catalog, store: Store, ref: dict[str, Any],
                         config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Series kind and attributes of a de-identified series (`ref` is deid_series' result)."""
    from curation.classify import STAGE_VERSION as CLASSIFY_VERSION
    from curation.classify import classify_series

    keys = _deid_keys(ref)
    if ref.get("status") != "ok" or not keys:
        return {**ref, "kind": None, "classify_status": "skipped"}

    def work() -> Outcome:
        with local_files(store, Zone.DEID, keys) as paths:
            result = classify_series(paths, config)
        return Outcome(status="ok", metrics=result)

    run = run_stage(catalog, stage="classify", version=str(CLASSIFY_VERSION), subject_type="series",
                    subject_id=ref["series_id"], input_hash=config_hash({"deid": keys}), config=classify_config(config),
                    work=work)
    m = run.metrics
    return {**ref, "kind": m.get("kind"), "confidence": m.get("confidence"), "plane": m.get("plane"),
            "dimensions": m.get("dimensions"), "contrast": m.get("contrast"), "derived": m.get("derived"),
            "body_part": m.get("body_part"), "rule": m.get("rule"), "classify_status": run.status}


def assess_deid_series(catalog: Catalog, store: Store, ref: dict[str, Any],
                       config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Quality metrics and the approve / review / exclude decision of a classified series."""
    from curation.quality.metrics import STAGE_VERSION as QUALITY_VERSION
    from curation.quality.series import assess_series, stage_result

    keys = _deid_keys(ref)
    if ref.get("status") != "ok" or not keys or not ref.get("kind"):
        return {**ref, "decision": None, "quality_status": "skipped"}
    classification = {k: ref.get(k) for k in ("kind", "body_part", "plane", "dimensions", "contrast")}

    def work() -> Outcome:
        with local_files(store, Zone.DEID, keys) as paths:
            row = stage_result(assess_series(paths, config, classification=classification))
        return Outcome(status=row["status"], metrics=row["metrics"], reason=row["reason"])

    run = run_stage(catalog, stage="quality", version=str(QUALITY_VERSION), subject_type="series",
                    subject_id=ref["series_id"], input_hash=config_hash({"deid": keys, "class": classification}),
                    config=quality_config(config), work=work)
    decision = (run.metrics.get("decision") or {}).get("decision", run.status)
    return {**ref, "decision": decision, "decision_reason": run.reason, "quality_status": run.status}
