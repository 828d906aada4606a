"""The `ingest` stage: one source (folder, archive, s3:// prefix, DICOMweb URL) into the raw zone
and the catalog, over `curation.ingest`. Its reference is the source; it hands on one reference per
series it saw (what the per-series stages map over)."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from curation.catalog import Catalog
from curation.pipeline.refs import SeriesRef
from curation.pipeline.result import StageResult
from curation.store import Store
from curation.vocabulary import StageStatus

log = logging.getLogger(__name__)

#: How often (in files) a long ingest says how far it is.
PROGRESS_EVERY = 2000


def _progress(done: int, total: int) -> None:
    if done == total or done % PROGRESS_EVERY == 0:
        log.info("ingest progress: %d/%d files", done, total)


def run(source: str, store: Store, catalog: Catalog, config: Mapping[str, Any] | None = None) -> StageResult:
    """Ingest `source`; config: {"site": name, "exclude": [glob, ...], "workers": n}. Raises
    `curation.ingest.SourceError` when the source as a whole is unusable (missing, unreachable).
    Metrics: the run's counts (no paths, no UIDs, no PHI); quarantined files are logged by content hash."""
    from curation.ingest import ingest

    config = dict(config or {})
    kwargs: dict[str, Any] = {"workers": config.get("workers"), "exclude": list(config.get("exclude") or ())}
    if config.get("site"):
        kwargs["site"] = str(config["site"])
    summary = ingest(source, catalog, store, progress=_progress, **kwargs)
    metrics = summary.as_dict()
    log.info("ingest: %(patients)d patients, %(studies)d studies, %(series)d series, "
             "%(instances)d instances (%(instances_new)d new), %(duplicates)d duplicates, "
             "%(quarantined)d quarantined", metrics)
    for q in summary.quarantined:
        # File paths of hospital exports can carry names: log the content hash, not the path.
        # (no hash when not even the bytes could be read: "-")
        log.warning("quarantined file sha256:%s: [%s] %s", (q["sha256"] or "-")[:16], q["reason_code"], q["reason"])
    return StageResult(status=StageStatus.OK, metrics=metrics,
                       refs=tuple(SeriesRef(series_id=sid) for sid in summary.series_ids))


__all__ = ["run"]
