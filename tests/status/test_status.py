"""`curation.status` and `curate status` on a catalog the real pipeline built (SQLite and PostgreSQL):
the figures equal what the rows say counted one by one, nothing names a file's path, and the number
of queries does not grow with the catalog (no per-row loop)."""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import event, func, insert, select

from curation.catalog import Catalog, Instance, Patient, QuarantineRecord, Series, Source, StageRecord, Study
from curation.catalog.models import QualityReview
from curation.status import awaiting_review, quarantined_file, quarantined_files, releases, rounds_in_progress, \
    site_status, status
from tests.status.world import DEADLINE_HOURS, World, build_world

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request, tmp_path) -> World:
    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}" if request.param == "sqlite" \
        else request.getfixturevalue("fresh_postgres_url")
    built = build_world(tmp_path, url)
    yield built
    built.catalog.dispose()


def _expected(catalog: Catalog) -> dict[str, dict]:
    """Each site's figures counted row by row in Python (the slow, obvious way)."""
    out: dict[str, dict] = {}
    with catalog.session() as s:
        source_site = {src.id: src.site for src in s.scalars(select(Source))}
        instances = list(s.scalars(select(Instance)))
        series_site = {i.series_id: source_site[i.source_id] for i in instances}
        by_hash = {i.sha256: source_site[i.source_id] for i in instances}
        for site in set(source_site.values()):
            out[site] = {"patients": 0, "studies": 0, "series": 0, "instances": 0, "stages": {}, "quarantine": Counter()}
        for p in s.scalars(select(Patient)):
            out[p.site]["patients"] += 1
            out[p.site]["studies"] += len(p.studies)
        for sid, site in series_site.items():
            out[site]["series"] += 1
        for i in instances:
            out[source_site[i.source_id]]["instances"] += 1
        newest: dict[tuple[str, int], StageRecord] = {}
        for r in s.scalars(select(StageRecord).where(StageRecord.subject_type == "series").order_by(StageRecord.id)):
            newest[(r.stage, r.subject_id)] = r
        for (stage, sid), r in newest.items():
            stages = out[series_site[sid]]["stages"].setdefault(stage, Counter())
            stages[r.status] += 1
        for q in s.scalars(select(QuarantineRecord).where(QuarantineRecord.resolved_at.is_(None))):
            site = source_site[q.source_id] if q.source_id else by_hash[q.sha256]
            out[site]["quarantine"][q.reason_code] += 1
    return out


def test_site_figures_equal_the_rows_counted_one_by_one(world):
    got = {row.site: row for row in site_status(world.catalog)}
    want = _expected(world.catalog)
    assert set(got) == set(want) == {"north", "south"}
    for site, figures in want.items():
        row = got[site]
        assert (row.patients, row.studies, row.series, row.instances) == (
            figures["patients"], figures["studies"], figures["series"], figures["instances"]), site
        assert row.quarantine == dict(figures["quarantine"]), site
        per_series = {k: v for k, v in row.stages.items() if k != "ingest"}
        assert per_series == {k: dict(v) for k, v in figures["stages"].items()}, site
    north, south = got["north"], got["south"]
    assert (north.patients, north.series, north.instances) == (5, 5, 5)
    assert north.quarantine == {"truncated": 1, "not_dicom": 1, "corrupt": 1, "missing_attribute": 1,
                                "conflicting_duplicate": 1, "pixel_text_left": 1}
    assert north.stages["ingest"] == {"ok": 5, "quarantined": 5}  # the deid stage's quarantine is not ingest's
    assert set(north.stage_seconds) == {"deid", "classify", "quality"}
    assert (south.patients, south.studies, south.series, south.instances) == (1, 1, 1, 12)
    assert south.stages == {"ingest": {"ok": 12}} and south.quarantine == {}
    assert [r.site for r in site_status(world.catalog, "south")] == ["south"]
    assert site_status(world.catalog, "nowhere")[0].instances == 0


def test_review_rounds_and_releases(world):
    with world.catalog.session() as s:
        model_review = set(s.scalars(select(StageRecord.subject_id).where(StageRecord.stage == "quality",
                                                                          StageRecord.status == "review")))
        decided = set(s.scalars(select(QualityReview.series_id)))
    waiting = awaiting_review(world.catalog)
    assert {w.series_id for w in waiting} == model_review - decided
    assert world.reviewed_series not in {w.series_id for w in waiting}
    assert all(w.site == "north" and w.kind and w.modality for w in waiting)
    assert {r.site: r.awaiting_review for r in site_status(world.catalog)} == {"north": len(waiting), "south": 0}

    (rnd,) = rounds_in_progress(world.catalog)  # the analysed round is over
    assert (rnd.id, rnd.state, rnd.items, rnd.readers_per_item, rnd.readers, rnd.readings) == (
        world.round_id, "dispatched", 2, 2, 1, 1)
    assert rnd.completion == 0.25
    assert abs((rnd.deadline.replace(tzinfo=None) - world.dispatched_at.replace(tzinfo=None)).total_seconds()
               - DEADLINE_HOURS * 3600) < 1

    built, published = releases(world.catalog)  # the most recently active first
    assert (published.name, published.version, published.state, published.files) == ("chest-ct", "1.0.0", "publish", 12)
    assert published.steps == ("select", "build", "verify", "approval", "publish")
    assert (built.version, built.state, built.files, built.steps) == ("1.1.0", "rejected", None, ("build", "approval"))


