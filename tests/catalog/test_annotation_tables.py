"""Migration 0002 (annotation rounds) on SQLite and PostgreSQL: it upgrades a catalog that already
holds data, downgrades back to 0001 and up again, and its unique keys hold on both databases.
Migration 0003 (consensus masks): consensus rows are kept (slice and mask empty), a STAPLE row stores
its mask's run-length encoding and reads it back equal, and 0002 <-> head round-trips."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.exc import IntegrityError

from curation.catalog import Catalog, Series
from curation.catalog.db import MIGRATIONS_DIR
from curation.catalog.models import (
    AnnotationItem,
    AnnotationRound,
    ConsensusLabel,
    QualityReview,
    Reading,
    ReaderReport,
)

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


MASK_COLUMNS = {"instance", "frame", "mask"}


def _columns(engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("consensus_label")}


def test_0003_keeps_consensus_rows_and_stores_a_mask(url):
    cfg = _alembic(url)
    command.upgrade(cfg, "0002")
    engine = create_engine(url)
    at = {"at": datetime(2026, 12, 1, tzinfo=timezone.utc)}
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO series (format, modality, created_at) VALUES ('png', 'OT', :at)"), at)
        conn.execute(text("INSERT INTO annotation_round (project, name, kind, schema_name, schema_version, params, "
                          "state, created_at, n_items, n_readings, n_readers, summary) VALUES ('p', 'r', 'labels', "
                          "'s', 1, '{}', 'analysed', :at, 1, 0, 0, '{}')"), at)
        conn.execute(text("INSERT INTO annotation_item (round_id, series_id, item_key, is_gold, created_at) "
                          "VALUES (1, 1, 'k', false, :at)"), at)
        conn.execute(text("INSERT INTO consensus_label (round_id, item_id, label, method, ordinal, value, n_readers, "
                          "created_at) VALUES (1, 1, 'lesion', 'majority', 0, 1, 3, :at)"), at)
    assert not MASK_COLUMNS & _columns(engine)
    command.upgrade(cfg, "head")
    assert MASK_COLUMNS <= _columns(engine)
    engine.dispose()
    catalog = Catalog(url)
    mask = {"rows": 4, "columns": 5, "rle": [6, 3, 2, 3, 6]}
    with catalog.session() as s:
        old = s.query(ConsensusLabel).one()
        assert (old.value, old.instance, old.frame, old.mask) == (1, None, None, None)
        s.add(ConsensusLabel(round_id=old.round_id, item_id=old.item_id, label="lesion_mask", method="staple",
                             ordinal=0, value=6, n_readers=3, n_positive=2, x0=1.0, y0=1.0, x1=4.0, y1=3.0,
                             instance=1, frame=0, mask=mask))
    with catalog.session() as s:
        row = s.query(ConsensusLabel).filter_by(method="staple").one()
        assert (row.instance, row.frame, row.mask) == (1, 0, mask)
        assert s.query(AnnotationItem).count() == 1 and s.query(AnnotationRound).count() == 1
        assert s.query(Series).count() == 1
    catalog.dispose()
    command.downgrade(cfg, "0002")
    engine = create_engine(url)
    assert not MASK_COLUMNS & _columns(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM consensus_label")).scalar() == 2
    engine.dispose()
    command.upgrade(cfg, "head")
