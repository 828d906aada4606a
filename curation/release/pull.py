"""Pull a published release from a store (a folder or `s3://`) into a local folder a data scientist owns.

Parallel (a thread pool: fetching small objects waits on the network, not the CPU), resumable and
verified on arrival: every file is hashed while it streams in, written under a temporary name and
renamed into place only when its size and SHA-256 match the manifest (`Release.fetch_verified`, the code
`open_release` uses for its cache). A pull that was killed leaves only verified files and temporary
ones; running it again keeps the verified files, drops the temporary ones and fetches the rest.
`manifest.json` is written last, after the files are flushed to disk, so a folder with a manifest
is a complete copy, and `curate release verify DEST` passes on it.
"""
from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from curation.release.layout import MANIFEST_JSON, DirTree
from curation.release.manifest import ManifestEntry
from curation.release.reader import FETCH_TEMP_PREFIX, Release, ReleaseIntegrityError, open_release, sha256_file
from curation.store import Store, open_store, validate_key
from curation.store.local import syncfs

#: Downloads in flight. Small objects are latency-bound, so more than the cores; the S3 client's
#: connection pool (curation.store.s3.make_s3_client) holds 32.
DEFAULT_JOBS = 16
MAX_JOBS = 32
PROGRESS_INTERVAL_S = 2.0


class PullError(ValueError):
    """The pull cannot start or finish (unknown release, unreachable store, a folder holding another release)."""


class StoreUnreachable(PullError):
    """The store could not be read at all (no such folder, connection refused, no such bucket, denied)."""


class PullFailed(ReleaseIntegrityError):
    """Some files could not be fetched intact (altered or missing in the store); `result` names them."""

    def __init__(self, message: str, result: PullResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass
class PullResult:
    """What a pull did: files fetched or kept, extra files found (and removed), files that failed."""

    name: str
    version: str
    dest: str
    manifest_sha256: str
    files: int
    bytes: int
    fetched: int = 0
    fetched_bytes: int = 0
    kept: int = 0
    temp_removed: int = 0
    extra: list[str] = field(default_factory=list)
    extra_removed: bool = False
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "dest": self.dest, "ok": self.ok,
                "manifest_sha256": self.manifest_sha256, "files": self.files, "bytes": self.bytes,
                "fetched": self.fetched, "fetched_bytes": self.fetched_bytes, "kept": self.kept,
                "temp_removed": self.temp_removed, "extra": self.extra, "extra_removed": self.extra_removed,
                "failed": [{"path": p, "detail": d} for p, d in sorted(self.failed.items())],
                "seconds": round(self.seconds, 3)}


class Progress:
    """Files and bytes done and the rate, printed every `interval` seconds (long pulls only: a pull
    that ends within the first interval prints nothing)."""

    def __init__(self, label: str, files: int, total_bytes: int, stream: TextIO | None,
                 interval: float | None = None) -> None:
        self.label, self.files, self.total_bytes = label, files, total_bytes
        self.stream, self.interval = stream, PROGRESS_INTERVAL_S if interval is None else interval
        self.done_files = self.done_bytes = 0
        self.start = self.last = time.monotonic()
        self._lock = threading.Lock()

    def add(self, n_bytes: int) -> None:
        with self._lock:
            self.done_files += 1
            self.done_bytes += n_bytes
            now = time.monotonic()
            if self.stream is None or now - self.last < self.interval:
                return
            self.last = now
            elapsed = now - self.start
            print(f"{self.label}: {self.done_files:,}/{self.files:,} files, {self.done_bytes / 1e6:,.1f}/"
                  f"{self.total_bytes / 1e6:,.1f} MB, {self.done_bytes / 1e6 / elapsed:,.1f} MB/s, "
                  f"{self.done_files / elapsed:,.0f} files/s", file=self.stream, flush=True)


