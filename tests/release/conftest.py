"""Fixtures of the release tests: an empty real catalog (SQLite) and a real LocalStore."""
from __future__ import annotations

import pytest

from curation.catalog import Catalog
from curation.store import LocalStore


@pytest.fixture
def world(tmp_path):
    """(catalog, store), empty; tests fill them with tests.release.world's helpers."""
    catalog = Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    store = LocalStore(tmp_path / "store", fsync=False)
    yield catalog, store
    catalog.dispose()