def test_quarantine_list_names_source_and_hash_never_the_path(world):
    files = quarantined_files(world.catalog, site="north")
    assert len(files) == 6
    with world.catalog.session() as s:
        paths = set(s.scalars(select(QuarantineRecord.file))) | set(s.scalars(select(Instance.source_path)))
    text = json.dumps([f.to_json() for f in files]) + json.dumps(status(world.catalog), default=str)
    for path in paths:
        assert path not in text, path
    ingest_q = [f for f in files if f.stage == "ingest"]
    assert all(f.source_kind == "folder" and f.source_uri == str(world.source_root) for f in files)
    assert len(ingest_q) == 5
    deid_q = quarantined_file(world.catalog, world.deid_quarantine_id)
    # a deid quarantine names no source in its row: the instance with its content hash tells where it came from
    assert (deid_q.site, deid_q.source_uri, deid_q.reason_code) == ("north", str(world.source_root), "pixel_text_left")
    assert quarantined_files(world.catalog, site="south") == []
    assert [f.reason_code for f in quarantined_files(world.catalog, reason_code="truncated")] == ["truncated"]


def _curate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "curate", "status", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_curate_status_json_and_text(world):
    res = _curate("--db", world.catalog.url, "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    north = next(s for s in report["sites"] if s["site"] == "north")
    assert {k: north[k] for k in ("patients", "studies", "series", "instances")} == {
        "patients": 5, "studies": 5, "series": 5, "instances": 5}
    assert north["quarantine"]["truncated"] == 1 and set(north["stages"]) >= {"ingest", "deid", "classify", "quality"}
    assert [r["version"] for r in report["releases"]] == ["1.1.0", "1.0.0"]
    res = _curate("--db", world.catalog.url, "--site", "south")
    assert res.returncode == 0, res.stderr
    assert "site south: 1 patients, 1 studies, 1 series, 12 instances" in res.stdout
    assert "site north" not in res.stdout
    assert "ingest" in res.stdout and "12 ok" in res.stdout
    assert "chest-ct@1.1.0 rejected" in res.stdout and "chest-ct@1.0.0 publish" in res.stdout and "12 files" in res.stdout


def _grow(catalog: Catalog, n_instances: int, per_series: int = 20) -> None:
    """Add a site of `n_instances` instances (with a stage record per series and a quarantined file
    per series) by bulk inserts: the shape of a big site, without running the stages."""
    with catalog.session() as s:
        src = Source(kind="folder", uri="/data/big", site="big")
        s.add(src)
        s.flush()
        n_series = n_instances // per_series
        patients = s.execute(insert(Patient).returning(Patient.id),
                             [{"site": "big", "patient_key": f"{p:064x}"} for p in range(n_series)]).scalars().all()
        studies = s.execute(insert(Study).returning(Study.id), [
            {"patient_id": pid, "study_instance_uid": f"9.9.{pid}"} for pid in patients]).scalars().all()
        series = s.execute(insert(Series).returning(Series.id), [
            {"study_id": st, "series_instance_uid": f"9.8.{st}", "modality": "CT"} for st in studies]).scalars().all()
        s.execute(insert(Instance), [
            {"series_id": sid, "sop_instance_uid": f"9.7.{sid}.{i}", "sha256": f"{sid:032x}{i:032x}", "size": 1,
             "raw_key": f"objects/{sid}/{i}", "source_id": src.id, "source_path": f"big/{sid}/{i}.dcm"}
            for sid in series for i in range(per_series)])
        for stage in ("deid", "classify", "quality"):
            s.execute(insert(StageRecord), [
                {"stage": stage, "stage_version": "1", "subject_type": "series", "subject_id": sid,
                 "input_hash": "i" * 64, "config_hash": "c" * 64, "status": "review" if stage == "quality" else "ok",
                 "metrics": {"seconds": 0.5}} for sid in series])
        s.execute(insert(QuarantineRecord), [
            {"source_id": src.id, "file": f"big/{sid}/bad.dcm", "sha256": f"{sid:064x}", "stage": "ingest",
             "reason_code": "truncated", "reason": "file ends early"} for sid in series])


def _statements(catalog: Catalog) -> int:
    count = 0

    def note(*_args) -> None:
        nonlocal count
        count += 1

    event.listen(catalog.engine, "before_cursor_execute", note)
    try:
        status(catalog)
    finally:
        event.remove(catalog.engine, "before_cursor_execute", note)
    return count


def test_the_number_of_queries_does_not_grow_with_the_catalog(tmp_path):
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    _grow(catalog, 200)
    small = _statements(catalog)
    big = Catalog(f"sqlite:///{tmp_path / 'big.sqlite'}")
    _grow(big, 10_000)
    assert _statements(big) == small
    (row,) = site_status(big)
    assert (row.patients, row.series, row.instances) == (500, 500, 10_000)
    assert row.stages["quality"] == {"review": 500} and row.quarantine == {"truncated": 500}
    assert row.stage_seconds["deid"] == 250.0
    with big.session() as s:
        assert s.scalar(select(func.count()).select_from(Instance)) == 10_000
