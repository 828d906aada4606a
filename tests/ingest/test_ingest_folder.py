"""Ingest from a folder and from archives: every bad input quarantined with its own reason, good files
arrive, re-ingest is a no-op, a killed run leaves a consistent catalog."""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import func, select

from curation.catalog import Catalog, Instance, LineageEvent, Patient, QuarantineRecord, Series, Study, verify_chain
from curation.ingest import ingest
from curation.store import Zone, open_store
from tests.ingest.corpus import build_bad_corpus, build_many, write_png


@pytest.fixture()
def env(tmp_path: Path):
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    store = open_store(str(tmp_path / "store"))
    return catalog, store


def counts(catalog: Catalog) -> dict[str, int]:
    with catalog.session() as s:
        return {m.__tablename__: s.scalar(select(func.count()).select_from(m))
                for m in (Patient, Study, Series, Instance, QuarantineRecord)}


def test_every_bad_input_gets_its_own_reason_and_good_files_arrive(tmp_path, env):
    catalog, store = env
    expected = build_bad_corpus(tmp_path / "src")
    write_png(tmp_path / "src" / "chest.png")
    summary = ingest(str(tmp_path / "src"), catalog, store, workers=1)
    got = {q["file"]: q["reason_code"] for q in summary.quarantined}
    want = {f: code for f, code in expected.items() if code not in ("ok", "duplicate")}
    assert got == want, summary.quarantined
    assert summary.duplicates == 1
    assert summary.instances_new == 5 + 1  # five good DICOM + the PNG
    with catalog.session() as s:
        rows = s.execute(select(Instance.source_path, Instance.raw_key, Instance.format)).all()
        assert sorted(r.source_path for r in rows) == sorted(
            [f for f, c in expected.items() if c == "ok"] + ["chest.png"])
        for r in rows:
            assert store.exists(Zone.RAW, r.raw_key)
        # Quarantined bytes are kept too: nothing is lost.
        for q in s.scalars(select(QuarantineRecord)):
            assert q.raw_key and store.exists(Zone.RAW, q.raw_key), q.file
            assert q.reason and q.reason_code
    assert verify_chain(catalog).ok


def test_reingest_adds_no_rows_and_copies_no_bytes(tmp_path, env):
    catalog, store = env
    build_bad_corpus(tmp_path / "src")
    first = ingest(str(tmp_path / "src"), catalog, store, workers=1)
    before = counts(catalog)
    with catalog.session() as s:
        events = s.scalar(select(func.count()).select_from(LineageEvent))
    second = ingest(str(tmp_path / "src"), catalog, store, workers=1)
    assert counts(catalog) == before
    assert second.bytes_copied == 0 and first.bytes_copied > 0
    assert second.instances_new == 0 and second.instances_known == first.instances_new
    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(LineageEvent)) == events


def test_reingest_lists_the_same_series_to_curate_images_included(tmp_path, env):
    """A rerun hands every series it saw to the next stages (which then reuse their results): a known
    PNG's series was left out, so a rerun's demo summary lost the PNG/JPEG/NIfTI series."""
    catalog, store = env
    build_bad_corpus(tmp_path / "src")
    write_png(tmp_path / "src" / "chest.png")
    first = ingest(str(tmp_path / "src"), catalog, store, workers=1)
    second = ingest(str(tmp_path / "src"), catalog, store, workers=1)
    with catalog.session() as s:
        image_series = set(s.scalars(select(Instance.series_id).where(Instance.format != "dicom")))
    assert len(image_series) == 1 and image_series <= set(first.series_ids)
    assert second.series_ids == first.series_ids and second.series == first.series


def _zip_with_hostile_entries(path: Path, src: Path) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for f in sorted(src.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(src).as_posix())
        zf.writestr("../../escape.dcm", (src / "good" / "IM0000").read_bytes())
        link = zipfile.ZipInfo("good/link.dcm")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")


def test_zip_entries_that_escape_or_link_are_quarantined(tmp_path, env):
    catalog, store = env
    expected = build_bad_corpus(tmp_path / "src")
    _zip_with_hostile_entries(tmp_path / "site.zip", tmp_path / "src")
    summary = ingest(str(tmp_path / "site.zip"), catalog, store, workers=1)
    got = {q["file"]: q["reason_code"] for q in summary.quarantined}
    assert got["../../escape.dcm"] == "archive_path_traversal"
    assert got["good/link.dcm"] == "archive_link"
    assert not (tmp_path / "escape.dcm").exists() and not (tmp_path.parent / "escape.dcm").exists()
    for f, code in expected.items():
        if code not in ("ok", "duplicate"):
            assert got[f] == code
    assert summary.instances_new == 5


