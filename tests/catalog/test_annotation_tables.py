"""Migration 0002 (annotation rounds) on SQLite and PostgreSQL: it upgrades a catalog that already
holds data, downgrades back to 0001 and up again, and its unique keys hold on both databases."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.exc import IntegrityError

from curation.catalog import Catalog, Series
from curation.catalog.db import MIGRATIONS_DIR
from curation.catalog.models import AnnotationItem, AnnotationRound, QualityReview, Reading, ReaderReport

ANNOTATION_TABLES = {"annotation_round", "annotation_item", "reading", "consensus_label", "reader_report",
                     "quality_review"}


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    return request.getfixturevalue("fresh_postgres_url")


def _alembic(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def test_upgrade_from_0001_keeps_data_and_downgrade_round_trips(url):
    cfg = _alembic(url)
    command.upgrade(cfg, "0001")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO series (format, modality, created_at) VALUES ('png', 'OT', :at)"),
                     {"at": datetime(2026, 12, 1, tzinfo=timezone.utc)})
    assert not ANNOTATION_TABLES & set(inspect(engine).get_table_names())
    command.upgrade(cfg, "head")
    assert ANNOTATION_TABLES <= set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM series")).scalar() == 1
    command.downgrade(cfg, "0001")
    assert not ANNOTATION_TABLES & set(inspect(engine).get_table_names())
    command.upgrade(cfg, "head")
    engine.dispose()
    catalog = Catalog(url)  # migrating an up-to-date catalog does nothing
    with catalog.session() as s:
        assert s.scalar(select(Series.format)) == "png"
    catalog.dispose()


def test_unique_keys_of_rounds_items_readings_and_reports(url):
    catalog = Catalog(url)
    with catalog.session() as s:
        series = Series(format="png", modality="OT")
        rnd = AnnotationRound(project="chest", name="run-1", kind="labels", schema_name="chest_findings",
                              schema_version=1, state="planned")
        s.add_all([series, rnd])
        s.flush()
        item = AnnotationItem(round_id=rnd.id, series_id=series.id, item_key="1.2.3")
        s.add(item)
        s.flush()
        s.add(Reading(round_id=rnd.id, item_id=item.id, task_id=7, record="label", label="nodule",
                      reader="r-abc", value=1, confidence=80.0))
        s.add(ReaderReport(round_id=rnd.id, reader="r-abc", passes_qc=True, qc_flags=[], feedback={}))
        s.add(QualityReview(series_id=series.id, series_key="1.2.3", round_id=rnd.id, decision="exclude",
                            reason="motion", reviewer="r-abc", decided_at=datetime.now(timezone.utc)))
        ids = rnd.id, item.id, series.id
    duplicates = [
        lambda: AnnotationRound(project="chest", name="run-1", kind="labels", schema_name="x", schema_version=1,
                                state="planned"),
        lambda: AnnotationItem(round_id=ids[0], series_id=ids[2], item_key="1.2.3"),
        lambda: Reading(round_id=ids[0], item_id=ids[1], task_id=7, record="label", label="nodule", reader="r-abc",
                        value=0),
        lambda: ReaderReport(round_id=ids[0], reader="r-abc", passes_qc=False),
        lambda: QualityReview(series_id=ids[2], series_key="1.2.3", round_id=ids[0], decision="approve",
                              reviewer="r-abc", decided_at=datetime.now(timezone.utc)),
    ]
    for make in duplicates:
        with pytest.raises(IntegrityError):
            with catalog.session() as s:
                s.add(make())
    with catalog.session() as s:  # another region of the same task and label is another row
        s.add(Reading(round_id=ids[0], item_id=ids[1], task_id=7, record="roi", label="nodule_box", ordinal=1,
                      reader="r-abc", roi_kind="box", x0=1, y0=2, x1=3, y1=4))
        s.add(Reading(round_id=ids[0], item_id=ids[1], task_id=7, record="roi", label="nodule_box", ordinal=2,
                      reader="r-abc", roi_kind="box", x0=5, y0=6, x1=7, y1=8))
    with catalog.session() as s:
        assert len(s.scalars(select(Reading)).all()) == 3
    catalog.dispose()
