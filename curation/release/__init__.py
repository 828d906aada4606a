"""Versioned dataset releases: build a selection of curated series into a staging prefix, verify it,
publish it immutably under `releases/<name>/<version>/`, and verify or diff published versions.

Modules: `version` (semantic versions, NAME@VERSION), `splits` (patient-level, stable across
versions), `manifest` (files, sizes, SHA-256, roles; the release's identity), `layout` (where a
release lives; store or local copy), `tables` (canonical CSV), `build`, `publish`, `verify`, `diff`.
"""

from curation.release.reader import Release, ReleaseIntegrityError, open_release

__all__ = ["Release", "ReleaseIntegrityError", "open_release"]
