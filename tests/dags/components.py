"""Airflow's own components (API server, dag-processor, scheduler, triggerer, Celery workers) as
subprocesses of one test AIRFLOW_HOME on loopback, for the tests that need the real scheduler rather
than dag.test(). The metadata DB is the home's SQLite file, or PostgreSQL when the environment names
one (AIRFLOW__DATABASE__SQL_ALCHEMY_CONN), as in production."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def scheduler_env(airflow_env: dict[str, str], dags: Path, port: int, **extra: str) -> dict[str, str]:
    """The tests' Airflow environment for a LocalExecutor scheduler on `dags`, its API server on `port`
    (workers reach the execution API there), DAGs unpaused at creation, one-second heartbeats."""
    return dict(airflow_env, AIRFLOW__CORE__DAGS_FOLDER=str(dags), AIRFLOW__CORE__EXECUTOR="LocalExecutor",
                AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False", AIRFLOW__API__PORT=str(port),
                AIRFLOW__API__HOST="127.0.0.1",
                AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
                AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="1", AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC="1", **extra)


def celery_env(airflow_env: dict[str, str], dags: Path, port: int, *, metadata_url: str, broker_url: str,
               **extra: str) -> dict[str, str]:
    """`scheduler_env` under CeleryExecutor, as docker-compose.yaml runs it: the metadata DB at
    `metadata_url` (PostgreSQL), the broker at `broker_url` (Redis), Celery's results in the metadata DB,
    the plugins folder of the checkout. `extra` wins over everything (a test's timeouts).
    Airflow derives its async metadata URL as postgresql+asyncpg (a driver not installed): the async URL
    is named explicitly on psycopg 3, the driver of the sync one."""
    env = scheduler_env(airflow_env, dags, port)
    env.update(AIRFLOW__CORE__EXECUTOR="CeleryExecutor", AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=metadata_url,
               AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC=metadata_url.replace("+psycopg:", "+psycopg_async:"),
               AIRFLOW__CELERY__BROKER_URL=broker_url, AIRFLOW__CELERY__RESULT_BACKEND=f"db+{metadata_url}",
               AIRFLOW__CORE__PLUGINS_FOLDER=str(REPO / "plugins"), **extra)
    return env


class Airflow:
    """Airflow's components as subprocesses of one AIRFLOW_HOME; each can be stopped and started again."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.procs: dict[str, subprocess.Popen] = {}
        self.airflow = str(Path(sys.executable).with_name("airflow"))
        self.starts = 0

    def run(self, *args: str, timeout_s: float = 300.0) -> str:
        """One `airflow ...` command to its end (db migrate, pools import, dags trigger); its output."""
        done = subprocess.run([self.airflow, *args], env=self.env, capture_output=True, text=True, timeout=timeout_s)
        assert done.returncode == 0, f"airflow {' '.join(args)}: exit {done.returncode}\n{done.stdout[-2000:]}" \
                                     f"{done.stderr[-3000:]}"
        return done.stdout

    def migrate(self) -> None:
        """The metadata DB at the newest revision and the platform's pools, as `make install` and
        docker-compose.yaml's airflow-init do."""
        self.run("db", "migrate")
        self.run("pools", "import", str(REPO / "include" / "airflow" / "pools.json"))

    def start(self, component: str, *args: str, name: str | None = None) -> None:
        """`airflow component args...` in its own session (process group); `name` tells apart two of a kind."""
        self.starts += 1
        name = name or component
        out = open(self.logs / f"{name}-{self.starts}.log", "wb")
        self.procs[name] = subprocess.Popen([self.airflow, component, *args], env=self.env, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def start_celery_worker(self, name: str, concurrency: int = 1) -> None:
        """`airflow celery worker` with its own Celery hostname and pid file (two share this machine and
        AIRFLOW_HOME), `concurrency` task slots and no log server (it would bind 8793 on every interface)."""
        self.start("celery", "worker", "--celery-hostname", f"{name}@%h", "--concurrency", str(concurrency),
                   "--pid", str(self.logs / f"{name}.pid"), "--skip-serve-logs", "--without-mingle",
                   "--without-gossip", name=name)

    def kill(self, name: str) -> None:
        """kill -9 a component the way a host or container dies: its process group and the groups of all
        its descendants (Airflow's supervisor puts each task process in a group of its own)."""
        import psutil

        proc = self.procs.pop(name)
        groups = {proc.pid}
        if proc.poll() is None:
            for child in psutil.Process(proc.pid).children(recursive=True):
                try:
                    groups.add(os.getpgid(child.pid))
                except ProcessLookupError:
                    pass
        for group in groups:
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()

    def pids(self, name: str) -> set[int]:
        """The process ids of a component and all its descendants (who runs which task)."""
        import psutil

        root = psutil.Process(self.procs[name].pid)
        return {root.pid, *(c.pid for c in root.children(recursive=True))}

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
        """`sql` with `?` placeholders on the metadata DB (autocommitted)."""
        url = self.env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "")
        if url.startswith("postgresql"):
            import psycopg

            with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as db:
                cur = db.execute(sql.replace("?", "%s"), args)
                return cur.fetchall() if cur.description else []
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
        self.query("update dag set is_paused = ? where dag_id = ?", False, dag_id)
