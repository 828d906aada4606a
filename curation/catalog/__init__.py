"""The catalog: SQLAlchemy models, Alembic migrations, sessions and the lineage ledger.

`CURATE_DB_URL` selects the database (SQLite file under CURATE_HOME by default, PostgreSQL in
production, e.g. `postgresql+psycopg://user@host/db`).
"""
from curation.catalog.db import Catalog, default_db_url, make_engine, migrate, open_catalog
from curation.catalog.lineage import add_event, append_event, verify_chain
from curation.catalog.models import (
    Instance,
    LineageEvent,
    Patient,
    QuarantineRecord,
    Series,
    Source,
    StageRecord,
    Study,
)

__all__ = [
    "Catalog", "default_db_url", "make_engine", "migrate", "open_catalog", "add_event", "append_event", "verify_chain",
    "Instance", "LineageEvent", "Patient", "QuarantineRecord", "Series", "Source", "StageRecord", "Study",
]