def _open(store: Store | str | Path, ref: str, expected_sha256: str | None) -> Release:
    """The published release, or PullError saying why not (never a traceback for a user's mistake)."""
    if not isinstance(store, Store):
        text = str(store)
        if "://" not in text and not Path(text).is_dir():
            raise StoreUnreachable(f"store folder {text} does not exist")
        store = open_store(text)
    try:
        return open_release(store, ref, expected_sha256=expected_sha256)
    except ReleaseIntegrityError:  # not the cited manifest: the caller names it as it is
        raise
    except (FileNotFoundError, ValueError) as exc:  # not published, or a bad NAME@VERSION
        raise PullError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - botocore's errors (connection, bucket, credentials) are not imported here
        raise StoreUnreachable(f"cannot read {store.uri}: {exc}") from exc


def _check_paths(release: Release) -> None:
    """Refuse a manifest whose paths would land outside DEST (`..`, absolute) or on the manifest itself."""
    for entry in release.manifest.entries:
        try:
            validate_key(entry.path)
        except ValueError as exc:
            raise PullError(f"the manifest of {release.name}@{release.version} lists an unsafe path: {exc}") from None
        if entry.path == MANIFEST_JSON:
            raise PullError(f"the manifest of {release.name}@{release.version} lists itself")


def _claim(dest: Path, release: Release) -> None:
    """DEST may be empty, partly pulled, or a complete copy of this release; never another release."""
    held = dest / MANIFEST_JSON
    if not held.is_file():
        return
    sha = hashlib.sha256(held.read_bytes()).hexdigest()
    if sha != release.manifest_sha256:
        raise PullError(f"{dest} holds another release (manifest SHA-256 {sha[:16]}...), not "
                        f"{release.name}@{release.version} ({release.manifest_sha256[:16]}...): pull into an "
                        "empty folder")


def _is_intact(path: Path, entry: ManifestEntry) -> bool:
    """A file already in DEST is kept only when its size (cheap, first) and SHA-256 match."""
    return path.stat().st_size == entry.size and sha256_file(path) == (entry.size, entry.sha256)


def _remove_files(dest: Path, paths: Iterable[str]) -> None:
    """Delete files under DEST and the folders they leave empty."""
    folders = set()
    for path in paths:
        (dest / path).unlink(missing_ok=True)
        folders.update((dest / path).parents)
    for folder in sorted((f for f in folders if dest in f.parents), key=lambda f: len(f.parts), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _fetch_all(release: Release, dest: Path, entries: list[ManifestEntry], jobs: int, progress: Progress,
               result: PullResult) -> None:
    """Fetch `entries` in parallel. A file altered or missing in the store is recorded and the rest go
    on (so every such file is named); any other error (the store went away) stops the pull."""
    lock = threading.Lock()

    def one(entry: ManifestEntry) -> None:
        try:
            release.fetch_verified(entry, dest / entry.path)
        except ReleaseIntegrityError as exc:
            with lock:
                result.failed[entry.path] = str(exc)
            return
        with lock:
            result.fetched += 1
            result.fetched_bytes += entry.size
        progress.add(entry.size)

    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="pull") as pool:
        futures: list[Future[None]] = [pool.submit(one, e) for e in entries]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        for future in done:
            exc = future.exception()
            if isinstance(exc, OSError):  # a disk error (full, read-only, permissions), ours or a local store's
                raise PullError(f"copying into {dest} failed: {exc}; run the pull again to resume") from exc
            if exc is not None:
                raise StoreUnreachable(f"reading {release.tree.location} failed during the pull: {exc}; "
                                       "run the pull again to resume") from exc


