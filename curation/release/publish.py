"""Publish a verified build: copy it from its staging prefix to `releases/<name>/<version>/`,
manifest last, so a reader who finds `manifest.json` finds every file it lists.

Published releases are immutable: publishing a version whose manifest exists is refused before
anything is written, and the staging build is left as it was. A folder without a manifest is an
interrupted publish, not a release (nothing lists it): publishing the same build again completes it,
replacing its files from the build and removing any the manifest does not list. A build whose files
no longer match its manifest is refused.

Two publishers of one version (two people, or a DAG run and the command) are kept apart twice:
- the claim `releases/<name>/.publishing-<version>` (created only if absent) names the build being
  copied; a publisher of another build is refused before it writes anything, so the version's folder
  never mixes two builds. Publishers of the same build may copy side by side: their bytes are equal,
  each checked against the manifest as it is copied;
- the manifest is created only if absent (a conditional put on S3, a hard link on a local disk):
  exactly one publisher makes the release, the others get ReleaseExists.
A claim left by a killed publisher is taken over by a publish of the same build; one of another build
is refused, naming the claim to delete once no publisher is running.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from curation.catalog import Catalog, append_event
from curation.release.build import STAGE, ReleaseError
from curation.release.layout import (
    MANIFEST_JSON, StoreTree, bulk_writes, publishing_key, release_prefix, staging_prefix,
)
from curation.release.manifest import Manifest
from curation.release.verify import verify_tree
from curation.release.version import Version, check_name
from curation.store import ObjectNotFound, Store
from curation.vocabulary import Zone


class ReleaseExists(ReleaseError):
    """The version is already published, or another build of it is being published."""


@dataclass(frozen=True)
class PublishResult:
    name: str
    version: str
    prefix: str
    location: str
    manifest_sha256: str
    files: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "prefix": self.prefix, "location": self.location,
                "manifest_sha256": self.manifest_sha256, "files": self.files}


def _published(store: Store, name: str, version: Version, final: str) -> ReleaseExists:
    return ReleaseExists(f"release {name}@{version} is already published at "
                         f"{store.uri_for(Zone.RELEASES, final.rstrip('/'))}; releases are immutable, "
                         "build a new version instead")


def _claim(store: Store, name: str, version: Version, manifest_sha256: str) -> bool:
    """Hold the version's publishing claim for this build: True when this call created it, False when a
    publisher of the same build holds it (side by side, or killed mid-copy); ReleaseExists when a
    publisher of another build does."""
    key = publishing_key(name, version)
    if store.put_bytes_if_absent(Zone.RELEASES, key, json.dumps({"manifest_sha256": manifest_sha256}).encode()):
        return True
    try:
        held = json.loads(store.get_bytes(Zone.RELEASES, key)).get("manifest_sha256")
    except ObjectNotFound:  # its publisher finished in between: the manifest now exists
        raise _published(store, name, version, release_prefix(name, version)) from None
    if held != manifest_sha256:
        raise ReleaseExists(f"another build of {name}@{version} (manifest {held}) is being published; this build "
                            f"({manifest_sha256}) is refused with nothing written. If no publisher is running (one "
                            f"was killed), delete {store.uri_for(Zone.RELEASES, key)} and publish again")
    return False


def _staged_sha256(store: Store, staging: str) -> str | None:
    try:
        return hashlib.sha256(store.get_bytes(Zone.RELEASES, staging + MANIFEST_JSON)).hexdigest()
    except ObjectNotFound:
        return None


def _copy(store: Store, staging: str, final: str, manifest: Manifest) -> None:
    """Copy every listed file, each checked against the manifest as it passes (a rebuild of the
    staging copy after the verify above must not slip in)."""
    with bulk_writes(store):  # every file durable before the manifest that makes them a release
        for entry in sorted(manifest.entries):
            data = store.get_bytes(Zone.RELEASES, staging + entry.path)
            if len(data) != entry.size or hashlib.sha256(data).hexdigest() != entry.sha256:
                raise ReleaseError(f"{staging + entry.path} changed while it was being published (rebuilt?); "
                                   "nothing was published")
            store.put_bytes(Zone.RELEASES, final + entry.path, data)


def publish(catalog: Catalog, store: Store, name: str, version: str | Version) -> PublishResult:
    """Publish the staged build of `name@version`; ReleaseExists when that version is published (or
    another publisher published it first, or is publishing another build of it)."""
    check_name(name)
    version = Version.parse(str(version))
    final, staging = release_prefix(name, version), staging_prefix(name, version)
    if store.exists(Zone.RELEASES, final + MANIFEST_JSON):
        raise _published(store, name, version, final)
    if not store.exists(Zone.RELEASES, staging + MANIFEST_JSON):
        raise ReleaseError(f"there is no build of {name}@{version} to publish (build it first: "
                           f"curate release build --name {name} --version {version})")
    report = verify_tree(StoreTree(store, staging))
    if not report.ok:
        if store.exists(Zone.RELEASES, final + MANIFEST_JSON):  # a publisher of this build finished meanwhile
            raise _published(store, name, version, final)
        raise ReleaseError(f"the build of {name}@{version} at {report.location} does not match its manifest: "
                           + "; ".join(str(p) for p in report.problems))
    manifest_bytes = store.get_bytes(Zone.RELEASES, staging + MANIFEST_JSON)
    sha = hashlib.sha256(manifest_bytes).hexdigest()
    manifest = Manifest.from_bytes(manifest_bytes)
    created = _claim(store, name, version, sha)
    if store.exists(Zone.RELEASES, final + MANIFEST_JSON):  # published between the first look and the claim
        if created:
            store.delete(Zone.RELEASES, publishing_key(name, version), missing_ok=True)
        raise _published(store, name, version, final)
    listed = {final + e.path for e in manifest.entries}
    for leftover in [k for k in store.list(Zone.RELEASES, final) if k not in listed]:
        store.delete(Zone.RELEASES, leftover, missing_ok=True)  # from an interrupted publish of this build
    try:
        _copy(store, staging, final, manifest)
    except ObjectNotFound:  # a publisher of the same build finished and removed the staging copy
        if store.exists(Zone.RELEASES, final + MANIFEST_JSON):
            raise _published(store, name, version, final) from None
        raise
    except ReleaseError:  # the staging copy was rebuilt: let the new build be published after all
        if created:
            store.delete(Zone.RELEASES, publishing_key(name, version), missing_ok=True)
        raise
    if not store.put_bytes_if_absent(Zone.RELEASES, final + MANIFEST_JSON, manifest_bytes):
        raise _published(store, name, version, final)
    store.delete(Zone.RELEASES, publishing_key(name, version), missing_ok=True)
    if _staged_sha256(store, staging) == sha:  # this build's staging copy (not one a publisher beside us removed)
        for key in list(store.list(Zone.RELEASES, staging)):
            store.delete(Zone.RELEASES, key, missing_ok=True)
    append_event(catalog, stage=STAGE, action="publish", subject=f"release:{name}@{version}",
                 outputs=[f"sha256:{sha}"], details={"prefix": final, "files": len(manifest.entries)})
    return PublishResult(name, str(version), final, store.uri_for(Zone.RELEASES, final.rstrip("/")), sha,
                         len(manifest.entries))


__all__ = ["PublishResult", "ReleaseExists", "publish"]
