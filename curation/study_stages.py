"""Per-study stage of curate_source: motion correction and co-registration (`register`).

Runs after quality on the series of one study that were de-identified and not excluded. The fixed
image is the study's default static series chosen from the classification results (3D, T2w, axial,
not derived, with documented fallbacks). Derived series and review PNGs go to the derived zone under
the study's pseudonymous path; the result (no PHI) is recorded as a StageResult of the study.
"""
from __future__ import annotations

import shutil
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select

from curation.catalog import Catalog, Series
from curation.series_stages import local_files
from curation.confighash import config_hash
from curation.stages import Outcome, run_stage
from curation.store import Store, Zone


def group_by_study(refs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-study bundles of per-series results, keeping only series fit for registration."""
    studies: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for ref in refs:
        prefix = ref.get("deid_prefix")
        if not prefix or ref.get("decision") == "exclude" or ref.get("status") != "ok":
            continue
        if ref.get("format", "dicom") != "dicom":  # a PNG/JPEG/NIfTI belongs to no study
            continue
        study_key = "/".join(prefix.strip("/").split("/")[:2])
        studies[study_key].append({k: ref.get(k) for k in ("series_id", "deid_prefix", "kind", "plane",
                                                             "dimensions", "derived", "contrast", "decision")})
    return [{"study": key, "series": sorted(series, key=lambda r: r["series_id"])}
            for key, series in sorted(studies.items())]


def _study_catalog_id(catalog: Catalog, series_id: int) -> int:
    with catalog.session() as s:
        return int(s.scalar(select(Series.study_id).where(Series.id == series_id)) or 0)


def register_study_stage(catalog: Catalog, store: Store, study: dict[str, Any],
                         config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Register one study's series; returns counts and derived-zone keys (safe for XCom)."""
    from curation.classify import choose_default_series
    from curation.registration import load_config
    from curation.registration.study import STAGE_VERSION, register_study

    series = [r for r in study["series"] if r.get("kind") not in (None, "LOCALIZER", "CT_LOCALIZER", "US", "SC",
                                                                     "CR", "DX", "MG", "OTHER")]
    if not series:
        return {"study": study["study"], "status": "skipped", "reason": "no volumetric series", "derived": 0}
    keys_by_series = {r["series_id"]: sorted(store.list(Zone.DEID, r["deid_prefix"])) for r in series}
    choice = choose_default_series(series)
    fixed_id = series[choice["index"]]["series_id"] if choice else None
    study_id = _study_catalog_id(catalog, series[0]["series_id"])
    input_hash = config_hash({"series": keys_by_series, "fixed": fixed_id})

    def work() -> Outcome:
        tmp = Path(tempfile.mkdtemp(prefix="curate-register-"))
        try:
            dirs: dict[int, Path] = {}
            for sid, keys in keys_by_series.items():
                folder = tmp / "in" / str(sid)
                folder.mkdir(parents=True)
                with local_files(store, Zone.DEID, keys) as paths:
                    for i, p in enumerate(paths):
                        shutil.copyfile(p, folder / f"{i:05d}.dcm")
                dirs[sid] = folder
            try:
                result = register_study(list(dirs.values()), tmp / "out", config,
                                        fixed=dirs[fixed_id] if fixed_id is not None else None)
            except ValueError as exc:
                if fixed_id is None:
                    return Outcome(status="skipped", reason=f"study cannot be registered: {exc}")
                # The classification's static series is not a usable volume (a single slice, say):
                # let the registration stage pick by its own geometric rule instead.
                try:
                    result = register_study(list(dirs.values()), tmp / "out", config, fixed=None)
                except ValueError as exc2:
                    return Outcome(status="skipped", reason=f"study cannot be registered: {exc2}")
            written: list[str] = []
            for path in sorted((tmp / "out").rglob("*")):
                if path.is_file() and path.name != "registration.json":
                    key = f"{study['study']}/{path.relative_to(tmp / 'out').as_posix()}"
                    store.put_file(Zone.DERIVED, key, path)
                    written.append(key)
            d = result.to_dict()
            metrics = {"derived_series": len(result.derived), "objects": len(written),
                       "fixed_reason": d.get("fixed_reason"), "series": d.get("series")}
            return Outcome(status="ok", metrics=metrics, output_uri=store.uri_for(Zone.DERIVED, study["study"]))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    run = run_stage(catalog, stage="register", version=STAGE_VERSION, subject_type="study", subject_id=study_id,
                    input_hash=input_hash, config=load_config(config), work=work)
    return {"study": study["study"], "status": run.status, "reason": run.reason,
            "derived": run.metrics.get("derived_series", 0),
            "fixed_reason": run.metrics.get("fixed_reason"), "reused": run.reused}
