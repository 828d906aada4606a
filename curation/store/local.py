"""Local-directory backend: one sub-directory per zone under a root, atomic writes by temp + rename.

A write goes to a temp file in the object's own directory (same file system, so ``os.replace`` is
atomic), is flushed and fsynced, then renamed over the final name; the directory is fsynced so the
rename survives a power loss. A killed writer leaves at most a temp file (``.curate-tmp.*``), which
``list`` never shows and ``sweep_temp`` removes.

Durability trade-off (``fsync=False`` or :meth:`LocalStore.deferred_sync`): skipping the two fsyncs
per object makes bulk ingest several times faster on slow disks. Atomicity against a *process* crash
(SIGKILL, OOM) is unchanged, because the rename still happens only after the data is written. What is
lost is durability against an *operating-system* crash or power cut before the data reaches the disk:
then a renamed object may be empty or missing. :meth:`LocalStore.sync` (called at the end of
``deferred_sync``) flushes the whole file system in one call, after which everything written is
durable; a pipeline should record its results in the catalog only after that call.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import secrets
import shutil
import stat
import threading
import time
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

from curation.store.base import (
    TEMP_PREFIX,
    ObjectNotFound,
    Store,
    Zone,
    as_zone,
    validate_key,
    validate_prefix,
)

_VAULT_DIR_MODE = 0o700
_VAULT_FILE_MODE = 0o600
_FILE_MODE = 0o644
_COPY_CHUNK = 8 * 1024 * 1024


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_fd(src: int, dst: int) -> None:
    """Kernel-side copy (copy_file_range, then sendfile) like `cp`; plain read/write as fallback."""
    size = os.fstat(src).st_size
    offset = 0
    try:
        while offset < size:
            sent = os.copy_file_range(src, dst, size - offset)
            if sent == 0:
                break
            offset += sent
    except OSError:
        pass
    try:
        while offset < size:
            sent = os.sendfile(dst, src, offset, size - offset)
            if sent == 0:
                break
            offset += sent
    except OSError:
        pass
    os.lseek(src, offset, os.SEEK_SET)
    os.lseek(dst, offset, os.SEEK_SET)
    while chunk := os.read(src, _COPY_CHUNK):
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst, view):]


@lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    """The C library, looked up once (find_library forks ldconfig on every call)."""
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name, use_errno=True) if name else None


def syncfs(path: Path) -> None:
    """Flush the file system holding ``path`` (Linux syncfs); fall back to a global sync."""
    libc = _libc()
    if libc is not None:
        if hasattr(libc, "syncfs"):
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
            try:
                if libc.syncfs(fd) == 0:
                    return
            finally:
                os.close(fd)
    os.sync()


class LocalStore(Store):
    """Objects as files under ``root/<zone>/<key>``.

    ``fsync=True`` (default) makes each put durable on return. ``fsync=False`` keeps puts atomic but
    defers durability to :meth:`sync` (see the module docstring for the trade-off).
    """

    def __init__(self, root: Path | str, *, fsync: bool = True) -> None:
        self.root = Path(root).expanduser().absolute()
        self.uri = self.root.as_uri()
        self.fsync = fsync
        self._known_dirs: set[Path] = set()
        self._lock = threading.Lock()
        self.root.mkdir(parents=True, exist_ok=True)
        for zone in Zone:
            zone_dir = self.root / zone.value
            zone_dir.mkdir(exist_ok=True)
            if zone is Zone.VAULT:
                # chmod explicitly: mkdir's mode is filtered by the umask, and an existing vault
                # created by hand must not stay group/world readable either.
                os.chmod(zone_dir, _VAULT_DIR_MODE)
            self._known_dirs.add(zone_dir)

    # -- paths ---------------------------------------------------------------------------------
    def _path(self, zone: Zone | str, key: str) -> tuple[Zone, Path]:
        zone = as_zone(zone)
        validate_key(key)
        return zone, self.root / zone.value / key

    def uri_for(self, zone: Zone, key: str) -> str:
        return self._path(zone, key)[1].as_uri()

    def local_path(self, zone: Zone, key: str) -> Path | None:
        return self._path(zone, key)[1]

    def _ensure_dir(self, directory: Path) -> None:
        if directory in self._known_dirs:
            return
        missing: list[Path] = []
        probe = directory
        while not probe.is_dir():
            missing.append(probe)
            probe = probe.parent
        for new_dir in reversed(missing):
            try:
                new_dir.mkdir()
            except FileExistsError:
                if not new_dir.is_dir():
                    raise
            if self.fsync:
                _fsync_dir(new_dir.parent)
        with self._lock:
            self._known_dirs.add(directory)

    def _temp_path(self, final: Path) -> Path:
        return final.with_name(f"{TEMP_PREFIX}{secrets.token_hex(8)}")

    def _create_temp(self, final: Path, mode: int) -> tuple[Path, int]:
        """Create and open a fresh temp file beside ``final``; recreate the directory once if it
        was removed behind the cache's back."""
        for attempt in (0, 1):
            self._ensure_dir(final.parent)
            temp = self._temp_path(final)
            try:
                return temp, os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
            except FileNotFoundError:
                if attempt:
                    raise
                with self._lock:
                    self._known_dirs.discard(final.parent)
        raise AssertionError("unreachable")

    def _commit(self, temp: Path, final: Path) -> None:
        os.replace(temp, final)
        if self.fsync:
            _fsync_dir(final.parent)

    # -- writes --------------------------------------------------------------------------------
    def _write_temp(self, zone: Zone, final: Path, data: bytes) -> Path:
        """``data`` in a fresh temp file beside ``final`` (fsynced when the store syncs)."""
        mode = _VAULT_FILE_MODE if zone is Zone.VAULT else _FILE_MODE
        temp, fd = self._create_temp(final, mode)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if self.fsync:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            temp.unlink(missing_ok=True)
            raise
        os.close(fd)
        return temp

    def put_bytes(self, zone: Zone, key: str, data: bytes) -> str:
        zone, final = self._path(zone, key)
        temp = self._write_temp(zone, final, data)
        try:
            self._commit(temp, final)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return final.as_uri()

    def put_bytes_if_absent(self, zone: Zone, key: str, data: bytes) -> bool:
        """Written whole under a temp name, then hard-linked to the key: link(2) fails when the name
        exists, so the object appears whole or not at all and exactly one racing writer wins."""
        zone, final = self._path(zone, key)
        if final.exists():
            return False
        temp = self._write_temp(zone, final, data)
        try:
            os.link(temp, final)
        except FileExistsError:
            return False
        finally:
            temp.unlink(missing_ok=True)
        if self.fsync:  # the new name durable before anyone is told it exists
            _fsync_dir(final.parent)
        return True

    def put_file(self, zone: Zone, key: str, path: Path) -> str:
        zone, final = self._path(zone, key)
        source = Path(path)
        if not source.is_file():
            raise FileNotFoundError(f"source file {str(source)!r} does not exist or is not a file")
        mode = _VAULT_FILE_MODE if zone is Zone.VAULT else _FILE_MODE
        temp, fd = self._create_temp(final, mode)
        try:
            with open(source, "rb") as src:
                _copy_fd(src.fileno(), fd)
            if self.fsync:
                os.fsync(fd)
            os.close(fd)
            fd = -1
            self._commit(temp, final)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            temp.unlink(missing_ok=True)
            raise
        return final.as_uri()

    def delete(self, zone: Zone, key: str, missing_ok: bool = False) -> None:
        zone, final = self._path(zone, key)
        try:
            final.unlink()
        except FileNotFoundError:
            if not missing_ok:
                raise ObjectNotFound(zone, key, self.uri) from None
        except (IsADirectoryError, NotADirectoryError):
            if not missing_ok:
                raise ObjectNotFound(zone, key, self.uri) from None

    # -- reads ---------------------------------------------------------------------------------
    def _open(self, zone: Zone, key: str, final: Path) -> BinaryIO:
        try:
            handle = open(final, "rb")  # noqa: SIM115 - the caller owns the handle
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(zone, key, self.uri) from None
        return handle

    def get_bytes(self, zone: Zone, key: str) -> bytes:
        zone, final = self._path(zone, key)
        with self._open(zone, key, final) as handle:
            return handle.read()

    def open_read(self, zone: Zone, key: str) -> BinaryIO:
        zone, final = self._path(zone, key)
        return self._open(zone, key, final)

    def download(self, zone: Zone, key: str, path: Path) -> Path:
        zone, final = self._path(zone, key)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f"{TEMP_PREFIX}{secrets.token_hex(8)}")
        try:
            with self._open(zone, key, final) as source, open(temp, "xb") as sink:
                shutil.copyfileobj(source, sink, _COPY_CHUNK)
            os.replace(temp, target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return target

    def exists(self, zone: Zone, key: str) -> bool:
        return self._path(zone, key)[1].is_file()

    def size(self, zone: Zone, key: str) -> int | None:
        final = self._path(zone, key)[1]
        try:
            info = final.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return info.st_size if stat.S_ISREG(info.st_mode) else None

    def list(self, zone: Zone, prefix: str = "") -> Iterator[str]:
        zone = as_zone(zone)
        validate_prefix(prefix)
        zone_dir = self.root / zone.value
        # Walk only the deepest directory the prefix pins down, not the whole zone.
        head = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = zone_dir / head if head else zone_dir
        keys: list[str] = []
        for dirpath, dirnames, filenames in os.walk(start):
            rel_dir = os.path.relpath(dirpath, zone_dir)
            rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
            dirnames[:] = [d for d in dirnames if not d.startswith(TEMP_PREFIX)]
            for name in filenames:
                if name.startswith(TEMP_PREFIX):
                    continue
                key = rel_dir + name
                if key.startswith(prefix):
                    keys.append(key)
        keys.sort()
        return iter(keys)

    # -- maintenance ---------------------------------------------------------------------------
    def sweep_temp(self, older_than_s: float = 3600.0) -> int:
        """Delete temp files left by killed writers; return how many. Only files older than
        ``older_than_s`` are touched so that writes in progress elsewhere are not broken."""
        cutoff = time.time() - older_than_s
        removed = 0
        for dirpath, _dirnames, filenames in os.walk(self.root):
            for name in filenames:
                if not name.startswith(TEMP_PREFIX):
                    continue
                temp = Path(dirpath) / name
                with contextlib.suppress(FileNotFoundError):
                    if temp.stat().st_mtime <= cutoff:
                        temp.unlink()
                        removed += 1
        return removed

    def sync(self) -> None:
        """Make every write so far durable (one file-system flush instead of fsyncs per object)."""
        syncfs(self.root)

    @contextlib.contextmanager
    def deferred_sync(self) -> Iterator[LocalStore]:
        """Bulk mode: puts skip their fsyncs inside the block, one :meth:`sync` runs at the end.
        The setting is per store object, so use a dedicated store object for concurrent bulk work."""
        previous = self.fsync
        self.fsync = False
        try:
            yield self
        finally:
            self.fsync = previous
            self.sync()
