"""Ingest a source into the raw zone and the catalog.

Order of work, chosen for crash safety: a file's bytes are written to the raw zone (atomically,
under their content hash) *before* its catalog rows, and catalog rows of a batch commit in one
transaction together with the batch's lineage event. A run killed at any point therefore leaves at
worst raw objects without rows, which the next run adopts without copying; never rows without bytes,
never duplicate rows (unique UIDs), never partial objects (atomic writes).
"""
from __future__ import annotations

import fnmatch
import logging
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from curation.catalog import Catalog, Instance, Patient, QuarantineRecord, Series, Source, Study, add_event
from curation.ingest.inspect import Inspection, inspect_file, raw_key_for
from curation.ingest.sources import Limits, Materialized, Refusal, SourceError, cleanup, materialize, source_kind
from curation.settings import DEFAULT_SITE
from curation.store import LocalStore, Store, Zone
from curation.vocabulary import FileStatus, Modality, QuarantineReason
from deid.pool import process_pool, usable_workers

log = logging.getLogger(__name__)

STAGE = "ingest"
STAGE_VERSION = "1"
BATCH = 500


@dataclass
class IngestSummary:
    """Counts of one ingest run (safe to log and to pass through XCom: no PHI, no UIDs)."""

    source_id: int = 0
    source_kind: str = ""
    files_seen: int = 0
    instances_new: int = 0
    instances_known: int = 0
    duplicates: int = 0
    excluded: int = 0
    bytes_copied: int = 0
    patients: int = 0
    studies: int = 0
    series: int = 0
    instances: int = 0
    series_ids: list[int] = field(default_factory=list)
    quarantined: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def quarantine_counts(self) -> dict[str, int]:
        return dict(Counter(q["reason_code"] for q in self.quarantined))

    def as_dict(self) -> dict[str, Any]:
        """A small JSON-able dict (no file paths: paths in hospital exports can carry names)."""
        return {
            "source_id": self.source_id,
            "source_kind": self.source_kind,
            "files_seen": self.files_seen,
            "patients": self.patients,
            "studies": self.studies,
            "series": self.series,
            "instances": self.instances,
            "instances_new": self.instances_new,
            "instances_known": self.instances_known,
            "duplicates": self.duplicates,
            "excluded": self.excluded,
            "bytes_copied": self.bytes_copied,
            "quarantined": len(self.quarantined),
            "quarantine_reasons": self.quarantine_counts,
            "series_ids": self.series_ids,
            "seconds": round(self.seconds, 3),
        }


def _inspect_star(args: tuple[str, str, str, str, int]) -> Inspection:
    return inspect_file(*args)


def _inspections(files: list[tuple[Path, str]], store: Store, site: str, workers: int,
                 limits: Limits) -> Iterator[Inspection]:
    """Inspect files in order, in a process pool when there is more than one worker (in this
    process inside a daemonic one, e.g. a Celery worker's task: see deid.pool)."""
    args = [(str(p), rel, store.uri, site, limits.max_file_bytes) for p, rel in files]
    workers = usable_workers(workers, "ingest", len(args))
    if workers <= 1 or len(args) < 64:
        yield from map(_inspect_star, args)
        return
    with process_pool(workers) as pool:
        yield from pool.map(_inspect_star, args, chunksize=32)


def _refusal_inspection(ref: Refusal, store: Store) -> Inspection:
    """A source-level refusal as an Inspection; its bytes (if any) are kept in the raw zone."""
    import hashlib

    insp = Inspection(rel=ref.rel)
    if ref.data is not None:
        insp.size = len(ref.data)
        insp.sha256 = hashlib.sha256(ref.data).hexdigest()
        insp.raw_key = raw_key_for(insp.sha256)
        if not store.exists(Zone.RAW, insp.raw_key):
            store.put_bytes(Zone.RAW, insp.raw_key, ref.data)
            insp.copied = True
    return insp.refuse(ref.reason_code, ref.reason)