def test_tar_links_are_not_followed(tmp_path, env):
    catalog, store = env
    build_bad_corpus(tmp_path / "src")
    os.symlink("/etc/passwd", tmp_path / "src" / "good" / "passwd.dcm")
    with tarfile.open(tmp_path / "site.tar.gz", "w:gz") as tf:
        tf.add(tmp_path / "src", arcname="export")
    summary = ingest(str(tmp_path / "site.tar.gz"), catalog, store, workers=1)
    got = {q["file"]: q["reason_code"] for q in summary.quarantined}
    assert got["export/good/passwd.dcm"] == "archive_link"
    assert summary.instances_new == 5


def test_archive_bomb_limits(tmp_path, env):
    from curation.ingest import Limits, SourceError

    catalog, store = env
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.dcm", b"\0" * (8 * 1024 * 1024))
    with pytest.raises(SourceError, match="archive bomb"):
        ingest(str(tmp_path / "bomb.zip"), catalog, store, workers=1, limits=Limits(max_total_bytes=1024 * 1024))


def test_missing_source_is_a_clear_error(tmp_path, env):
    from curation.ingest import SourceError

    catalog, store = env
    with pytest.raises(SourceError, match="does not exist"):
        ingest(str(tmp_path / "nowhere"), catalog, store)


def test_parallel_workers_give_the_same_catalog(tmp_path):
    build_many(tmp_path / "src", 300)
    results = []
    for workers in (1, 2):
        catalog = Catalog(f"sqlite:///{tmp_path / f'c{workers}.sqlite'}")
        store = open_store(str(tmp_path / f"store{workers}"))
        ingest(str(tmp_path / "src"), catalog, store, workers=workers)
        with catalog.session() as s:
            results.append(sorted(s.execute(select(Instance.sop_instance_uid, Instance.sha256)).all()))
    assert results[0] == results[1] and len(results[0]) == 300


def test_sigkill_mid_ingest_then_rerun_is_consistent(tmp_path):
    n = 1500
    build_many(tmp_path / "src", n)
    db = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    store_dir = tmp_path / "store"
    cmd = [sys.executable, "-m", "curate.main", "ingest", str(tmp_path / "src"), "--db", db,
           "--store", str(store_dir), "--workers", "2"]
    catalog = Catalog(db)  # migrated before the child starts, so the two never race on the schema
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until some but not all instances are in
        time.sleep(0.05)
        try:
            done = counts(catalog)["instance"]
        except Exception:  # noqa: BLE001 - schema may not exist yet
            done = 0
        if done > 0 or proc.poll() is not None:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = counts(catalog)["instance"]
    assert partial < n, "the run finished before it could be killed; enlarge the corpus"
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    c = counts(catalog)
    assert c["instance"] == n and c["series"] == 1 and c["quarantine_record"] == 0
    with catalog.session() as s:
        assert s.scalar(select(func.count(func.distinct(Instance.sop_instance_uid)))) == n
        keys = set(s.scalars(select(Instance.raw_key)))
    store = open_store(str(store_dir))
    listed = set(store.list(Zone.RAW))
    assert keys <= listed
    # No partial objects: every stored object is complete (its name is its content hash).
    import hashlib

    for key in listed:
        assert hashlib.sha256(store.get_bytes(Zone.RAW, key)).hexdigest() == key.rsplit("/", 1)[1]
    assert verify_chain(catalog).ok


def _ingest_in_a_daemon(src: str, root: str, out) -> None:  # noqa: ANN001 - a multiprocessing queue
    catalog = Catalog(f"sqlite:///{Path(root) / 'catalog.sqlite'}")
    summary = ingest(src, catalog, open_store(str(Path(root) / "store")), workers=2)
    out.put(summary.instances_new)


def test_ingest_with_workers_runs_inside_a_daemonic_process(tmp_path):
    """A Celery prefork worker runs each task in a daemonic process, which multiprocessing forbids to
    start a pool: ingest of a site large enough for the pool (>= 64 files) failed there with "daemonic
    processes are not allowed to have children" (seen on the 10k site under Celery). It must inspect the
    files in its own process instead and ingest them all."""
    import multiprocessing

    build_many(tmp_path / "src", 80)
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    proc = ctx.Process(target=_ingest_in_a_daemon, args=(str(tmp_path / "src"), str(tmp_path), out), daemon=True)
    proc.start()
    proc.join(120)
    assert proc.exitcode == 0, f"ingest inside a daemonic process exited with {proc.exitcode}"
    assert out.get(timeout=5) == 80
