"""The `deid` stage: de-identify ONE series from the raw zone into the deid zone, over `deid.engine`
(DICOM) and `deid.filemeta` (PNG/JPEG/NIfTI); quarantine what cannot be made safe.

Vault (zone VAULT of the same store, see `curation.reid_vault`): the pseudonym secret, the officer's
public key, and one sealed map fragment per series ``deid/reid/<series>.sealed``, which the pipeline
can write but not read. Deid zone layout: DICOM
``<pseudonymous PatientID>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm``; images
``<images|volumes>/<content hash>/<name>``. Results carry no PHI (pseudonyms, new UIDs, counts,
hashes, reasons).
"""
from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import yaml
from sqlalchemy import select

from curation.catalog import Catalog, Instance, QuarantineRecord, Series
from curation.confighash import config_hash, file_digest
from curation.pipeline.idempotency import StageKey, run_once, series_input_hash
from curation.pipeline.refs import SeriesRef
from curation.pipeline.result import StageResult
from curation.reid_vault import store_public_key, store_secret, write_fragment
from curation.store import Store, Zone
from curation.vocabulary import FileStatus, QuarantineReason, StageStatus
from deid._paths import include_dir
from deid.engine import IMPLEMENTATION_VERSION, Deidentifier
from deid.profile import compile_plan, load_profile, profile_path
from deid.table import TABLE_FILE

STAGE = "deid"
STAGE_VERSION = "1"
DEFAULT_PROFILE = "default"

#: Deid-zone folders of the non-DICOM formats (the DICOM layout starts with a patient pseudonym).
IMAGE_FOLDERS = {"png": "images", "jpeg": "images", "nifti": "volumes"}

#: The image branch's own version: "reid" since its outputs have sealed re-identification entries,
#: so image results recorded before that are re-run (and sealed) instead of reused.
IMAGE_BRANCH_VERSION = "reid"

#: Per-object pixel figures summed over a series (deid.engine / deid.raster results).
_PIXEL_KEYS = ("masked_boxes", "ocr_calls", "masked_in_field_px")

#: A series' outcome (ok: all written; partial: some quarantined; failed: none written) as a stage status.
_STATUS = {StageStatus.OK: StageStatus.OK, StageStatus.PARTIAL: StageStatus.OK, StageStatus.FAILED: StageStatus.FAILED}


def run(ref: SeriesRef, store: Store, catalog: Catalog, config: Mapping[str, Any] | None = None) -> StageResult:
    """De-identify the series `ref` names; `config`: {"profile": name, "options": [...]}. The result's
    metrics list the deid-zone keys written (`outputs`); its reference carries the deid status, the
    output prefix and the catalog record that lists the outputs."""
    profile = str((config or {}).get("profile") or DEFAULT_PROFILE)
    options = tuple((config or {}).get("options") or ())
    with catalog.session() as s:
        series = s.get(Series, ref.series_id)
        if series is None:
            raise ValueError(f"series {ref.series_id} is not in the catalog")
        fmt = series.format
        rows = list(s.execute(select(Instance.raw_key, Instance.source_path)
                              .where(Instance.series_id == ref.series_id).order_by(Instance.raw_key)))
    raw_keys = [r[0] for r in rows]
    # the names at the source (may hold a patient's name or MRN): searched for, never written
    source_names = [[r[1]] if r[1] else [] for r in rows]
    key = StageKey.of(STAGE, stage_version(fmt), "series", ref.series_id,
                      series_input_hash(catalog, ref.series_id), resolved_config(profile, options))

    def work() -> StageResult:
        if fmt == "dicom":
            out = deidentify_series(store, raw_keys, profile=profile, options=options, chash=key.config_hash)
            prefix = "/".join(out["outputs"][0].split("/")[:3]) + "/" if out["outputs"] else None
        else:
            out = deidentify_images(store, raw_keys, fmt, source_names)
            prefix = out["outputs"][0].rsplit("/", 1)[0] + "/" if out["outputs"] else None
        if out["quarantined"]:
            _quarantine(catalog, out["quarantined"])
        reason = (f"{len(out['quarantined'])} of {len(raw_keys)} instances quarantined"
                  if out["quarantined"] else None)
        return StageResult(status=_STATUS[out["status"]], reason=reason, output_uri=prefix,
                           metrics={"written": out["written"], "unchanged": out["unchanged"],
                                    "quarantined": len(out["quarantined"]), "outputs": out["outputs"],
                                    "pixels": out["pixels"]})

    result = run_once(catalog, key, work)
    result.refs = (ref.replace(format=fmt, status=result.status, deid_record=result.record_id,
                               deid_prefix=result.output_uri, quarantined=result.metrics.get("quarantined", 0),
                               reused=result.reused),)
    return result


