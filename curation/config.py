"""The catalog and store a command opens when none is named, made ready on disk for the embedded
default. The values come from `curation.settings` (the one reader of CURATE_* variables)."""
from __future__ import annotations

from pathlib import Path

from curation.catalog.db import curate_home, default_db_url
from curation.settings import settings

__all__ = ["curate_home", "default_db_url", "default_store_uri", "default_site"]


def default_store_uri() -> str:
    """CURATE_STORE_URI (a folder or s3://bucket/prefix), else CURATE_HOME/store (made here)."""
    current = settings()
    if current.store_uri:
        return current.store_uri
    path = Path(current.store_location)
    path.mkdir(parents=True, exist_ok=True)
    return str(path.resolve())


def default_site() -> str:
    """The site name recorded with sources and used in patient keys (CURATE_SITE, else DEFAULT_SITE)."""
    return settings().site
