"""The `register` stage on one study: motion correction and co-registration over
`curation.registration.register_study`, derived series and review PNGs published to the derived zone.

Runs after quality on the series of one study that were de-identified and not excluded. The fixed
image is the study's default static series chosen from the classification results (3D, T2w, axial,
not derived, with documented fallbacks). Derived-zone layout:
``<patient pseudonym>/<StudyInstanceUID>/<derived SeriesInstanceUID>/IM*.dcm`` and
``.../review/<derived SeriesInstanceUID>.png``. This stage is the one writer of registration's outputs
to the store and its idempotency the one check (`curation.pipeline.idempotency`).
"""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import select

from curation.catalog import Catalog, Series
from curation.confighash import config_hash
from curation.pipeline.files import local_files
from curation.pipeline.idempotency import StageKey, run_once
from curation.pipeline.refs import SeriesRef, StudyRef
from curation.pipeline.result import StageResult
from curation.store import Store, Zone
from curation.vocabulary import LOCALIZER_KINDS, PROJECTION_KINDS, SeriesKind, StageStatus

#: Kinds that are no volume to register (and series not classified at all).
NOT_REGISTERED = (None, *LOCALIZER_KINDS, SeriesKind.US, SeriesKind.SC, *PROJECTION_KINDS, SeriesKind.OTHER)

#: The file register_study leaves beside its outputs; the stage's record holds the result instead.
_SUMMARY_FILE = "registration.json"


def _study_catalog_id(catalog: Catalog, series_id: int) -> int:
    with catalog.session() as s:
        return int(s.scalar(select(Series.study_id).where(Series.id == series_id)) or 0)


def registrable(ref: StudyRef) -> list[SeriesRef]:
    """The study's series the stage registers (volumes by kind); none: the study is skipped."""
    return [r for r in ref.series if r.kind not in NOT_REGISTERED]


def run(ref: StudyRef, store: Store, catalog: Catalog, config: Mapping[str, Any] | None = None) -> StageResult:
    """Register one study's series (config: overrides of include/registration/default.yaml)."""
    from curation.classify import choose_default_series
    from curation.registration import STAGE, STAGE_VERSION, load_config, register_study

    config = dict(config) if config else None
    series = registrable(ref)
    if not series:
        reason = "no volumetric series"
        return StageResult(status=StageStatus.SKIPPED, reason=reason,
                           refs=(ref.replace(status=StageStatus.SKIPPED, reason=reason, derived=0),))
    keys_by_series = {r.series_id: sorted(store.list(Zone.DEID, r.deid_prefix)) for r in series}
    choice = choose_default_series([r.to_xcom() for r in series])
    fixed_id = series[choice["index"]].series_id if choice else None
    study_id = _study_catalog_id(catalog, series[0].series_id)

    def work() -> StageResult:
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
                    return StageResult(status=StageStatus.SKIPPED, reason=f"study cannot be registered: {exc}")
                # The classification's static series is not a usable volume (a single slice, say):
                # let the registration stage pick by its own geometric rule instead.
                try:
                    result = register_study(list(dirs.values()), tmp / "out", config, fixed=None)
                except ValueError as exc2:
                    return StageResult(status=StageStatus.SKIPPED, reason=f"study cannot be registered: {exc2}")
            written: list[str] = []
            for path in sorted((tmp / "out").rglob("*")):
                if path.is_file() and path.name != _SUMMARY_FILE:
                    key = f"{ref.study}/{path.relative_to(tmp / 'out').as_posix()}"
                    store.put_file(Zone.DERIVED, key, path)
                    written.append(key)
            d = result.to_dict()
            metrics = {"derived_series": len(result.derived), "objects": len(written),
                       "fixed_reason": d.get("fixed_reason"), "series": d.get("series")}
            return StageResult(status=StageStatus.OK, metrics=metrics,
                               output_uri=store.uri_for(Zone.DERIVED, ref.study))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    key = StageKey.of(STAGE, STAGE_VERSION, "study", study_id,
                      config_hash({"series": keys_by_series, "fixed": fixed_id}), load_config(config))
    result = run_once(catalog, key, work)
    result.refs = (ref.replace(status=result.status, reason=result.reason,
                               derived=result.metrics.get("derived_series", 0),
                               fixed_reason=result.metrics.get("fixed_reason"), reused=result.reused),)
    return result


__all__ = ["NOT_REGISTERED", "registrable", "run"]