def outputs(catalog: Catalog, ref: SeriesRef) -> list[str]:
    """The deid-zone keys of the series `ref` names, as its deid record lists them (none before deid)."""
    from curation.catalog import StageRecord

    if ref.deid_record is None:
        return []
    with catalog.session() as s:
        row = s.get(StageRecord, ref.deid_record)
        return list((row.metrics or {}).get("outputs") or []) if row is not None else []


def _quarantine(catalog: Catalog, items: list[dict[str, Any]]) -> None:
    with catalog.session() as s:
        for q in items:
            exists = s.scalars(select(QuarantineRecord.id).where(
                QuarantineRecord.file == q["raw_key"], QuarantineRecord.stage == STAGE,
                QuarantineRecord.reason_code == q["reason_code"], QuarantineRecord.sha256 == q["sha256"])).first()
            if exists is None:
                s.add(QuarantineRecord(source_id=None, file=q["raw_key"], sha256=q["sha256"], raw_key=q["raw_key"],
                                       stage=STAGE, reason_code=q["reason_code"], reason=q["reason"] or ""))


_DEIDENTIFIERS: dict[tuple[str, str, tuple[str, ...], str], Deidentifier] = {}


def _deidentifier(store: Store, profile: str, options: tuple[str, ...], config_key: str) -> Deidentifier:
    """One per store, profile and resolved configuration (`config_key`): an edited profile in a
    long-lived process builds a new de-identifier instead of reusing the old one."""
    key = (store.uri, profile, options, config_key)
    if key not in _DEIDENTIFIERS:
        if len(_DEIDENTIFIERS) >= 8:
            _DEIDENTIFIERS.pop(next(iter(_DEIDENTIFIERS)))
        _DEIDENTIFIERS[key] = Deidentifier(profile, store_secret(store), options)
    return _DEIDENTIFIERS[key]


def resolved_config(profile: str = DEFAULT_PROFILE, options: Sequence[str] = ()) -> dict[str, Any]:
    """What the stage will apply, for its idempotency key: the profile as loaded (every field, and
    its YAML as read), the compiled action of every Annex E tag, the Annex E table and safe-private
    list by content hash, and the code's versions. Editing any of them re-runs the stage."""
    prof = load_profile(profile, tuple(options))
    plan = compile_plan(prof)
    path = profile_path(profile)
    return {"stage_version": STAGE_VERSION, "implementation": IMPLEMENTATION_VERSION,
            "profile": dataclasses.asdict(prof), "profile_file": yaml.safe_load(path.read_text()) or {},
            "actions": {"exact": sorted(plan.exact.items()), "repeating": list(plan.repeating),
                        "private": plan.private},
            "annex_e_table": file_digest(include_dir() / TABLE_FILE),
            "safe_private": file_digest(include_dir() / "safe_private.yaml")}


def stage_version(fmt: str) -> str:
    """The deid stage's version for a series of this format (part of its idempotency key): DICOM
    the stage's own; PNG/JPEG and NIfTI also their de-identifier's and this branch's."""
    if fmt == "dicom":
        return STAGE_VERSION
    if fmt == "nifti":
        from deid.nifti import VERSION
    else:
        from deid.raster import VERSION
    return f"{STAGE_VERSION}+{VERSION}+{IMAGE_BRANCH_VERSION}"


def _empty() -> dict[str, Any]:
    return {"written": 0, "unchanged": 0, "quarantined": [], "outputs": [],
            "series_instance_uid": None, "study_instance_uid": None, "patient_pseudonym": None}


