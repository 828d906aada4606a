"""The `ingest` stage: one source (folder, archive, s3:// prefix, DICOMweb URL) into the raw zone
and the catalog, over `curation.ingest`. Its reference is the source; it hands on one reference per
series it saw, in batches (`batches`): each task of the per-series stages (deid, classify, quality)
runs its stage over one batch (`run_batch`), and each series keeps its own record in the catalog.

Why batches: an Airflow task costs one to three seconds of start-up whatever it does (a process, the
DAG file parsed, round trips to the API server and the metadata DB), so one task per series made a
700-series site spend more time starting tasks than working (docs/scale.md)."""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from curation.catalog import Catalog
from curation.catalog.models import QuarantineRecord, utcnow
from curation.pipeline.refs import SeriesRef
from curation.pipeline.result import StageResult
from curation.store import Store
from curation.vocabulary import StageStatus

log = logging.getLogger(__name__)

#: How often (in files) a long ingest says how far it is.
PROGRESS_EVERY = 2000

#: At most this many tasks per per-series stage of one run: enough to keep every worker slot busy and
#: the progress fine-grained, few enough that start-up stays small beside the work.
MAX_TASKS_PER_STAGE = 24


def _progress(done: int, total: int) -> None:
    if done == total or done % PROGRESS_EVERY == 0:
        log.info("ingest progress: %d/%d files", done, total)


class ReadmitError(ValueError):
    """A re-admit names no quarantined ingest file of this catalog (or the wrong one)."""


def readmitted_file(catalog: Catalog, readmit: Mapping[str, Any]) -> QuarantineRecord:
    """The ingest quarantine record a re-admit names by id and content hash (the conf carries no path:
    the path inside the source may hold a patient's name, so it is looked up here, on the worker)."""
    from curation.ingest.pipeline import STAGE as INGEST_STAGE

    with catalog.session() as s:
        record = s.get(QuarantineRecord, int(readmit.get("quarantine_id") or 0))
        if record is None or record.stage != INGEST_STAGE or record.sha256 != str(readmit.get("sha256") or ""):
            raise ReadmitError(f"re-admit {dict(readmit)} names no quarantined ingest file of this catalog")
        s.expunge(record)
        return record


def _resolve(catalog: Catalog, record_id: int, resolution: str) -> None:
    with catalog.session() as s:
        record = s.get(QuarantineRecord, record_id)
        record.resolved_at, record.resolution = utcnow(), resolution


def run(source: str, store: Store, catalog: Catalog, config: Mapping[str, Any] | None = None) -> StageResult:
    """Ingest `source`; config: {"site": name, "exclude": [glob, ...], "workers": n, "readmit":
    {"quarantine_id", "sha256"}}. With `readmit`, only that quarantined file is read again (the
    operator's page's re-admit once its cause is fixed); when it is ingested now, its quarantine record
    is marked resolved. Raises `curation.ingest.SourceError` when the source as a whole is unusable
    (missing, unreachable). Metrics: the run's counts (no paths, no UIDs, no PHI); quarantined files are
    logged by content hash."""
    from curation.ingest import ingest

    config = dict(config or {})
    kwargs: dict[str, Any] = {"workers": config.get("workers"), "exclude": list(config.get("exclude") or ())}
    if config.get("site"):
        kwargs["site"] = str(config["site"])
    readmit = readmitted_file(catalog, config["readmit"]) if config.get("readmit") else None
    if readmit is not None:
        kwargs["only_files"] = [readmit.file]
    summary = ingest(source, catalog, store, progress=_progress, **kwargs)
    if readmit is not None:
        still = any(q["file"] == readmit.file for q in summary.quarantined)
        if not still and summary.files_seen:
            _resolve(catalog, readmit.id, f"re-admitted: ingested again ({summary.instances} instance)")
        log.info("re-admit of quarantine record %d: %s", readmit.id,
                 "still quarantined" if still else "ingested" if summary.files_seen else "file no longer in the source")
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


def batches(refs: Sequence[Any], max_tasks: int = MAX_TASKS_PER_STAGE) -> list[list[Any]]:
    """`refs` in order, cut into at most `max_tasks` contiguous batches of near-equal size: one series
    per batch while there are no more series than tasks (a small source looks as before)."""
    n, k = len(refs), min(len(refs), max(1, int(max_tasks)))
    return [list(refs[i * n // k:(i + 1) * n // k]) for i in range(k)]


def series_of(batches_: Iterable[Any]) -> list[Any]:
    """The references of a stage's batches in one list (the batches' order, then each batch's)."""
    return [ref for batch in batches_ or () for ref in (batch if isinstance(batch, list) else [batch])]


def run_batch(run_one: Callable[[SeriesRef], StageResult], batch: Iterable[Mapping[str, Any] | SeriesRef]
              ) -> list[dict[str, Any]]:
    """Run a per-series stage over one batch; the next stage's references as XCom JSON.

    Every series is tried even when one raises (each result is recorded in the catalog as it is made),
    then the first error is raised: the task fails as a one-series task would, and its retry finds the
    finished series' records and reuses them (`curation.pipeline.idempotency`), so it redoes only the
    series that failed."""
    out: list[dict[str, Any]] = []
    errors: list[tuple[int, Exception]] = []
    for ref in map(SeriesRef.from_xcom, batch):
        try:
            out.append(run_one(ref).ref.to_xcom())
        except Exception as exc:  # noqa: BLE001 - re-raised below, after the rest of the batch
            log.error("series %s failed: %s", ref.series_id, type(exc).__name__)
            errors.append((ref.series_id, exc))
    if errors:
        failed = ", ".join(str(sid) for sid, _ in errors)
        raise RuntimeError(f"{len(errors)} of {len(out) + len(errors)} series failed (series {failed})") \
            from errors[0][1]
    return out


__all__ = ["MAX_TASKS_PER_STAGE", "batches", "run", "run_batch", "series_of"]
