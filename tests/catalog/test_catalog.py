"""The catalog schema migrates and behaves the same on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest
from sqlalchemy import func, inspect, select
from sqlalchemy.exc import IntegrityError

from curation.catalog import (
    Catalog, Instance, LineageEvent, Patient, QuarantineRecord, Series, StageRecord, Study, append_event,
    migrate, verify_chain,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    else:
        url = request.getfixturevalue("fresh_postgres_url")
    cat = Catalog(url)
    yield cat
    cat.dispose()


def test_migrations_create_every_table_and_are_idempotent(catalog):
    migrate(catalog.url)  # second run: nothing to do, no error
    names = set(inspect(catalog.engine).get_table_names())
    assert {"source", "patient", "study", "series", "instance", "stage_result", "quarantine_record",
            "lineage_event", "alembic_version"} <= names


def test_hierarchy_round_trip_and_unique_uids(catalog):
    from curation.catalog import Source

    with catalog.session() as s:
        src = Source(kind="folder", uri="/data/export", site="s1")
        p = Patient(site="s1", patient_key="a" * 64)
        s.add_all([src, p])
        s.flush()
        st = Study(patient_id=p.id, study_instance_uid="1.2.3")
        s.add(st)
        s.flush()
        se = Series(study_id=st.id, series_instance_uid="1.2.3.4", modality="MR")
        s.add(se)
        s.flush()
        s.add(Instance(series_id=se.id, sop_instance_uid="1.2.3.4.5", sha256="b" * 64, size=10,
                       raw_key="objects/bb/bb/" + "b" * 64, source_id=src.id, source_path="x/y"))
    with pytest.raises(IntegrityError):
        with catalog.session() as s:
            s.add(Instance(series_id=se.id, sop_instance_uid="1.2.3.4.5", sha256="c" * 64, size=10,
                           raw_key="k", source_id=src.id, source_path="x/z"))
    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(Instance)) == 1
        inst = s.scalars(select(Instance)).one()
        assert inst.series.study.patient.patient_key == "a" * 64


def test_stage_result_key_makes_reruns_idempotent(catalog):
    key = dict(stage="quality", stage_version="1", subject_type="series", subject_id=1,
               input_hash="h" * 64, config_hash="c" * 64)
    with catalog.session() as s:
        s.add(StageRecord(status="ok", metrics={"snr": 12.5}, **key))
    with pytest.raises(IntegrityError):
        with catalog.session() as s:
            s.add(StageRecord(status="ok", metrics={}, **key))
    with catalog.session() as s:
        row = s.scalars(select(StageRecord)).one()
        assert row.metrics == {"snr": 12.5}


def test_quarantine_record_keeps_specific_reason(catalog):
    with catalog.session() as s:
        s.add(QuarantineRecord(file="a/b.dcm", sha256="d" * 64, stage="ingest", reason_code="truncated",
                               reason="Pixel Data holds 10 bytes, 20 expected"))
    with catalog.session() as s:
        q = s.scalars(select(QuarantineRecord)).one()
        assert (q.reason_code, q.resolved_at) == ("truncated", None)


def test_lineage_chain_detects_edits_and_deletions(catalog):
    for i in range(5):
        append_event(catalog, stage="ingest", action="ingest_batch", subject=f"source:{i}", outputs=[f"{i:064d}"])
    assert verify_chain(catalog).ok and verify_chain(catalog).events == 5
    with catalog.session() as s:
        ev = s.scalars(select(LineageEvent).where(LineageEvent.subject == "source:2")).one()
        ev.details = {"tampered": True}
    report = verify_chain(catalog)
    assert not report.ok and "edited" in report.problem
    with catalog.session() as s:
        ev = s.scalars(select(LineageEvent).where(LineageEvent.subject == "source:2")).one()
        ev.details = {}
    assert verify_chain(catalog).ok
    with catalog.session() as s:
        s.delete(s.scalars(select(LineageEvent).where(LineageEvent.subject == "source:3")).one())
    report = verify_chain(catalog)
    assert not report.ok and "broken" in report.problem