def pull(store: Store | str | Path, ref: str, dest: str | Path, *, jobs: int = DEFAULT_JOBS,
         expected_sha256: str | None = None, delete_extra: bool = False,
         progress: TextIO | None = None) -> PullResult:
    """Pull `ref` (NAME@VERSION, or NAME for its newest version) from `store` into `dest`.

    Files already in `dest` that match the manifest are kept; the rest are fetched and verified on
    arrival. Files in `dest` that the release does not list are reported in `extra` and deleted only
    with `delete_extra`. Raises PullError (StoreUnreachable) when the pull cannot run, PullFailed
    naming every file that did not arrive intact (no manifest is written then), and
    ReleaseIntegrityError when `expected_sha256` is not the release's manifest hash."""
    if not 1 <= jobs <= MAX_JOBS:
        raise PullError(f"jobs must be 1 to {MAX_JOBS}, not {jobs}")
    started = time.monotonic()
    release = _open(store, ref, expected_sha256)
    _check_paths(release)
    dest = Path(dest).absolute()
    if dest.exists() and not dest.is_dir():
        raise PullError(f"{dest} is a file, not a folder to pull into")
    dest.mkdir(parents=True, exist_ok=True)
    _claim(dest, release)
    listed = release.manifest.by_path()
    result = PullResult(release.name, release.version, str(dest), release.manifest_sha256, len(listed),
                        sum(e.size for e in listed.values()))

    present = set(DirTree(dest).paths()) - {MANIFEST_JSON}
    temps = [p for p in present - set(listed) if p.rsplit("/", 1)[-1].startswith(FETCH_TEMP_PREFIX)]
    _remove_files(dest, temps)  # partial downloads of a killed pull: never renamed, never verified
    result.temp_removed = len(temps)
    result.extra = sorted(present - set(listed) - set(temps))

    label = f"pull {release.name}@{release.version}"
    checking = [listed[p] for p in sorted(present & set(listed))]
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="pull-check") as pool:
        intact = dict(zip((e.path for e in checking), pool.map(lambda e: _is_intact(dest / e.path, e), checking)))
    result.kept = sum(intact.values())
    needed = [e for e in sorted(listed.values()) if not intact.get(e.path, False)]
    if needed:
        (dest / MANIFEST_JSON).unlink(missing_ok=True)  # the folder is not a complete copy until the end
        meter = Progress(label, len(needed), sum(e.size for e in needed), progress)
        _fetch_all(release, dest, needed, jobs, meter, result)
    if result.failed:
        result.seconds = time.monotonic() - started
        names = sorted(result.failed)
        shown = "; ".join(result.failed[p] for p in names[:20])
        shown += f"; and {len(names) - 20} more" if len(names) > 20 else ""
        raise PullFailed(f"{len(names)} files of {release.name}@{release.version} did not arrive intact from "
                         f"{release.tree.location}: {shown}", result)
    if delete_extra and result.extra:
        _remove_files(dest, result.extra)
        result.extra_removed = True
    _write_manifest(release, dest)
    result.seconds = time.monotonic() - started
    return result


def _write_manifest(release: Release, dest: Path) -> None:
    """The manifest last, once every file is on disk: its presence says the copy is complete."""
    target = dest / MANIFEST_JSON
    data = release.tree.read(MANIFEST_JSON)
    if hashlib.sha256(data).hexdigest() != release.manifest_sha256:
        raise ReleaseIntegrityError(f"{release.tree.location}/{MANIFEST_JSON} changed during the pull; "
                                    "a published release never changes: ask its publisher")
    if target.is_file() and target.read_bytes() == data:
        return
    syncfs(dest)
    temp = target.with_name(f"{FETCH_TEMP_PREFIX}{MANIFEST_JSON}")
    temp.write_bytes(data)
    os.replace(temp, target)
    syncfs(dest)


def _size(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1000
    return ""


def print_summary(result: PullResult, stream: TextIO | None = None) -> None:
    """The lines `curate release pull` prints when it is done (on stdout unless `stream`)."""
    stream = stream or sys.stdout
    rate = result.fetched_bytes / result.seconds if result.seconds else 0.0
    print(f"pulled {result.name}@{result.version} into {result.dest}: {result.files:,} files, "
          f"{_size(result.bytes)}; fetched {result.fetched:,} ({_size(result.fetched_bytes)}, {_size(rate)}/s), "
          f"kept {result.kept:,} already intact, in {result.seconds:.1f} s", file=stream)
    if result.temp_removed:
        print(f"  removed {result.temp_removed} partial downloads of an earlier pull", file=stream)
    for path in result.extra:
        print(f"  extra: {path}: not in the release" + (" (removed)" if result.extra_removed else ""), file=stream)
    if result.extra and not result.extra_removed:
        print(f"  {len(result.extra)} files are not in the release: `curate release verify` will name them; "
              "pull again with --delete-extra to remove them", file=stream)
    print(f"  manifest SHA-256 {result.manifest_sha256}", file=stream)


__all__ = ["DEFAULT_JOBS", "PullError", "PullFailed", "PullResult", "StoreUnreachable", "print_summary", "pull"]
