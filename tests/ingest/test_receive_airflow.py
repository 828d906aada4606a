"""The receiver against a real Airflow (API server with its login, dag-processor, scheduler, LocalExecutor):
a series sent by C-STORE goes quiet, the receiver starts a curate_source run through the REST API, and
that run curates exactly the received series from the catalog the receiver filled."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from curation.catalog import Catalog, Series, StageRecord
from curation.receive import AirflowTrigger
from curation.store import open_store
from tests.annotation.conftest import free_port
from tests.dags.components import Airflow
from tests.ingest.test_receive import World, a_series, send

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.server, pytest.mark.slow]


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.RequestException:
        return False


def test_a_quiet_series_is_curated_by_the_curate_source_run_the_receiver_starts(tmp_path, airflow_env) -> None:
    home = tmp_path / "curate"
    home.mkdir()
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "curate_source.py").symlink_to(REPO / "dags" / "curate_source.py")
    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps({"receiver": "s3cret"}))
    port = free_port()
    env = dict(airflow_env, CURATE_HOME=str(home), AIRFLOW__CORE__DAGS_FOLDER=str(dags),
               AIRFLOW__CORE__EXECUTOR="LocalExecutor", AIRFLOW__CORE__PARALLELISM="2",
               AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False", AIRFLOW__API__PORT=str(port),
               AIRFLOW__API__HOST="127.0.0.1",
               AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
               AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="receiver:admin",
               AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords),
               AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="1")
    logs = tmp_path / "logs"
    logs.mkdir()
    af = Airflow(env, logs)
    # The receiver writes the catalog and the store curate_source reads (the embedded default's, under CURATE_HOME).
    world = World(tmp_path)
    world.catalog = Catalog(f"sqlite:///{home / 'catalog.sqlite'}")
    world.store = open_store(str(home / "store"))
    try:
        af.start_scheduler(port, "curate_source", triggerer=False, timeout_s=120)
        af.wait_for("the API server", lambda: _answers(f"http://127.0.0.1:{port}/api/v2/monitor/health"))
        trigger = AirflowTrigger(f"http://127.0.0.1:{port}", username="receiver", password="s3cret")
        receiver = world.receiver(trigger, quiet_seconds=1.0)
        series = a_series(3)
        assert send(receiver.port, series) == [0, 0, 0]
        # the session's Airflow home also holds other tests' curate_source runs: the receiver's are its own
        (run_id, conf), = af.wait_for("the receiver's run", lambda: af.query(
            "select run_id, conf from dag_run where dag_id = 'curate_source' and run_id like 'receive\\_\\_%' "
            "escape '\\'"), timeout_s=120)
        assert run_id.startswith("receive__series-")
        state = af.wait_for("the run to finish", lambda: (af.query(
            "select state from dag_run where run_id = ? and state in ('success', 'failed')", run_id)
            or [None])[0], timeout_s=420)
        tis = dict(af.query("select task_id || ':' || map_index, state from task_instance where run_id = ?", run_id))
        assert state == ("success",), tis
        assert receiver.stats["series_triggered"] == 1 and receiver.stats["trigger_failures"] == 0
    finally:
        for r in world.receivers:
            r.stop()
        world.receivers.clear()
        af.stop_all()
    with world.catalog.session() as s:
        (series_id,) = s.scalars(select(Series.id)).all()
        stages = {r.stage: r.status for r in s.scalars(select(StageRecord).where(
            StageRecord.subject_type == "series", StageRecord.subject_id == series_id))}
    # One series mapped through the per-series stages: the one received, nothing else.
    assert {k.split(":")[0] for k, v in tis.items() if v == "success"} >= {"ingest", "deid", "classify", "quality"}
    assert [k for k in tis if k.startswith("deid:")] == ["deid:0"]
    assert {"deid", "classify", "quality"} <= set(stages), stages
    assert str(series_id) in str(conf)
