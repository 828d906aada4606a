"""The production topology of docker-compose.yaml, started natively (no Docker daemon here): Airflow under
CeleryExecutor with two Celery workers on a Redis broker, PostgreSQL for Airflow's metadata (and Celery's
results) and for the catalog, the store on a SeaweedFS S3 server, the annotation service on a PostgreSQL
database of its own reading that store. `curate_source` runs on a small synthetic site; one worker is
killed with SIGKILL while it runs a per-series task; the run still succeeds (the task is retried on the
other worker) and what it produced equals the embedded default's (dag.test(), SQLite, a local store, the
same pseudonym secret): catalog rows, de-identified files' SHA-256s, decisions, ledger. Then
`annotation_round` runs on the same Celery stack for two curated series with text burned into their
pixels: its items are rows of the service's database, a reader is served their frames from the S3 store's
deid zone (masked pixels) with no identifying value of the site's ground truth, the round completes, and
a raw-zone URI is refused by the service.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from tests.dags.annotation_stack import (
    ROUND_CONF, ROUND_STATES, SECONDARY_CAPTURE, phi_leaks, raw_keys, raw_uri_refused, read_round, service_items,
    start_service,
)
from tests.dags.components import REPO, Airflow, celery_env
from tests.dags.test_curate_source_run import RUN
from tests.fixtures.catalog_facts import catalog_facts, zone_hashes
from tests.fixtures.ports import free_ports, stop_process_group, wait_port

pytestmark = [pytest.mark.server, pytest.mark.slow]

SITE = "prodstack"
SECRET = "p" * 64
#: A handful of one patient's series: three MR (one with a corrupt file, one truncated, one with a
#: Thumbs.db), a burned-in secondary capture (OCR), a low-dose CT (corrupt + no SOP Instance UID), a CR,
#: an ultrasound with burned-in text, and a PNG chest image (the image branch).
SERIES = ("dicom/P00001/S0001/SE0002", "dicom/P00001/S0001/SE0003", "dicom/P00001/S0001/SE0004",
          "dicom/P00001/S0001/SE0099", "dicom/P00001/S0002/SE0002", "dicom/P00001/S0004/SE0001",
          "dicom/P00001/S0005/SE0001")
#: The per-series stages: the worker is killed while it runs one of these.
MAPPED = ("deid", "classify", "quality")
#: A worker's death is noticed after this many seconds without the task's heartbeat (Airflow's default is
#: 300): the retry then waits the DAG's retry_delay (30 s, exponential: 15-30 s for a first retry).
HEARTBEAT_TIMEOUT_S = "30"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole synthetic site with its ground truth (the identifying values the service must not show)."""
    from synth import generate_site

    full = tmp_path_factory.mktemp("synth")
    generate_site(full, 1, 0, matrix=32, slices=4, phi_locations=False)
    return full


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, synthetic: Path) -> Path:
    full = synthetic
    out = tmp_path_factory.mktemp("site")
    for folder in SERIES:
        shutil.copytree(full / folder, out / folder)
    shutil.copytree(full / "images", out / "images", ignore=shutil.ignore_patterns("*.jpg", "*.jpeg"))
    return out


@pytest.fixture()
def broker(tmp_path: Path) -> Iterator[str]:
    """A Redis of this test's own on a free loopback port (no persistence), as the compose `redis` service."""
    redis = shutil.which("redis-server")
    if redis is None:
        pytest.fail("redis-server is not installed (Debian package redis-server)")
    port = free_ports(1)[0]
    proc = subprocess.Popen([redis, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        assert wait_port(port, 30), f"redis-server did not listen on 127.0.0.1:{port}"
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_process_group(proc, 10)


class Embedded(NamedTuple):
    """The embedded default's run of the site: dag.test() in a subprocess, its home and its output."""

    process: subprocess.Popen
    home: Path
    log: Path


@pytest.fixture()
def embedded(tmp_path: Path, site: Path, airflow_env: dict[str, str]) -> Iterator[Embedded]:
    """curate_source on `site` the embedded way (SQLite catalog, local store), started in the background so
    that it runs while the production stack starts; killed at teardown if the test ended first."""
    home, log = tmp_path / "embedded", tmp_path / "embedded.log"
    env = dict(airflow_env, CURATE_HOME=str(home), CURATE_PSEUDONYM_SECRET=SECRET)
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", RUN, str(REPO / "dags" / "curate_source.py"),
                                 json.dumps(conf(site))], env=env, stdout=out, stderr=subprocess.STDOUT)
    yield Embedded(proc, home, log)
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def conf(site: Path) -> dict[str, str]:
    return {"source": str(site), "site": SITE}