def register_source(catalog: Catalog, kind: str, uri: str, site: str) -> int:
    """The catalog id of the source (kind, uri), registered with `site` on first sight; safe against
    concurrent registrations (ingest workers, the C-STORE receiver)."""
    for _ in range(5):
        try:
            with catalog.session() as s:
                row = s.scalars(select(Source).where(Source.kind == kind, Source.uri == uri)).first()
                if row is None:
                    row = Source(kind=kind, uri=uri, site=site)
                    s.add(row)
                    s.flush()
                return row.id
        except IntegrityError:
            continue
    raise RuntimeError("could not register the source in the catalog")


class CatalogWriter:
    """Batches inspections into catalog transactions with in-run de-duplication."""

    def __init__(self, catalog: Catalog, store: Store, source_id: int, site: str, summary: IngestSummary) -> None:
        self.catalog = catalog
        self.store = store
        self.source_id = source_id
        self.site = site
        self.summary = summary
        self.seen_uids: dict[str, str] = {}  # SOPInstanceUID -> sha256 accepted in this run
        self.seen_images: set[str] = set()   # sha256 of non-DICOM images accepted in this run
        self.patients: set[str] = set()
        self.studies: set[str] = set()
        self.series_uids: set[str] = set()
        self.series_ids: set[int] = set()
        # Row ids by key, valid only while no transaction failed (cleared on retry).
        self._ids: dict[tuple[str, str], int] = {}

    def write(self, batch: list[Inspection]) -> None:
        if isinstance(self.store, LocalStore) and any(i.copied for i in batch):
            self.store.sync()  # the batch's bytes are durable before rows point at them
        for attempt in range(10):
            try:
                with self.catalog.session() as session:
                    self._write(session, batch)
                return
            except IntegrityError:
                self._ids.clear()
                # A concurrent ingest (or the ledger) raced us: re-read and retry the batch.
                log.info("catalog write raced with another writer; retrying batch (attempt %d)", attempt + 1)
                time.sleep(0.05 * (attempt + 1))
        raise RuntimeError("catalog batch could not be written after 10 attempts")

    def _write(self, s: Any, batch: list[Inspection]) -> None:
        local_seen = dict(self.seen_uids)
        local_images = set(self.seen_images)
        uids = [i.sop_instance_uid for i in batch if i.status == FileStatus.OK and i.format == "dicom"]
        known: dict[str, str] = {}
        for chunk in _chunks(uids, 500):
            for uid, sha in s.execute(select(Instance.sop_instance_uid, Instance.sha256)
                                      .where(Instance.sop_instance_uid.in_(chunk))):
                known[uid] = sha
        image_shas = [i.sha256 for i in batch if i.status == FileStatus.OK and i.format != "dicom"]
        known_images: dict[str, int] = {}   # sha256 -> series id of images already in the catalog
        for chunk in _chunks(image_shas, 500):
            for sha, sid in s.execute(select(Instance.sha256, Instance.series_id).where(
                    Instance.sha256.in_(chunk), Instance.format != "dicom")):
                known_images[sha] = sid

        new_rows: list[dict[str, Any]] = []
        quarantine: list[Inspection] = []
        counts = Counter()
        for insp in batch:
            if insp.status != FileStatus.OK:
                quarantine.append(insp)
                continue
            if insp.format != "dicom":
                if insp.sha256 in local_images:
                    counts["duplicates"] += 1
                    continue
                if insp.sha256 in known_images:
                    # Known, like a known DICOM instance: its series is still one this run curates.
                    counts["known"] += 1
                    local_images.add(insp.sha256)
                    self._note_image(insp, known_images[insp.sha256])
                    continue
                series_id = self._image_series(s, insp)
                local_images.add(insp.sha256)
                new_rows.append(self._row(insp, series_id))
                continue
            uid = insp.sop_instance_uid
            prior = local_seen.get(uid) or known.get(uid)
            if prior is not None:
                if prior == insp.sha256:
                    if uid in local_seen:
                        counts["duplicates"] += 1
                    else:
                        counts["known"] += 1
                        local_seen[uid] = insp.sha256
                        self._note_hierarchy(s, insp)
                    continue
                insp.refuse(QuarantineReason.CONFLICTING_DUPLICATE,
                            "another file with the same SOPInstanceUID but different bytes was ingested first")
                quarantine.append(insp)
                continue
            series_id = self._note_hierarchy(s, insp)
            local_seen[uid] = insp.sha256
            new_rows.append(self._row(insp, series_id))

        if new_rows:
            s.execute(insert(Instance), new_rows)
        q_new = self._quarantine(s, quarantine)
        if new_rows or q_new:
            add_event(s, stage=STAGE, action="ingest_batch", subject=f"source:{self.source_id}",
                      inputs=[], outputs=[r["sha256"] for r in new_rows],
                      details={"instances": len(new_rows), "quarantined": q_new, "stage_version": STAGE_VERSION})
        # Only now, with the transaction about to commit, fold the batch into the run's state.
        self.seen_uids = local_seen
        self.seen_images = local_images
        self.summary.instances_new += len(new_rows)
        self.summary.instances_known += counts["known"]
        self.summary.duplicates += counts["duplicates"]

    def _row(self, insp: Inspection, series_id: int) -> dict[str, Any]:
        return {
            "series_id": series_id,
            "sop_instance_uid": insp.sop_instance_uid,
            "sha256": insp.sha256,
            "size": insp.size,
            "raw_key": insp.raw_key,
            "format": insp.format,
            "transfer_syntax_uid": insp.transfer_syntax_uid,
            "rows": insp.rows,
            "columns": insp.columns,
            "number_of_frames": insp.number_of_frames,
            "source_id": self.source_id,
            "source_path": insp.rel,
        }

    def _note_hierarchy(self, s: Any, insp: Inspection) -> int:
        """Find or create patient, study and series rows for a DICOM instance; returns the series id."""
        series_id = self._ids.get(("series", insp.series_instance_uid))
        if series_id is None:
            study_id = self._ids.get(("study", insp.study_instance_uid))
            if study_id is None:
                patient_id = self._ids.get(("patient", insp.patient_key))
                if patient_id is None:
                    patient_id = s.scalars(select(Patient.id).where(
                        Patient.site == self.site, Patient.patient_key == insp.patient_key)).first()
                    if patient_id is None:
                        patient = Patient(site=self.site, patient_key=insp.patient_key)
                        s.add(patient)
                        s.flush()
                        patient_id = patient.id
                    self._ids[("patient", insp.patient_key)] = patient_id
                study_id = s.scalars(select(Study.id).where(
                    Study.study_instance_uid == insp.study_instance_uid)).first()
                if study_id is None:
                    study = Study(patient_id=patient_id, study_instance_uid=insp.study_instance_uid)
                    s.add(study)
                    s.flush()
                    study_id = study.id
                self._ids[("study", insp.study_instance_uid)] = study_id
            series_id = s.scalars(select(Series.id).where(
                Series.series_instance_uid == insp.series_instance_uid)).first()
            if series_id is None:
                series = Series(study_id=study_id, series_instance_uid=insp.series_instance_uid, format="dicom",
                                modality=insp.modality, sop_class_uid=insp.sop_class_uid)
                s.add(series)
                s.flush()
                series_id = series.id
            self._ids[("series", insp.series_instance_uid)] = series_id
        self.patients.add(insp.patient_key)
        self.studies.add(insp.study_instance_uid)
        self.series_uids.add(insp.series_instance_uid)
        self.series_ids.add(series_id)
        return series_id

    def _image_series(self, s: Any, insp: Inspection) -> int:
        """A non-DICOM image stands as its own series (no patient, no study: nothing to group by)."""
        series = Series(study_id=None, series_instance_uid=None, format=insp.format,
                        modality=Modality.MR if insp.format == "nifti" else Modality.OT)
        s.add(series)
        s.flush()
        self._note_image(insp, series.id)
        return series.id

    def _note_image(self, insp: Inspection, series_id: int) -> None:
        self.series_ids.add(series_id)
        self.series_uids.add(f"{insp.format}:{insp.sha256}")

    def _quarantine(self, s: Any, items: list[Inspection]) -> int:
        new = 0
        for insp in items:
            exists = s.scalars(select(QuarantineRecord.id).where(
                QuarantineRecord.source_id == self.source_id, QuarantineRecord.file == insp.rel,
                QuarantineRecord.stage == STAGE, QuarantineRecord.reason_code == insp.reason_code,
                QuarantineRecord.sha256 == insp.sha256)).first()
            self.summary.quarantined.append({"file": insp.rel, "reason_code": insp.reason_code or "",
                                             "reason": insp.reason or "", "sha256": insp.sha256})
            if exists is None:
                s.add(QuarantineRecord(source_id=self.source_id, file=insp.rel, sha256=insp.sha256,
                                       raw_key=insp.raw_key, stage=STAGE, reason_code=insp.reason_code or "",
                                       reason=insp.reason or ""))
                new += 1
        s.flush()
        return new


