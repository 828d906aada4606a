"""Where a release lives and how its files are read, in the store or in a local copy.

`releases/<name>/<version>/` is a published release (it has `manifest.json`, written last);
`releases/<name>/.staging-<version>/` is a build waiting for verification and publication;
`releases/<name>/.publishing-<version>` says which build a publisher is copying into the version's
folder (so a publisher of another build keeps out of it). A
`ReleaseTree` is one such folder seen as relative paths -> bytes, so verify and diff run the same
on the store (local or S3) and on a copy a data scientist pulled to their disk.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curation.release.version import Version, check_name
from curation.store import Store
from curation.vocabulary import Zone

MANIFEST_JSON = "manifest.json"
STAGING_PREFIX = ".staging-"
PUBLISHING_PREFIX = ".publishing-"


def release_prefix(name: str, version: Version | str) -> str:
    """Key prefix (in the releases zone) of a published release."""
    return f"{check_name(name)}/{version}/"


def staging_prefix(name: str, version: Version | str) -> str:
    """Key prefix of the build of `version` before it is published."""
    return f"{check_name(name)}/{STAGING_PREFIX}{version}/"


def publishing_key(name: str, version: Version | str) -> str:
    """Key of the claim a publisher holds while it copies a build into the version's folder."""
    return f"{check_name(name)}/{PUBLISHING_PREFIX}{version}"


class ReleaseTree:
    """The files of one release folder by relative path."""

    location: str

    def paths(self) -> list[str]:
        raise NotImplementedError

    def read(self, path: str) -> bytes:
        raise NotImplementedError

    def exists(self, path: str) -> bool:
        raise NotImplementedError

    def chunks(self, path: str) -> Iterator[bytes]:
        """The file in pieces (hashing a large file without holding it)."""
        yield self.read(path)


@dataclass
class StoreTree(ReleaseTree):
    """A release folder in the releases zone of a store."""

    store: Store
    prefix: str

    @property
    def location(self) -> str:  # type: ignore[override]
        return self.store.uri_for(Zone.RELEASES, self.prefix.rstrip("/"))

    def paths(self) -> list[str]:
        return [key[len(self.prefix):] for key in self.store.list(Zone.RELEASES, self.prefix)]

    def read(self, path: str) -> bytes:
        return self.store.get_bytes(Zone.RELEASES, self.prefix + path)

    def exists(self, path: str) -> bool:
        return self.store.exists(Zone.RELEASES, self.prefix + path)

    def chunks(self, path: str) -> Iterator[bytes]:
        with self.store.open_read(Zone.RELEASES, self.prefix + path) as handle:
            while block := handle.read(1 << 20):
                yield block


@dataclass
class DirTree(ReleaseTree):
    """A release folder on the local disk (a pulled copy, or a LocalStore's folder)."""

    root: Path

    @property
    def location(self) -> str:  # type: ignore[override]
        return str(self.root)

    def paths(self) -> list[str]:
        out = []
        for dirpath, _dirs, files in os.walk(self.root):
            rel = Path(dirpath).relative_to(self.root)
            out.extend((rel / f).as_posix() if str(rel) != "." else f for f in files)
        return sorted(out)

    def read(self, path: str) -> bytes:
        return (self.root / path).read_bytes()

    def exists(self, path: str) -> bool:
        return (self.root / path).is_file()

    def chunks(self, path: str) -> Iterator[bytes]:
        with open(self.root / path, "rb") as handle:
            while block := handle.read(1 << 20):
                yield block


def bulk_writes(store: Store) -> contextlib.AbstractContextManager[Any]:
    """Many puts, one durability flush at the end (a LocalStore skips its two fsyncs per object);
    a no-op for stores whose puts are durable on return (S3)."""
    deferred = getattr(store, "deferred_sync", None)
    return deferred() if deferred is not None else contextlib.nullcontext()


def published_versions(store: Store, name: str) -> list[Version]:
    """Published versions of release `name`, oldest first (a folder without manifest.json is not one)."""
    found = set()
    for key in store.list(Zone.RELEASES, f"{check_name(name)}/"):
        parts = key.split("/")
        if len(parts) == 3 and parts[2] == MANIFEST_JSON and not parts[1].startswith(STAGING_PREFIX):
            try:
                found.add(Version.parse(parts[1]))
            except ValueError:
                continue
    return sorted(found)


def release_names(store: Store) -> list[str]:
    """Names with at least one published version."""
    names = set()
    for key in store.list(Zone.RELEASES, ""):
        parts = key.split("/")
        if len(parts) == 3 and parts[2] == MANIFEST_JSON and not parts[1].startswith(STAGING_PREFIX):
            names.add(parts[0])
    return sorted(names)


__all__ = ["DirTree", "bulk_writes", "MANIFEST_JSON", "PUBLISHING_PREFIX", "publishing_key", "ReleaseTree",
           "STAGING_PREFIX", "StoreTree", "published_versions", "release_names", "release_prefix", "staging_prefix"]
