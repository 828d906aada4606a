"""Failure and deadline alerts reach a real HTTP receiver with where-to-look facts and no PHI.

The failure test runs a real DAG (a task that raises with a patient's name, MRN, path and UID in its
message) through `dag.test()` in a fresh interpreter, with the webhook connection set the way an operator
sets it (an AIRFLOW_CONN_ variable), and reads what the receiver got."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from operators.alerts import deadline_message, error_summary, notify_deadline_missed, run_deadline, webhook_url
from tests.annotation.conftest import free_port
from tests.dags.components import Airflow, scheduler_env

PHI = ("DOE^JANE", "MRN48213377", "/data/in/DOE_JANE/img1.dcm", "1.2.840.113619.2.55.3.604688119")


class Receiver:
    """A webhook on loopback that records each JSON body it is posted."""

    def __init__(self) -> None:
        bodies: list[dict] = []
        self.bodies = bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/T000/B000"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


FAILING_DAG = textwrap.dedent('''
    from datetime import datetime
    from airflow.sdk import DAG, task
    from operators.alerts import alert_args

    with DAG("alert_probe", schedule=None, start_date=datetime(2026, 1, 1), catchup=False,
             default_args={"retries": 0, **alert_args()}) as dag:
        @task
        def read_series():
            raise ValueError("cannot read 'DOE^JANE' MRN48213377 from /data/in/DOE_JANE/img1.dcm "
                             "(series 1.2.840.113619.2.55.3.604688119)")
        read_series()

    if __name__ == "__main__":
        dag.test()
''')


def test_a_failed_task_posts_one_alert_without_phi(receiver, airflow_env, tmp_path):
    dag_file = tmp_path / "alert_probe.py"
    dag_file.write_text(FAILING_DAG)
    env = dict(airflow_env, AIRFLOW__CORE__DAGS_FOLDER=str(tmp_path),
               AIRFLOW_CONN_CURATE_ALERTS=json.dumps({"conn_type": "http", "host": receiver.url}))
    subprocess.run([sys.executable, str(dag_file)], env=env, capture_output=True, text=True, timeout=300)
    assert len(receiver.bodies) == 1, receiver.bodies
    body = receiver.bodies[0]
    facts = body["curate"]
    assert facts["event"] == "task_failed"
    assert (facts["dag_id"], facts["task_id"], facts["try_number"]) == ("alert_probe", "read_series", 1)
    assert facts["run_id"] and facts["log_url"].endswith("/tasks/read_series?try_number=1")
    assert facts["error"].startswith("ValueError: cannot read")
    assert "alert_probe / read_series failed" in body["text"]
    sent = json.dumps(body)
    for value in PHI + ("DOE_JANE", "48213377", "604688119"):
        assert value not in sent, value


def test_without_a_connection_a_failure_sends_nothing_and_is_still_a_failure(receiver, airflow_env, tmp_path):
    dag_file = tmp_path / "alert_probe.py"
    dag_file.write_text(FAILING_DAG)
    env = {k: v for k, v in airflow_env.items() if k != "AIRFLOW_CONN_CURATE_ALERTS"}
    env["AIRFLOW__CORE__DAGS_FOLDER"] = str(tmp_path)
    run = subprocess.run([sys.executable, str(dag_file)], env=env, capture_output=True, text=True, timeout=300)
    assert receiver.bodies == []
    assert "Task failed with exception" in run.stdout + run.stderr
    assert "no Airflow connection 'curate_alerts'" in run.stdout + run.stderr


def test_error_summary_keeps_the_kind_and_drops_identifiers():
    summary = error_summary(ValueError("cannot read 'DOE^JANE' MRN48213377 from /data/in/DOE_JANE/img1.dcm "
                                       "(series 1.2.840.113619.2.55.3.604688119)\nsecond line"))
    assert summary == "ValueError: cannot read '...' MRN<n> from <path> (series <uid>) second line"
    assert error_summary(None).startswith("no exception")
    assert len(error_summary(RuntimeError("x" * 1000))) == 300


def test_webhook_url_from_a_connection():
    assert webhook_url(SimpleNamespace(host="https://hooks.slack.com/services/A/B", port=None)) == \
        "https://hooks.slack.com/services/A/B"
    assert webhook_url(SimpleNamespace(host="alerts.example.org", port=8443, conn_type="https",
                                       schema="hook/1")) == "https://alerts.example.org:8443/hook/1"
    assert webhook_url(SimpleNamespace(host="", port=None)) is None


def test_the_deadline_callback_posts_the_run_without_its_conf(receiver, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_CURATE_ALERTS", json.dumps({"conn_type": "http", "host": receiver.url}))
    context = {"dag_run": {"dag_id": "curate_source", "dag_run_id": "manual__1", "state": "running",
                           "conf": {"source": "/data/in/DOE_JANE"}},
               "deadline": {"id": "d1", "deadline_time": "2026-12-05T12:00:00+00:00"}}
    asyncio.run(notify_deadline_missed(context, deadline="6:00:00"))
    assert receiver.bodies == [deadline_message(context, "6:00:00")]
    facts = receiver.bodies[0]["curate"]
    assert (facts["event"], facts["dag_id"], facts["run_id"], facts["state"]) == \
        ("deadline_missed", "curate_source", "manual__1", "running")
    assert "DOE_JANE" not in json.dumps(receiver.bodies)


def test_run_deadline_is_an_airflow_deadline_alert_with_our_callback():
    alert = run_deadline(__import__("datetime").timedelta(hours=6))
    assert alert.callback.path == "operators.alerts.notify_deadline_missed"
    assert alert.callback.kwargs == {"deadline": "6:00:00"}


SLOW_DAG = textwrap.dedent('''
    from datetime import datetime, timedelta
    import time
    from airflow.sdk import DAG, task
    from operators.alerts import alert_args, run_deadline

    with DAG("deadline_probe", schedule=None, start_date=datetime(2026, 1, 1), catchup=False,
             deadline=run_deadline(timedelta(seconds=5)),
             default_args={"retries": 0, **alert_args()}) as dag:
        @task
        def long_stage():
            time.sleep(90)
        long_stage()
''')


@pytest.mark.server
@pytest.mark.slow
def test_the_scheduler_alerts_a_run_past_its_deadline(receiver, airflow_env, tmp_path):
    """The deadline alert as the scheduler and triggerer run it (dag.test() cannot: foreground_test)."""
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "deadline_probe.py").write_text(SLOW_DAG)
    port = free_port()
    env = scheduler_env(airflow_env, dags, port,
                        AIRFLOW_CONN_CURATE_ALERTS=json.dumps({"conn_type": "http", "host": receiver.url}))
    logs = tmp_path / "logs"
    logs.mkdir()
    af = Airflow(env, logs)
    try:
        af.start_scheduler(port, "deadline_probe")
        run_id = f"manual__deadline_{port}"
        subprocess.run([af.airflow, "dags", "trigger", "deadline_probe", "--run-id", run_id], env=env, check=True,
                       capture_output=True, timeout=120)
        af.wait_for("the deadline alert", lambda: receiver.bodies, timeout_s=150)
        facts = receiver.bodies[0]["curate"]
        assert (facts["event"], facts["dag_id"], facts["run_id"], facts["deadline"]) == \
            ("deadline_missed", "deadline_probe", run_id, "0:00:05")
        assert facts["state"] == "running"
    finally:
        af.stop_all()
