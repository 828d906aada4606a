"""Airflow's own components (API server, dag-processor, scheduler, triggerer) as subprocesses of one
test AIRFLOW_HOME on loopback, for the tests that need the real scheduler rather than dag.test()."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path


def scheduler_env(airflow_env: dict[str, str], dags: Path, port: int, **extra: str) -> dict[str, str]:
    """The tests' Airflow environment for a LocalExecutor scheduler on `dags`, its API server on `port`
    (workers reach the execution API there), DAGs unpaused at creation, one-second heartbeats."""
    return dict(airflow_env, AIRFLOW__CORE__DAGS_FOLDER=str(dags), AIRFLOW__CORE__EXECUTOR="LocalExecutor",
                AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False", AIRFLOW__API__PORT=str(port),
                AIRFLOW__API__HOST="127.0.0.1",
                AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
                AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="1", AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC="1", **extra)


class Airflow:
    """Airflow's components as subprocesses of one AIRFLOW_HOME; each can be stopped and started again."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.procs: dict[str, subprocess.Popen] = {}
        self.airflow = str(Path(sys.executable).with_name("airflow"))
        self.starts = 0

    def start(self, component: str, *args: str) -> None:
        self.starts += 1
        out = open(self.logs / f"{component}-{self.starts}.log", "wb")
        self.procs[component] = subprocess.Popen([self.airflow, component, *args], env=self.env, stdout=out,
                                                 stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self, component: str) -> None:
        proc = self.procs.pop(component)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def stop_all(self) -> None:
        for component in list(self.procs):
            self.stop(component)

    def query(self, sql: str, *args) -> list[tuple]:
        with sqlite3.connect(Path(self.env["AIRFLOW_HOME"]) / "airflow.db", timeout=30) as db:
            return db.execute(sql, args).fetchall()

    def wait_for(self, what: str, check, timeout_s: float = 120.0):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = check()
            if found:
                return found
            dead = [c for c, p in self.procs.items() if p.poll() is not None]
            assert not dead, f"{dead} exited while waiting for {what}"
            time.sleep(0.5)
        logs = "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted(self.logs.glob("*.log")))
        raise AssertionError(f"timed out waiting for {what}\n{logs}")

    def start_scheduler(self, port: int, dag_id: str, *, triggerer: bool = True, timeout_s: float = 180.0) -> None:
        """API server, dag-processor, scheduler (and triggerer); returns once `dag_id` is parsed and unpaused
        (the session's Airflow home may know it, paused, from an earlier dag.test() run)."""
        self.start("api-server", "--host", "127.0.0.1", "--port", str(port))
        self.start("dag-processor")
        self.start("scheduler", "--skip-serve-logs")
        if triggerer:
            self.start("triggerer", "--skip-serve-logs")
        self.wait_for(f"{dag_id} to be parsed", lambda: self.query(
            "select 1 from serialized_dag where dag_id = ?", dag_id), timeout_s=timeout_s)
        self.query("update dag set is_paused = 0 where dag_id = ?", dag_id)
