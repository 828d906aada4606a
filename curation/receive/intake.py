"""One received DICOM object into the spool, the raw zone and the catalog, through ingest's own path.

A C-STORE dataset arrives as Part 10 bytes (preamble, the association's file meta, the dataset as
encoded by the sender). It is written to the spool under its content hash, then handed to exactly
what `curate ingest` does with a file: `inspect_file` (validate, keep the bytes in the raw zone by
content hash) and ingest's catalog writer (de-duplication, patient/study/series rows, quarantine
records, the lineage event, all in one transaction). Nothing here re-implements a check.

The spool (a folder) holds every accepted instance once more, grouped by catalog series id:
``series/<series id>/<sha256>.dcm`` (and ``triggered/<series id>`` once its curation was started). That folder is the source the curate_source DAG is started on
once the series is quiet: its ingest finds every instance already catalogued (no copy, no new row)
and hands on exactly that series. ``incoming/<calling AE>/`` holds objects between arrival and
their catalog commit; what a crash leaves there is ingested again at the next start
(`Intake.recover`), so nothing that reached the disk is lost.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from curation.catalog import Catalog
from curation.ingest.inspect import DEFAULT_MAX_FILE_BYTES, inspect_file
from curation.ingest.pipeline import CatalogWriter, IngestSummary, register_source
from curation.store import Store
from curation.vocabulary import FileStatus

log = logging.getLogger(__name__)

#: Source.kind of objects received over DICOM networking (DIMSE C-STORE).
SOURCE_KIND = "dimse"
INCOMING = "incoming"
SERIES = "series"
#: Holds an empty file per series whose curation was started (removed when a new instance arrives); kept
#: apart from the series folders, which hold nothing but the series' objects (they are a source).
TRIGGERED = "triggered"
_TEMP_PREFIX = ".part-"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def safe_ae_title(ae_title: str) -> str:
    """An AE title as a folder name (AE titles may hold spaces and most printable characters)."""
    return _UNSAFE.sub("_", ae_title.strip()) or "_"


@dataclass(frozen=True)
class Arrival:
    """What became of one received object (no UIDs, no PHI: safe to log)."""

    sha256: str
    status: FileStatus  # OK | QUARANTINE
    new: bool = False  # a new catalog row (False: the instance was already catalogued)
    series_id: int | None = None
    reason_code: str | None = None
    reason: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status == FileStatus.OK


def _write_atomically(path: Path, data: bytes) -> None:
    """Write to a temp name beside `path`, then rename: a killed process leaves no partial file under
    the final name. (Durability comes from the catalog writer's file-system sync before its commit.)"""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{_TEMP_PREFIX}{secrets.token_hex(8)}")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


class Intake:
    """Takes received objects into the spool, the raw zone and the catalog, one at a time.

    Thread-safe: associations run in threads of their own; catalog writes are serialised here (ingest's
    writer is single-threaded by design, and SQLite has one writer anyway).
    """

    def __init__(self, catalog: Catalog, store: Store, spool: Path | str, *, site: str, receiver_aet: str,
                 max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> None:
        self.catalog, self.store, self.site = catalog, store, site
        self.receiver_aet = receiver_aet
        self.spool = Path(spool).expanduser().absolute()
        self.max_file_bytes = max_file_bytes
        self._sources: dict[str, int] = {}
        self._lock = threading.Lock()
        (self.spool / INCOMING).mkdir(parents=True, exist_ok=True)
        (self.spool / SERIES).mkdir(parents=True, exist_ok=True)
        (self.spool / TRIGGERED).mkdir(parents=True, exist_ok=True)

    def source_uri(self, calling_ae: str) -> str:
        """The catalog Source of objects sent by one peer: `dimse://<our AE>/<their AE>`."""
        return f"{SOURCE_KIND}://{safe_ae_title(self.receiver_aet)}/{safe_ae_title(calling_ae)}"

    def series_folder(self, series_id: int) -> Path:
        """The spool folder of one catalogued series (the source a curate_source run is started on)."""
        return self.spool / SERIES / str(series_id)

    def _source_id(self, calling_ae: str) -> int:
        uri = self.source_uri(calling_ae)
        if uri not in self._sources:
            self._sources[uri] = register_source(self.catalog, SOURCE_KIND, uri, self.site)
        return self._sources[uri]

    def accept(self, data: bytes, calling_ae: str) -> Arrival:
        """Spool, validate, store and catalog one object (Part 10 bytes). A bad object is quarantined
        (its bytes kept in the raw zone) and reported in the Arrival; errors of the store or the catalog
        raise (the object is then not acknowledged, and stays in `incoming/` for `recover`)."""
        sha = hashlib.sha256(data).hexdigest()
        # A name of its own per arrival: the same object on two associations at once must not share a file.
        path = self.spool / INCOMING / safe_ae_title(calling_ae) / f"{sha}-{secrets.token_hex(4)}.dcm"
        _write_atomically(path, data)
        return self._ingest(path, sha, calling_ae)

    def _ingest(self, path: Path, sha: str, calling_ae: str) -> Arrival:
        rel = f"{sha}.dcm"  # the content hash names the object in quarantine records, never a PHI path
        insp = inspect_file(str(path), rel, self.store.uri, self.site, self.max_file_bytes)
        with self._lock:
            summary = IngestSummary(source_kind=SOURCE_KIND, source_id=self._source_id(calling_ae))
            writer = CatalogWriter(self.catalog, self.store, summary.source_id, self.site, summary)
            writer.write([insp])
        if insp.status != FileStatus.OK:
            path.unlink(missing_ok=True)  # the bytes are in the raw zone, the record points at them
            return Arrival(sha, FileStatus.QUARANTINE, reason_code=insp.reason_code, reason=insp.reason)
        (series_id,) = writer.series_ids
        with self._lock:  # against `prune` removing the folder in between
            folder = self.series_folder(series_id)
            folder.mkdir(parents=True, exist_ok=True)
            self.triggered_mark(series_id).unlink(missing_ok=True)  # new material: the series is open again
            os.replace(path, folder / rel)  # the same bytes under the same name: a second arrival is harmless
        return Arrival(sha, FileStatus.OK, new=summary.instances_new == 1, series_id=series_id)

    def recover(self) -> list[Arrival]:
        """Ingest what a previous run left in `incoming/` (written, maybe not catalogued) and drop its
        partial writes. Safe to repeat: an object already catalogued is found, not added again."""
        arrivals = []
        for folder in sorted(p for p in (self.spool / INCOMING).iterdir() if p.is_dir()):
            for path in sorted(folder.iterdir()):
                if path.name.startswith(_TEMP_PREFIX):
                    path.unlink(missing_ok=True)  # cut off mid-write: the sender was never acknowledged
                    continue
                sha = hashlib.sha256(path.read_bytes()).hexdigest()
                arrivals.append(self._ingest(path, sha, folder.name))
        if arrivals:
            log.info("receiver: %d objects left in the spool by a previous run ingested (%d quarantined)",
                     len(arrivals), sum(not a.accepted for a in arrivals))
        return arrivals

    def open_series(self) -> dict[int, int]:
        """Series folders whose curation was never started: {series id: instances in the spool}."""
        found = {}
        for folder in (self.spool / SERIES).iterdir():
            if folder.is_dir() and folder.name.isdigit() and not self.triggered_mark(int(folder.name)).exists():
                found[int(folder.name)] = sum(1 for p in folder.glob("*.dcm"))
        return found

    def triggered_mark(self, series_id: int) -> Path:
        """The file whose presence says curation of the series was started since its last arrival."""
        return self.spool / TRIGGERED / str(series_id)

    def mark_triggered(self, series_id: int) -> None:
        """Record in the spool that curation of the series was started (a restart does not start it again)."""
        self.triggered_mark(series_id).touch()

    def prune(self, older_than_seconds: float) -> int:
        """Remove the spool folders of series whose curation was started more than `older_than_seconds`
        ago and which received nothing since (the raw zone and the catalog keep every object). Returns
        how many were removed."""
        cutoff = time.time() - older_than_seconds
        removed = 0
        for mark in sorted((self.spool / TRIGGERED).iterdir()):
            with self._lock:
                try:
                    if mark.stat().st_mtime > cutoff:
                        continue
                except FileNotFoundError:  # an arrival reopened the series meanwhile
                    continue
                shutil.rmtree(self.series_folder(int(mark.name)), ignore_errors=True)
                mark.unlink()
            removed += 1
        if removed:
            log.info("receiver: spool folders of %d curated series removed", removed)
        return removed