def deidentify_series(store: Store, raw_keys: Sequence[str], *, profile: str = DEFAULT_PROFILE,
                      options: Sequence[str] = (), chash: str | None = None) -> dict[str, Any]:
    """De-identify the raw DICOM objects ``raw_keys`` (one series) into the deid zone.

    Returns ``{"status", "series_instance_uid", "study_instance_uid", "patient_pseudonym",
    "written", "unchanged", "quarantined": [{"raw_key", "sha256", "reason_code", "reason",
    "findings"}], "outputs": [deid keys], "counts", "pixels", "config_hash", "stage_version"}``.
    ``status`` is ok (all written), partial (some quarantined) or failed (none written)."""
    public_key = store_public_key(store)  # before any output: no written object without its map entry
    if chash is None:  # the stage passes the hash of the configuration it already resolved
        chash = config_hash(resolved_config(profile, options))
    deider = _deidentifier(store, profile, tuple(options), chash)
    counts: Counter = Counter()
    pixels: Counter = Counter()
    out = _empty()
    reid: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for raw_key in raw_keys:
        data = store.get_bytes(Zone.RAW, raw_key)
        r = deider.deidentify(data, raw_key)
        counts.update(r.counts)
        if r.status != FileStatus.WRITTEN or r.data is None:
            out["quarantined"].append({"raw_key": raw_key, "sha256": r.sha256,
                                       "reason_code": r.reason_code or QuarantineReason.QUARANTINED,
                                       "reason": r.reason, "findings": [f.as_dict() for f in r.findings]})
            continue
        key = f"{r.pseudonym}/{r.study_uid}/{r.series_uid}/{r.sop_uid}.dcm"
        new_hash = hashlib.sha256(r.data).hexdigest()
        if key in seen and seen[key] != new_hash:
            out["quarantined"].append({
                "raw_key": raw_key, "sha256": r.sha256, "reason_code": QuarantineReason.CONFLICT,
                "reason": "another object of the series maps to the same SOPInstanceUID with other content",
                "findings": []})
            continue
        seen[key] = new_hash
        if store.exists(Zone.DEID, key) and hashlib.sha256(store.get_bytes(Zone.DEID, key)).hexdigest() == new_hash:
            out["unchanged"] += 1
        else:
            store.put_bytes(Zone.DEID, key, r.data)
            out["written"] += 1
        out["outputs"].append(key)
        out["series_instance_uid"] = r.series_uid
        out["study_instance_uid"] = r.study_uid
        out["patient_pseudonym"] = r.pseudonym
        _add_pixels(pixels, r.pixels)
        for pid, info in r.reid.items():
            slot = reid.setdefault(pid, {"studies": {}})
            slot.update({k: v for k, v in info.items() if k != "studies"})
            slot["studies"].update(info.get("studies", {}))
    if reid and out["series_instance_uid"]:
        write_fragment(store, out["series_instance_uid"], reid, public_key)
    out["config_hash"] = chash
    return _finish(out, counts, pixels, "dicom")


def deidentify_images(store: Store, raw_keys: Sequence[str], fmt: str,
                      source_names: Sequence[Sequence[str]] = ()) -> dict[str, Any]:
    """De-identify PNG/JPEG (``deid.raster``) or NIfTI (``deid.nifti``) objects of the raw zone into
    ``<images|volumes>/<name stem>/<name>`` of the deid zone, where ``name`` is derived from the
    output's content (the source's file name is never carried over). ``source_names[i]``: the
    names the i-th object had at its sources, searched for in the output and never written.
    Each output gets a sealed re-identification entry as a DICOM series does (``deid.filemeta.image_reid_entry``;
    its pseudonym is the output's name stem ``<h>``), in ``deid/reid/<raw sha256>.sealed``.
    Returns the same fields as ``deidentify_series`` (no PHI: content-derived names, counts)."""
    from deid.filemeta import deidentify_file, image_reid_entry

    public_key = store_public_key(store)  # before any output: no written object without its map entry
    counts: Counter = Counter()
    pixels: Counter = Counter()
    out = _empty()
    for i, raw_key in enumerate(raw_keys):
        data = store.get_bytes(Zone.RAW, raw_key)
        names = list(source_names[i]) if i < len(source_names) else []
        r = deidentify_file(data, fmt, names)
        counts.update(r.counts)
        if r.status != FileStatus.WRITTEN or r.data is None:
            out["quarantined"].append({"raw_key": raw_key, "sha256": r.sha256, "reason_code": r.reason_code,
                                       "reason": r.reason, "findings": [f.as_dict() for f in r.findings]})
            continue
        stem = r.name.split(".", 1)[0]
        key = f"{IMAGE_FOLDERS[fmt]}/{stem}/{r.name}"
        write_fragment(store, r.sha256, image_reid_entry(stem, data, fmt, r.sha256, names, raw_key=raw_key), public_key)
        if store.exists(Zone.DEID, key):  # the name is the content's hash: same key, same bytes
            out["unchanged"] += 1
        else:
            store.put_bytes(Zone.DEID, key, r.data)
            out["written"] += 1
        out["outputs"].append(key)
        _add_pixels(pixels, r.pixels)
    return _finish(out, counts, pixels, fmt)


def _add_pixels(total: Counter, pixels: dict[str, Any] | None) -> None:
    for k in _PIXEL_KEYS:
        total[k] += int((pixels or {}).get(k, 0) or 0)


def _finish(out: dict[str, Any], counts: Counter, pixels: Counter, fmt: str) -> dict[str, Any]:
    """Status (ok: all written; partial: some quarantined; failed: none written), counts, pixel
    figures and stage version of a series result: the same for DICOM and images."""
    n_ok = out["written"] + out["unchanged"]
    out["status"] = (StageStatus.OK if not out["quarantined"]
                     else (StageStatus.PARTIAL if n_ok else StageStatus.FAILED))
    out["counts"] = dict(counts)
    out["pixels"] = dict(pixels)
    out["stage_version"] = stage_version(fmt)
    return out


__all__ = ["IMAGE_FOLDERS", "STAGE", "STAGE_VERSION", "deidentify_images", "deidentify_series", "outputs",
           "resolved_config", "run", "stage_version"]
