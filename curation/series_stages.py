"""Per-series stages of curate_source (deid -> classify -> quality), as plain functions over the
catalog and the store, so each runs and is tested without a scheduler. Operators call these.

Each function is idempotent through `curation.stages.run_stage` and returns a small dict that is
safe for XCom: catalog ids, pseudonymous keys, statuses, counts; never PHI, never pixels.
"""
from __future__ import annotations

import logging
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
        # the suffix tells NIfTI/PNG readers what a file is; DICOM keys end in .dcm already
        yield [store.download(zone, k, tmp / f"{i:06d}{_suffix(k)}") for i, k in enumerate(keys)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _suffix(key: str) -> str:
    return ".nii.gz" if key.endswith(".nii.gz") else (Path(key).suffix or ".dcm")


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
    from curation.deid_stage import deidentify_images, deidentify_series, resolved_config, stage_version

    with catalog.session() as s:
        series = s.get(Series, series_id)
        if series is None:
            raise ValueError(f"series {series_id} is not in the catalog")
        fmt = series.format
        rows = list(s.execute(select(Instance.raw_key, Instance.source_path).where(Instance.series_id == series_id)
                              .order_by(Instance.raw_key)))
        raw_keys = [r[0] for r in rows]
        # the names at the source (may hold a patient's name or MRN): searched for, never written
        source_names = [[r[1]] if r[1] else [] for r in rows]
    config = resolved_config(profile, options)
    result: dict[str, Any] = {}

    def work() -> Outcome:
        if fmt == "dicom":
            out = deidentify_series(store.uri, raw_keys, profile=profile, options=options,
                                    chash=config_hash(config))
            prefix = "/".join(out["outputs"][0].split("/")[:3]) + "/" if out["outputs"] else None
        else:
            # PNG/JPEG (metadata dropped, burned-in text masked) and NIfTI (free text cleaned,
            # extensions dropped), under content-derived names: deid.raster, deid.nifti
            out = deidentify_images(store.uri, raw_keys, fmt, source_names)
            prefix = out["outputs"][0].rsplit("/", 1)[0] + "/" if out["outputs"] else None
        result.update(out)
        if out["quarantined"]:
            _quarantine(catalog, "deid", out["quarantined"])
        status = {"ok": "ok", "partial": "ok", "failed": "failed"}[out["status"]]
        reason = (f"{len(out['quarantined'])} of {len(raw_keys)} instances quarantined"
                  if out["quarantined"] else None)
        return Outcome(status=status, reason=reason, output_uri=prefix,
                       metrics={"written": out["written"], "unchanged": out["unchanged"],
                                "quarantined": len(out["quarantined"]), "outputs": out["outputs"],
                                "pixels": out["pixels"]})

    run = run_stage(catalog, stage="deid", version=stage_version(fmt), subject_type="series", subject_id=series_id,
                    input_hash=series_input_hash(catalog, series_id), config=config, work=work)
    return {"series_id": series_id, "format": fmt, "status": run.status, "reason": run.reason, "deid_prefix": run.output_uri,
            "outputs": run.metrics.get("outputs", []), "quarantined": run.metrics.get("quarantined", 0),
            "reused": run.reused}


def _deid_keys(ref: dict[str, Any]) -> list[str]:
    return list(ref.get("outputs") or [])


def classify_config(config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The classify stage's resolved configuration (its idempotency key): the overrides, the rules
    file and the header model's weights by content hash (None: rules only or no weights)."""
    from curation.classify.classifier import weights_path
    from curation.classify.rules import RULES_PATH

    config = dict(config or {})
    model = config.get("model")
    weights = None if model is False else file_digest(weights_path(model))
    return {"overrides": config, "rules": file_digest(config.get("rules") or RULES_PATH), "model": weights}


def quality_config(config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The quality stage's resolved configuration (its idempotency key): the thresholds file with
    the overrides merged in, and the quality model's weights by content hash."""
    from curation.quality.decision import load_config, weights_path

    return {"thresholds": load_config(config), "model": file_digest(weights_path())}


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
            if ref.get("format", "dicom") != "dicom":  # PNG/JPEG/NIfTI: kind from content
                from curation.classify.raster import classify_image

                result = classify_image(paths[0], config)
            else:
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
            if ref.get("format", "dicom") in ("png", "jpeg"):
                result = assess_image(paths[0], config, classification)
            elif classification["kind"] == "VOLUME":  # NIfTI of unknown acquisition: foreground metrics
                result = assess_series(paths, config, classification={**classification, "kind": "OTHER_MR"})
                result["kind"] = "VOLUME"
                result["decision"]["reason"] += " (scored as a volume of unknown acquisition: foreground metrics)"
            else:
                result = assess_series(paths, config, classification=classification)
            row = stage_result(result)
        return Outcome(status=row["status"], metrics=row["metrics"], reason=row["reason"])

    run = run_stage(catalog, stage="quality", version=str(QUALITY_VERSION), subject_type="series",
                    subject_id=ref["series_id"], input_hash=config_hash({"deid": keys, "class": classification}),
                    config=quality_config(config), work=work)
    decision = (run.metrics.get("decision") or {}).get("decision", run.status)
    return {**ref, "decision": decision, "decision_reason": run.reason, "quality_status": run.status}


def assess_image(path: Path, config: dict[str, Any] | None, classification: dict[str, Any]) -> dict[str, Any]:
    """Quality of one de-identified PNG/JPEG (``assess_series``' result fields): the projection
    metrics (exposure, saturation, noise) on its pixels, the decision for its kind. A photo or a
    screenshot is scored with the same 2D proxies; where no learned model covers the kind the
    decision says so (limits only). Unreadable pixels give a review decision with the reason."""
    from curation.classify.raster import read_raster
    from curation.quality.decision import decide, load_config
    from curation.quality.metrics import PROJECTION, STAGE_VERSION, compute_metrics

    cfg = load_config(config)
    kind = classification.get("kind") or "OTHER"
    try:
        img = read_raster(path)
        bits = 16 if img.dtype.itemsize == 2 else 8
        ms = compute_metrics(None, (1.0, 1.0, 1.0), kind if kind in PROJECTION else "SC", image2d=img,
                             bits_stored=bits, config=cfg)
    except (ValueError, OSError) as exc:
        return {"kind": kind, "metrics": {}, "nan_reasons": {}, "masks": {},
                "decision": {"decision": "review", "reason": f"pixel data unusable ({type(exc).__name__})",
                             "p_degraded": None}, "stage_version": STAGE_VERSION}
    return {"kind": kind, "metrics": ms.values, "nan_reasons": ms.reasons, "masks": ms.masks,
            "decision": decide(ms.values, kind, cfg), "stage_version": STAGE_VERSION}