def _excluded(rel: str, patterns: Sequence[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(rel, pat) or fnmatch.fnmatchcase(name, pat) for pat in patterns)


def _chunks(items: list[Any], n: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


ProgressFn = Callable[[int, int], None]


def ingest(source_uri: str, catalog: Catalog, store: Store, *, site: str = DEFAULT_SITE,
           workers: int | None = None, limits: Limits | None = None,
           progress: ProgressFn | None = None, workdir: Path | None = None,
           exclude: Sequence[str] = (), only_files: Sequence[str] = ()) -> IngestSummary:
    """Ingest every file of `source_uri` into `store`'s raw zone and the catalog.

    Bad files are quarantined with a specific reason and the run goes on; re-running the same source
    adds no rows and copies no bytes. Files whose path inside the source matches one of the `exclude`
    glob patterns (e.g. "ground_truth.json", "*/Thumbs.db") are skipped and counted. With
    `only_files` (paths inside the source, as quarantine records name them) only those files are read:
    an operator re-admitting one quarantined file once its cause is fixed. Raises SourceError only when
    the source as a whole is unusable.
    """
    started = time.monotonic()
    limits = limits or Limits()
    workers = workers or min(os.cpu_count() or 1, 4)
    kind = source_kind(source_uri)
    tmp = Path(tempfile.mkdtemp(prefix="curate-ingest-", dir=workdir))
    try:
        mat: Materialized = materialize(source_uri, tmp, limits)
        summary = IngestSummary(source_kind=kind)
        if exclude:
            kept = [(p, rel) for p, rel in mat.files if not _excluded(rel, exclude)]
            summary.excluded = len(mat.files) - len(kept)
            mat.files = kept
        if only_files:
            wanted = set(only_files)
            mat.files = [(p, rel) for p, rel in mat.files if rel in wanted]
            mat.refusals = [r for r in mat.refusals if r.rel in wanted]
        summary.source_id = register_source(catalog, kind, mat.uri, site)
        summary.files_seen = len(mat.files) + len(mat.refusals)
        writer = CatalogWriter(catalog, store, summary.source_id, site, summary)
        batch = [_refusal_inspection(r, store) for r in mat.refusals]
        done = len(batch)
        for insp in _inspections(mat.files, store, site, workers, limits):
            if insp.copied:
                summary.bytes_copied += insp.size
            batch.append(insp)
            done += 1
            if len(batch) >= BATCH:
                writer.write(batch)
                batch = []
            if progress is not None and (done % 200 == 0 or done == summary.files_seen):
                progress(done, summary.files_seen)
        if batch:
            writer.write(batch)
        if progress is not None and not mat.files:
            progress(summary.files_seen, summary.files_seen)
        summary.patients = len(writer.patients)
        summary.studies = len(writer.studies)
        summary.series = len(writer.series_uids)
        summary.series_ids = sorted(writer.series_ids)
        summary.instances = summary.instances_new + summary.instances_known
        summary.seconds = time.monotonic() - started
        log.info("ingest of source %d (%s): %d files, %d new instances, %d known, %d duplicates, "
                 "%d quarantined %s, %.1f s", summary.source_id, kind, summary.files_seen,
                 summary.instances_new, summary.instances_known, summary.duplicates,
                 len(summary.quarantined), summary.quarantine_counts, summary.seconds)
        return summary
    finally:
        cleanup(tmp)


__all__ = ["CatalogWriter", "IngestSummary", "SourceError", "ingest", "register_source"]
