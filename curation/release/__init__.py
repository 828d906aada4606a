"""Versioned dataset releases: build a selection of curated series into a staging prefix, verify it,
publish it immutably under `releases/<name>/<version>/`, and verify or diff published versions.

Modules: `version` (semantic versions, NAME@VERSION), `splits` (patient-level, stable across
versions), `manifest` (files, sizes, SHA-256, roles; the release's identity), `layout` (where a
release lives; store or local copy), `tables` (Parquet with fixed schemas), `build`, `publish`,
`verify`, `diff`, `labels` (SEG, SR TID 1500), `croissant` (croissant.json), `datasheet`
(DATASHEET.md), `nifti` (volume conversions), `reader` (`open_release`: pandas), `torch` (`ReleaseDataset`).
"""
from __future__ import annotations

from typing import Any

__all__ = ["Release", "ReleaseIntegrityError", "open_release"]


def __getattr__(name: str) -> Any:
    """`from curation.release import open_release` without importing pandas and the catalog for
    every light submodule (`curation.release.version` is read at DAG parse time)."""
    if name in __all__:
        from curation.release import reader

        return getattr(reader, name)
    raise AttributeError(f"module 'curation.release' has no attribute {name!r}")
