"""The manifest: every file of a release with its path, size, SHA-256 and role.

Written as canonical JSON (entries sorted by path, keys sorted, no timestamps), so the same files
always give the same bytes, and the SHA-256 of `manifest.json` names the release's content: two
copies with equal manifest hashes hold the same bytes. `manifest.json` lists every file but itself.

`manifest.parquet` is the same entries as a table for pandas/Spark users: every file but
`manifest.json` and itself. It is a release file like any other, so `manifest.json` lists it (and
verify checks it); the identity stays the JSON's hash.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from curation.release.tables import MANIFEST_SCHEMA, to_parquet

FORMAT = "curate-release-manifest/1"
MANIFEST_PARQUET = "manifest.parquet"
#: What a file is for, by its top-level folder (a file at the top is a document).
ROLES = {"images": "image", "labels": "label", "tables": "table"}
#: NIfTI conversions of volume series (`images/<patient>/<study>/<series>.nii.gz`) beside their DICOM.
NIFTI_ROLE, NIFTI_SUFFIX = "image-nifti", ".nii.gz"
DOCUMENT_ROLES = {"provenance.json": "provenance", "CHANGES.md": "changes", MANIFEST_PARQUET: "manifest",
                  "croissant.json": "croissant", "DATASHEET.md": "datasheet"}


def role_of(path: str) -> str:
    head = path.split("/", 1)[0]
    if "/" in path:
        if head == "images" and path.endswith(NIFTI_SUFFIX) and path.count("/") == 3:
            return NIFTI_ROLE
        return ROLES.get(head, "other")
    return DOCUMENT_ROLES.get(path, "document")


@dataclass(frozen=True, order=True)
class ManifestEntry:
    path: str
    size: int
    sha256: str
    role: str

    @classmethod
    def of(cls, path: str, data: bytes) -> ManifestEntry:
        return cls(path, len(data), hashlib.sha256(data).hexdigest(), role_of(path))


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    entries: tuple[ManifestEntry, ...]

    def to_bytes(self) -> bytes:
        """Canonical JSON: one entry per line so a text diff of two manifests reads well."""
        files = [asdict(e) for e in sorted(self.entries)]
        paths = [e["path"] for e in files]
        if len(set(paths)) != len(paths):
            raise ValueError("manifest lists a path twice")
        head = {"format": FORMAT, "name": self.name, "version": self.version, "n_files": len(files),
                "total_bytes": sum(e["size"] for e in files)}
        body = ",\n".join(json.dumps(f, sort_keys=True, separators=(",", ":")) for f in files)
        text = json.dumps(head, sort_keys=True, separators=(",", ":"))[:-1] + ',"files":[\n' + body + "\n]}\n"
        return text.encode()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.to_bytes()).hexdigest()

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        try:
            doc: dict[str, Any] = json.loads(data)
        except ValueError as exc:
            raise ValueError(f"manifest.json is not JSON: {exc}") from None
        if doc.get("format") != FORMAT:
            raise ValueError(f"manifest.json has format {doc.get('format')!r}, expected {FORMAT!r}")
        entries = tuple(ManifestEntry(f["path"], int(f["size"]), f["sha256"], f["role"]) for f in doc["files"])
        return cls(doc["name"], doc["version"], entries)

    def to_parquet(self) -> bytes:
        """manifest.parquet: the entries sorted by path, with the columns path, size, sha256, role."""
        return to_parquet((asdict(e) for e in sorted(self.entries)), MANIFEST_SCHEMA)

    def by_path(self) -> dict[str, ManifestEntry]:
        return {e.path: e for e in self.entries}

    def role_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.entries:
            out[e.role] = out.get(e.role, 0) + 1
        return dict(sorted(out.items()))


__all__ = ["DOCUMENT_ROLES", "FORMAT", "MANIFEST_PARQUET", "Manifest", "ManifestEntry", "NIFTI_ROLE", "NIFTI_SUFFIX",
           "role_of"]
