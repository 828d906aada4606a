"""annotation_round under the real scheduler, triggerer, dag-processor and API server (LocalExecutor):
the wait task defers (no task runs on a worker while people read), the triggerer is stopped and a
new one started mid-wait, and the run resumes and succeeds once people complete the round through
the service's REST API."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.annotation.conftest import free_port
from tests.dags.components import Airflow, scheduler_env
from tests.operators.world import LABELS_PROJECT, READERS, Readers, curated_catalog, findings_answer, start_world

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.server, pytest.mark.slow]


def test_the_wait_defers_and_survives_a_triggerer_restart(tmp_path, airflow_env):
    home = tmp_path / "curate"
    curated_catalog(home, n_labels=2, n_review=0)
    world = start_world(tmp_path / "service")
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "annotation_round.py").symlink_to(REPO / "dags" / "annotation_round.py")
    port = free_port()
    env = scheduler_env(airflow_env, dags, port, CURATE_HOME=str(home),
                        AIRFLOW_CONN_CURATE_ANNOTATION=world.connection())
    logs = tmp_path / "logs"
    logs.mkdir()
    af = Airflow(env, logs)
    readers = Readers(world, LABELS_PROJECT, READERS, findings_answer())
    try:
        af.start_scheduler(port, "annotation_round")
        run_id = f"manual__scheduler_{port}"
        conf = {"project": LABELS_PROJECT, "readers_per_item": 3, "deadline_hours": 1, "poll_seconds": 1,
                "bootstrap_resamples": 0}
        subprocess.run([af.airflow, "dags", "trigger", "annotation_round", "--run-id", run_id, "--conf",
                        json.dumps(conf)], env=env,
                       check=True, capture_output=True, timeout=120)
        af.wait_for("the wait to defer", lambda: af.query(
            "select 1 from task_instance where run_id = ? and task_id = 'wait' and state = 'deferred' "
            "and trigger_id is not null", run_id), timeout_s=180)
        # the other branch (no quality-review project: skipped) settles; then no task holds a worker slot
        af.wait_for("no task to run", lambda: not af.query(
            "select 1 from task_instance where run_id = ? and state in ('running', 'queued', 'scheduled')", run_id),
            timeout_s=60)
        assert af.query("select state from task_instance where run_id = ? and task_id = 'wait'", run_id) == \
            [("deferred",)]
        # the triggerer goes away mid-wait; another one takes the trigger over from the metadata DB
        first = af.query("select max(id) from job where job_type = 'TriggererJob'")[0][0]
        af.stop("triggerer")
        af.start("triggerer", "--skip-serve-logs")
        af.wait_for("a new triggerer to take the trigger over", lambda: af.query(
            "select 1 from trigger where triggerer_id = (select max(id) from job where job_type = 'TriggererJob') "
            "and triggerer_id != ?", first), timeout_s=120)
        readers.start()
        state = af.wait_for("the run to finish", lambda: (af.query(
            "select state from dag_run where run_id = ? and state in ('success', 'failed')", run_id)
            or [None])[0], timeout_s=240)
        tis = dict(af.query("select task_id, state from task_instance where run_id = ?", run_id))
        assert state == ("success",), tis
        assert {k: tis[k] for k in ("select", "dispatch", "wait", "collect", "analyse")} == dict.fromkeys(
            ("select", "dispatch", "wait", "collect", "analyse"), "success")
        assert tis["select_quality_review"] == "skipped"
        task_logs = (Path(env["AIRFLOW_HOME"]) / "logs").rglob("*")
        wait_log = "".join(p.read_text(errors="replace") for p in task_logs
                           if p.is_file() and f"run_id={run_id}" in str(p) and "task_id=wait" in str(p))
        assert "is complete: 2 of 2 items complete" in wait_log, wait_log[-3000:]
    finally:
        readers.stop.set()
        if readers.is_alive():
            readers.join(timeout=30)
        af.stop_all()
        world.server.stop()