def test_curate_source_under_celery_survives_a_killed_worker_and_equals_the_embedded_run(
        tmp_path, synthetic, site, embedded, airflow_env, broker, postgres_database_factory, s3_server):
    metadata_url, catalog_url = postgres_database_factory(), postgres_database_factory()
    annotation_url = postgres_database_factory()
    bucket = s3_server.new_bucket("prodstack")
    store_uri = f"s3://{bucket}/site"
    dags = tmp_path / "dags"
    dags.mkdir()
    for dag_file in ("curate_source.py", "annotation_round.py"):
        (dags / dag_file).symlink_to(REPO / "dags" / dag_file)
    logs = tmp_path / "logs"
    logs.mkdir()
    port = free_ports(1)[0]
    env = celery_env(dict(airflow_env, AIRFLOW_HOME=str(tmp_path / "airflow_home")), dags, port,
                     metadata_url=metadata_url, broker_url=broker,
                     AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT=HEARTBEAT_TIMEOUT_S,
                     AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL="5",
                     # annotation_round stays paused until the test triggers it with its form (an
                     # asset-triggered run would take the defaults: a 72-hour deadline, the findings model)
                     AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="True",
                     CURATE_DB_URL=catalog_url, CURATE_STORE_URI=store_uri,
                     CURATE_PSEUDONYM_SECRET=SECRET, CURATE_HOME=str(tmp_path / "celery_curate"),
                     **s3_server.env())
    af = Airflow(env, logs)
    preflight = subprocess.run([sys.executable, "-c", "import airflow.providers.celery.executors.celery_executor"],
                               env=env, capture_output=True, text=True, timeout=120)
    assert preflight.returncode == 0, "the CeleryExecutor does not import:\n" + preflight.stderr[-1500:]
    run_id, round_run = "manual__production_stack", "manual__production_stack_round"
    world = None
    try:
        af.migrate()
        subprocess.run([sys.executable, "-c", "from curation.catalog import migrate; migrate()"], env=env,
                       check=True, timeout=120)
        # the data protection officer's key pair: its public half in the S3 store's vault (the embedded
        # default makes one on first use; a production store is refused until the officer has made it)
        subprocess.run([sys.executable, "-m", "curate", "deid", "keys", "create", "--out", str(tmp_path / "dpo.pem"),
                        "--store", env["CURATE_STORE_URI"]], env=env, check=True, capture_output=True, timeout=120)
        af.start_celery_worker("worker1")
        af.start_celery_worker("worker2")
        af.start_scheduler(port, "curate_source", timeout_s=240)
        af.run("dags", "trigger", "curate_source", "--run-id", run_id, "--conf", json.dumps(conf(site)))

        def running_on_a_worker() -> tuple[str, str, int] | None:
            rows = af.query("select task_id, map_index, pid from task_instance where run_id = ? and state = 'running'"
                            " and pid is not null", run_id)
            for task_id, map_index, pid in rows:
                if task_id in MAPPED:
                    for worker in ("worker1", "worker2"):
                        if pid in af.pids(worker):
                            return worker, task_id, map_index
            return None

        victim, task_id, map_index = af.wait_for("a per-series task running on a worker", running_on_a_worker,
                                                 timeout_s=300)
        af.kill(victim)
        state_at_kill = af.query("select state, try_number from task_instance where run_id = ? and task_id = ? "
                                 "and map_index = ?", run_id, task_id, map_index)
        assert state_at_kill[0] == ("running", 1), f"{task_id}[{map_index}] ended before the kill: {state_at_kill}"
        # the annotation service starts while the killed task waits for its retry (no time added): its own
        # PostgreSQL database, the S3 store; Airflow reaches it through the `curate_annotation` connection
        world = start_service(tmp_path / "annotation", annotation_url, s3_server, store_uri)
        af.run("connections", "add", "curate_annotation", "--conn-json", world.connection())
        # nothing raw is reachable: the pipeline's token registering a raw object of the store (ingest is
        # done: the per-series stages run) is refused
        probe_key = raw_keys(catalog_url, path_part=SECONDARY_CAPTURE)[0]
        refused = raw_uri_refused(world, f"{store_uri}/raw/{probe_key}")
        state = af.wait_for("the run to finish", lambda: (af.query(
            "select state from dag_run where run_id = ? and state in ('success', 'failed')", run_id)
            or [None])[0], timeout_s=600)
        tis = af.query("select task_id, map_index, state, try_number from task_instance where run_id = ?", run_id)
        assert state == ("success",), _stack_logs(logs, tis)

        # what curate_source made, before annotation_round adds its round to the catalog
        from curation.catalog import Catalog
        from curation.store.s3 import S3Store

        celery_store = S3Store(bucket, "site", client=s3_server.client())
        celery_facts = catalog_facts(Catalog(catalog_url), store_root=store_uri)
        celery_zones = {zone: zone_hashes(celery_store, zone) for zone in ("raw", "deid", "derived")}
        af.query("update dag set is_paused = ? where dag_id = ?", False, "annotation_round")
        af.run("dags", "trigger", "annotation_round", "--run-id", round_run, "--conf", json.dumps(ROUND_CONF))
        _compare_with_the_embedded_run(embedded, celery_facts, celery_zones)

        wait = af.wait_for("the round to wait for its reader", lambda: (af.query(
            "select state from task_instance where run_id = ? and task_id = 'wait' and state in "
            "('deferred', 'success', 'failed', 'upstream_failed', 'skipped')", round_run) or af.query(
            "select state from dag_run where run_id = ? and state = 'failed'", round_run) or [None])[0],
            timeout_s=300)
        round_tis = af.query("select task_id, map_index, state, try_number from task_instance where run_id = ?",
                             round_run)
        assert wait == ("deferred",), _stack_logs(logs, round_tis)
        items = service_items(annotation_url, world.projects[ROUND_CONF["project"]])
        leaks = phi_leaks(synthetic)
        read = read_round(world, celery_store, store_uri, catalog_url, leaks)
        state = af.wait_for("the round to finish", lambda: (af.query(
            "select state from dag_run where run_id = ? and state in ('success', 'failed')", round_run)
            or [None])[0], timeout_s=300)
        round_tis = af.query("select task_id, map_index, state, try_number from task_instance where run_id = ?",
                             round_run)
        assert state == ("success",), _stack_logs(logs, round_tis)
    finally:
        af.stop_all()
        if world is not None:
            world.server.stop()
    # the killed worker's task ran again (another try) on the surviving worker and succeeded
    tries = {(t, m): (s, n) for t, m, s, n in tis}
    assert tries[(task_id, map_index)][0] == "success" and tries[(task_id, map_index)][1] >= 2, tries
    # every task succeeded; register alone may be skipped (group_studies hands it no study when quality
    # left none with a volume to register), and summary still runs then (it announces the curated series)
    assert all(s == "success" or (t == "register" and s == "skipped") for (t, _), (s, _) in tries.items()), \
        {k: v for k, v in tries.items() if v[0] != "success"}
    per_task = Counter(t for t, _ in tries)
    assert {t: per_task[t] for t in (*MAPPED, "ingest", "summary")} == dict.fromkeys(MAPPED, 8) | {"ingest": 1,
                                                                                                "summary": 1}

    # annotation_round on the same stack: the round's tasks succeeded (no model: predict skipped; no review
    # project: that branch skipped); the service holds the two selected series as items in its PostgreSQL
    # database, all pointing into the S3 store's deid zone
    round_states = {t: s for t, _, s, _ in round_tis}
    assert {t: round_states.get(t) for t in ROUND_STATES} == ROUND_STATES, round_states
    assert len(items) == 2 and all(u.startswith(f"{store_uri}/deid/") for uris in items.values() for u in uris), items
    assert read == len(items), f"{read} readings for {len(items)} items"
    # the reader was served every item's frames and objects from there with no identifying value; the
    # detector sees the ground truth's values in a raw object (so it would have seen a leak)
    probe = phi_leaks(synthetic)
    probe.dicom("raw", celery_store.get_bytes("raw", probe_key))
    assert probe.found, "the PHI detector finds nothing in a raw object: it checks nothing"
    leaks.text("service log", world.server.log_path.read_text(errors="replace"))
    assert not leaks.found, f"identifying values served by the annotation service: {leaks.found[:10]}"
    assert refused.status_code == 422 and "raw zone" in refused.text, (refused.status_code, refused.text)

    verify = subprocess.run([sys.executable, "-m", "curate", "audit", "verify", "--db", catalog_url, "--json"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    report = json.loads(verify.stdout)
    # the ledger holds the round's events too (dispatch, close, collect, analyse) and still verifies
    assert report["ok"] and report["events"] == _ledger_events(catalog_url) > celery_facts["counts"][
        "lineage_event"], report


def _compare_with_the_embedded_run(embedded: Embedded, celery_facts: dict[str, Any],
                                   celery_zones: dict[str, dict[str, str]]) -> None:
    """The Celery stack's catalog and store equal the embedded default's (run meanwhile in the background)."""
    from curation.catalog import Catalog
    from curation.store import open_store

    embedded.process.wait(timeout=900)
    log = embedded.log.read_text(errors="replace")
    assert embedded.process.returncode == 0 and "STATE success" in log, log[-4000:]
    embedded_store = open_store(embedded.home / "store")
    embedded_facts = catalog_facts(Catalog(f"sqlite:///{embedded.home / 'catalog.sqlite'}"),
                                   store_root=embedded_store.uri_for("raw", "x").rsplit("/raw/", 1)[0])
    assert celery_facts["counts"]["instance"] == 20 and celery_facts["counts"]["quarantine_record"] == 5
    for table in embedded_facts:
        assert celery_facts[table] == embedded_facts[table], table
    # every object of the de-identified and derived zones, and the raw zone, byte for byte
    for zone, hashes in celery_zones.items():
        assert hashes == zone_hashes(embedded_store, zone), zone
    assert celery_zones["deid"], "no de-identified object written"


def _ledger_events(catalog_url: str) -> int:
    from sqlalchemy import func, select

    from curation.catalog import Catalog, LineageEvent

    with Catalog(catalog_url).session() as s:
        return s.scalar(select(func.count()).select_from(LineageEvent))


def _stack_logs(logs: Path, tis: list[tuple]) -> str:
    tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in sorted(logs.glob("*.log")))
    return f"task instances: {sorted(tis)}\n{tails}"
