"""Verify a release against its manifest: every listed file present with its size and SHA-256, and
nothing unlisted beside it; unless `checksums_only`, also what its DICOM must be (curation.release.checks):
labels valid by dciodvfy and referencing released instances, images de-identified and not raw-zone
objects. Each problem names the file, so a broken copy says what to fetch again.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from curation.catalog import Catalog, Instance

from curation.release.checks import content_problems, is_dicom_path
from curation.release.layout import MANIFEST_JSON, ReleaseTree, StoreTree, staging_prefix
from curation.release.manifest import Manifest
from curation.release.version import Version
from curation.store import Store

MISSING, EXTRA, ALTERED, MANIFEST = "missing", "extra", "altered", "manifest"


@dataclass(frozen=True)
class Problem:
    path: str
    kind: str  # missing | extra | altered | manifest; content: invalid | reference | phi | raw
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.path}: {self.detail}"


@dataclass
class VerifyReport:
    location: str
    manifest_sha256: str | None
    files_checked: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"location": self.location, "ok": self.ok, "manifest_sha256": self.manifest_sha256,
                "files_checked": self.files_checked,
                "problems": [{"path": p.path, "kind": p.kind, "detail": p.detail} for p in self.problems]}


def _digest(tree: ReleaseTree, path: str) -> tuple[int, str]:
    sha, size = hashlib.sha256(), 0
    for block in tree.chunks(path):
        sha.update(block)
        size += len(block)
    return size, sha.hexdigest()


def verify_tree(tree: ReleaseTree, expected_sha256: str | None = None, *, checksums_only: bool = True,
                raw_sha256: set[str] | None = None) -> VerifyReport:
    """Recompute every checksum of `tree`; with `expected_sha256`, the manifest must have that hash.
    With `checksums_only` False, also check every listed DICOM's content (`raw_sha256`: the raw
    zone's object hashes, where known). The default stays the fast check: publish and pull verify
    bytes they already checked for content at the build's verify step."""
    if not tree.exists(MANIFEST_JSON):
        return VerifyReport(tree.location, None, 0, [Problem(MANIFEST_JSON, MISSING, "no manifest: not a release")])
    data = tree.read(MANIFEST_JSON)
    report = VerifyReport(tree.location, hashlib.sha256(data).hexdigest())
    try:
        manifest = Manifest.from_bytes(data)
    except (ValueError, KeyError, TypeError) as exc:
        report.problems.append(Problem(MANIFEST_JSON, MANIFEST, f"unreadable: {exc}"))
        return report
    if expected_sha256 and report.manifest_sha256 != expected_sha256:
        report.problems.append(Problem(MANIFEST_JSON, ALTERED, f"SHA-256 {report.manifest_sha256} is not the "
                                       f"release's {expected_sha256}"))
    listed = manifest.by_path()
    present = set(tree.paths()) - {MANIFEST_JSON}
    for path in sorted(present - set(listed)):
        report.problems.append(Problem(path, EXTRA, "not in the manifest"))
    for path, entry in sorted(listed.items()):
        if path not in present:
            report.problems.append(Problem(path, MISSING, f"listed ({entry.size} bytes) but absent"))
            continue
        size, sha = _digest(tree, path)
        report.files_checked += 1
        if size != entry.size or sha != entry.sha256:
            report.problems.append(Problem(path, ALTERED, f"{size} bytes, SHA-256 {sha[:16]}...; manifest says "
                                           f"{entry.size} bytes, {entry.sha256[:16]}..."))
    if not checksums_only:
        dicom = ((p, tree.read(p)) for p in sorted(listed) if p in present and is_dicom_path(p))
        report.problems += [Problem(c.path, c.kind, c.detail) for c in content_problems(dicom, raw_sha256)]
    return report


def raw_object_hashes(catalog: Catalog) -> set[str]:
    """SHA-256 of every raw-zone object the catalog registered: a released file with one of these
    is a raw object that escaped de-identification."""
    with catalog.session() as s:
        return set(s.scalars(select(Instance.sha256)))


def verify_build(catalog: Catalog, store: Store, name: str, version: str,
                 expected_sha256: str | None = None) -> VerifyReport:
    """The build's verify step, before approval and publish: checksums and every content check of
    the staged build of `name@version`, raw-zone objects recognised by the catalog's hashes; with
    `expected_sha256`, the staged manifest must be the build's (not a later rebuild's)."""
    tree = StoreTree(store, staging_prefix(name, Version.parse(version)))
    return verify_tree(tree, expected_sha256, checksums_only=False, raw_sha256=raw_object_hashes(catalog))


__all__ = ["raw_object_hashes", "verify_build", "ALTERED", "EXTRA", "MISSING", "Problem", "VerifyReport", "verify_tree"]
