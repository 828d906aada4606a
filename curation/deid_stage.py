"""The `deid` stage of curate_source: de-identify ONE series from the raw zone into the deid zone.

Glue only: the work is ``deid.engine.Deidentifier``. Vault (zone VAULT of the same store, see
`curation.reid_vault`): the pseudonym secret, the officer's public key, and one sealed map fragment
per series ``deid/reid/<series>.sealed``, which the pipeline can write but not read.
Deid zone layout: ``<pseudonymous PatientID>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm``.
The returned dict carries no PHI (pseudonyms, new UIDs, counts, hashes, reasons): safe for XCom.
"""
from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import yaml

from curation.confighash import config_hash, file_digest
from curation.reid_vault import store_public_key, store_secret, write_fragment
from curation.store import Zone, open_store
from deid._paths import include_dir
from deid.engine import IMPLEMENTATION_VERSION, Deidentifier
from deid.profile import compile_plan, load_profile, profile_path
from deid.table import TABLE_FILE

STAGE = "deid"
STAGE_VERSION = "1"


@lru_cache(maxsize=8)
def _deidentifier(store_uri: str, profile: str, options: tuple[str, ...], config_key: str) -> Deidentifier:
    """One per store, profile and resolved configuration (`config_key`): an edited profile in a
    long-lived process builds a new de-identifier instead of reusing the old one."""
    store = open_store(store_uri)
    return Deidentifier(profile, store_secret(store), options)


def resolved_config(profile: str = "default", options: Sequence[str] = ()) -> dict[str, Any]:
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


def deidentify_series(
    store_uri: str,
    raw_keys: Sequence[str],
    *,
    profile: str = "default",
    options: Sequence[str] = (),
    chash: str | None = None,
) -> dict[str, Any]:
    """De-identify the raw objects ``raw_keys`` (one series) and write the results to the deid zone.

    Returns ``{"status", "series_instance_uid", "study_instance_uid", "patient_pseudonym",
    "written", "unchanged", "quarantined": [{"raw_key", "sha256", "reason_code", "reason",
    "findings"}], "outputs": [deid keys], "counts", "pixels", "config_hash", "stage_version"}``.
    ``status`` is ok (all written), partial (some quarantined) or failed (none written)."""
    store = open_store(store_uri)
    public_key = store_public_key(store)  # before any output: no written object without its map entry
    if chash is None:  # the stage glue passes the hash of the configuration it already resolved
        chash = config_hash(resolved_config(profile, options))
    deider = _deidentifier(store_uri, profile, tuple(options), chash)
    counts: Counter = Counter()
    pixels: Counter = Counter()
    out: dict[str, Any] = {"written": 0, "unchanged": 0, "quarantined": [], "outputs": [],
                           "series_instance_uid": None, "study_instance_uid": None, "patient_pseudonym": None}
    reid: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for raw_key in raw_keys:
        data = store.get_bytes(Zone.RAW, raw_key)
        r = deider.deidentify(data, raw_key)
        counts.update(r.counts)
        if r.status != "written" or r.data is None:
            out["quarantined"].append({"raw_key": raw_key, "sha256": r.sha256, "reason_code": r.reason_code or "quarantined",
                                       "reason": r.reason, "findings": [f.as_dict() for f in r.findings]})
            continue
        key = f"{r.pseudonym}/{r.study_uid}/{r.series_uid}/{r.sop_uid}.dcm"
        new_hash = hashlib.sha256(r.data).hexdigest()
        if key in seen and seen[key] != new_hash:
            out["quarantined"].append({"raw_key": raw_key, "sha256": r.sha256, "reason_code": "conflict",
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


#: Per-object pixel figures summed over a series (deid.engine / deid.raster results).
_PIXEL_KEYS = ("masked_boxes", "ocr_calls", "masked_in_field_px")


def _add_pixels(total: Counter, pixels: dict[str, Any] | None) -> None:
    for k in _PIXEL_KEYS:
        total[k] += int((pixels or {}).get(k, 0) or 0)


def _finish(out: dict[str, Any], counts: Counter, pixels: Counter, fmt: str) -> dict[str, Any]:
    """Status (ok: all written; partial: some quarantined; failed: none written), counts, pixel
    figures and stage version of a series result: the same for DICOM and images."""
    n_ok = out["written"] + out["unchanged"]
    out["status"] = "ok" if not out["quarantined"] else ("partial" if n_ok else "failed")
    out["counts"] = dict(counts)
    out["pixels"] = dict(pixels)
    out["stage_version"] = stage_version(fmt)
    return out


#: Deid-zone folders of the non-DICOM formats (the DICOM layout starts with a patient pseudonym).
IMAGE_FOLDERS = {"png": "images", "jpeg": "images", "nifti": "volumes"}


#: The image branch's own version: "reid" since its outputs have sealed re-identification entries,
#: so image results recorded before that are re-run (and sealed) instead of reused.
IMAGE_BRANCH_VERSION = "reid"


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


def deidentify_images(store_uri: str, raw_keys: Sequence[str], fmt: str,
                      source_names: Sequence[Sequence[str]] = ()) -> dict[str, Any]:
    """De-identify PNG/JPEG (``deid.raster``) or NIfTI (``deid.nifti``) objects of the raw zone into
    ``<images|volumes>/<name stem>/<name>`` of the deid zone, where ``name`` is derived from the
    output's content (the source's file name is never carried over). ``source_names[i]``: the
    names the i-th object had at its sources, searched for in the output and never written.
    Each output gets a sealed re-identification entry as a DICOM series does (``deid.filemeta.image_reid_entry``;
    its pseudonym is the output's name stem ``<h>``), in ``deid/reid/<raw sha256>.sealed``.
    Returns the same fields as ``deidentify_series`` (no PHI: content-derived names, counts)."""
    from deid.filemeta import deidentify_file, image_reid_entry

    store = open_store(store_uri)
    public_key = store_public_key(store)  # before any output: no written object without its map entry
    counts: Counter = Counter()
    pixels: Counter = Counter()
    out: dict[str, Any] = {"written": 0, "unchanged": 0, "quarantined": [], "outputs": [],
                           "series_instance_uid": None, "study_instance_uid": None, "patient_pseudonym": None}
    for i, raw_key in enumerate(raw_keys):
        data = store.get_bytes(Zone.RAW, raw_key)
        names = list(source_names[i]) if i < len(source_names) else []
        r = deidentify_file(data, fmt, names)
        counts.update(r.counts)
        if r.status != "written" or r.data is None:
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
