"""Publish a verified build: copy it from its staging prefix to `releases/<name>/<version>/`,
manifest last, so a reader who finds `manifest.json` finds every file it lists.

Published releases are immutable: publishing a version whose manifest exists is refused before
anything is written, and the staging build is left as it was. A folder without a manifest is an
interrupted publish, not a release (nothing lists it): publishing again completes it, replacing its
files from the build and removing any the manifest does not list. A build whose files no longer
match its manifest is refused.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from curation.catalog import Catalog, append_event
from curation.release.build import STAGE, ReleaseError
from curation.release.layout import MANIFEST_JSON, StoreTree, bulk_writes, release_prefix, staging_prefix
from curation.release.manifest import Manifest
from curation.release.verify import verify_tree
from curation.release.version import Version, check_name
from curation.store import Store
from curation.vocabulary import Zone


class ReleaseExists(ReleaseError):
    """The version is already (or partly) published."""


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


def publish(catalog: Catalog, store: Store, name: str, version: str | Version) -> PublishResult:
    """Publish the staged build of `name@version`; ReleaseExists when that version is published."""
    check_name(name)
    version = Version.parse(str(version))
    final, staging = release_prefix(name, version), staging_prefix(name, version)
    if store.exists(Zone.RELEASES, final + MANIFEST_JSON):
        raise ReleaseExists(f"release {name}@{version} is already published at "
                            f"{store.uri_for(Zone.RELEASES, final.rstrip('/'))}; releases are immutable, "
                            "build a new version instead")
    if not store.exists(Zone.RELEASES, staging + MANIFEST_JSON):
        raise ReleaseError(f"there is no build of {name}@{version} to publish (build it first: "
                           f"curate release build --name {name} --version {version})")
    report = verify_tree(StoreTree(store, staging))
    if not report.ok:
        raise ReleaseError(f"the build of {name}@{version} at {report.location} does not match its manifest: "
                           + "; ".join(str(p) for p in report.problems))
    manifest_bytes = store.get_bytes(Zone.RELEASES, staging + MANIFEST_JSON)
    manifest = Manifest.from_bytes(manifest_bytes)
    listed = {final + e.path for e in manifest.entries}
    for leftover in [k for k in store.list(Zone.RELEASES, final) if k not in listed]:
        store.delete(Zone.RELEASES, leftover, missing_ok=True)  # from an interrupted publish of another build
    with bulk_writes(store):  # every file durable before the manifest that makes them a release
        for entry in sorted(manifest.entries):
            store.put_bytes(Zone.RELEASES, final + entry.path, store.get_bytes(Zone.RELEASES, staging + entry.path))
    store.put_bytes(Zone.RELEASES, final + MANIFEST_JSON, manifest_bytes)
    for key in list(store.list(Zone.RELEASES, staging)):
        store.delete(Zone.RELEASES, key, missing_ok=True)
    sha = report.manifest_sha256 or ""
    append_event(catalog, stage=STAGE, action="publish", subject=f"release:{name}@{version}",
                 outputs=[f"sha256:{sha}"], details={"prefix": final, "files": len(manifest.entries)})
    return PublishResult(name, str(version), final, store.uri_for(Zone.RELEASES, final.rstrip("/")), sha,
                         len(manifest.entries))


__all__ = ["PublishResult", "ReleaseExists", "publish"]
