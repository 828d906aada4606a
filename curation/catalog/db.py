"""Catalog database: engine from CURATE_DB_URL, schema migrations (Alembic), sessions."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from curation.settings import settings

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def curate_home() -> Path:
    """Where the embedded default keeps its state (catalog, stores): CURATE_HOME or ./var."""
    return settings().home


def default_db_url() -> str:
    """CURATE_DB_URL, else a SQLite file under CURATE_HOME (the folder is made here)."""
    current = settings()
    if not current.db_url:
        current.home.mkdir(parents=True, exist_ok=True)
    return current.catalog_url


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001 - DB-API connection
    cur = dbapi_conn.cursor()
    # WAL lets Airflow's parallel tasks read while one writes; busy_timeout makes writers queue.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(url: str | None = None) -> Engine:
    """An engine for the catalog at `url` (default: CURATE_DB_URL or the embedded SQLite file)."""
    url = url or default_db_url()
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    return engine


def migrate(url: str | None = None) -> None:
    """Bring the catalog schema to the newest Alembic revision (idempotent)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", (url or default_db_url()).replace("%", "%%"))
    command.upgrade(cfg, "head")


class Catalog:
    """The catalog database: one engine, migrated on open, and sessions over it."""

    def __init__(self, url: str | None = None, *, auto_migrate: bool = True) -> None:
        self.url = url or default_db_url()
        if auto_migrate:
            migrate(self.url)
        self.engine = make_engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        with self._sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


@lru_cache(maxsize=8)
def open_catalog(url: str | None = None) -> Catalog:
    """A process-wide Catalog per URL (migrations run once per process)."""
    return Catalog(url)
