"""Platform-wide defaults, each overridable by an environment variable (no config file needed for
the embedded default; production sets the variables in docker-compose.yaml or the Airflow env)."""
from __future__ import annotations

import os
from pathlib import Path

from curation.catalog.db import curate_home, default_db_url

__all__ = ["curate_home", "default_db_url", "default_store_uri", "default_site"]


def default_store_uri() -> str:
    """CURATE_STORE_URI (a folder or s3://bucket/prefix), else CURATE_HOME/store."""
    uri = os.environ.get("CURATE_STORE_URI")
    if uri:
        return uri
    path = curate_home() / "store"
    path.mkdir(parents=True, exist_ok=True)
    return str(Path(path).resolve())


def default_site() -> str:
    """The site name recorded with sources and used in patient keys (CURATE_SITE)."""
    return os.environ.get("CURATE_SITE", "default")
