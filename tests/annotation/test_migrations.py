"""The Alembic migrations build exactly the ORM's schema, on SQLite and on PostgreSQL."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from annotation.db import Base, make_engine
from annotation.migrate import upgrade


def test_migrations_match_models(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)  # idempotent
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert diff == [], f"models changed without a migration: {diff}"


def test_upgrade_from_the_previous_head_keeps_data(database_url: str) -> None:
    """A service at 0001 with data upgrades to head: existing rows get the new columns' defaults."""
    from sqlalchemy import text

    upgrade(database_url, "0001")
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO user_account (username, display_name, password_hash, is_admin, is_active, created_at) "
                              "VALUES ('old', 'Old', 'x', false, true, CURRENT_TIMESTAMP)"))
            conn.execute(text("INSERT INTO project (name, description, readers_per_item, gold_rate, verification_levels, "
                              "current_round, schema_version, created_at) VALUES ('old', '', 2, 0, 0, 1, 0, CURRENT_TIMESTAMP)"))
        upgrade(database_url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT is_service FROM user_account WHERE username = 'old'")).scalar() in (False, 0)
            assert conn.execute(text("SELECT kind FROM project WHERE name = 'old'")).scalar() == "labels"
            assert conn.execute(text("SELECT count(*) FROM reading_round")).scalar() == 0
    finally:
        engine.dispose()
