"""A whole site through `curate_source` under Airflow's real scheduler, as production runs it:
API server, dag-processor and scheduler as subprocesses of a fresh AIRFLOW_HOME (LocalExecutor), or
CeleryExecutor with one or two `airflow celery worker`s on Redis and PostgreSQL metadata. Reports the
wall time of every stage (first task start to last task end), the task count and the summed task time,
instances/s from ingest to the end of the run, the peak memory of the processes that run tasks, and
the machine's load average (this benchmark shares its cores with whatever else runs).

    .venv/bin/curate synth /tmp/site10k --patients 31 --no-phi-locations          # once, ~3 min
    .venv/bin/python benchmarks/end_to_end.py --site /tmp/site10k --out e2e.json   # LocalExecutor
    .venv/bin/python benchmarks/end_to_end.py --site /tmp/site10k --executor celery --workers 2

After the run the scale suite (tests/scale, `pytest -m scale`) checks what it left: every file of the
site one instance or in quarantine as its ground truth says, no duplicate row, every series through every
stage, series kinds equal to the truth, the ledger intact, and, with `--reference OUT.json` (an earlier
run's output, e.g. LocalExecutor's), catalog rows, decisions, ledger content and every stored object equal
to that run's. Its verdict is in the output (`checks`); a failed check fails the benchmark.

Everything (Airflow home, catalog, store) goes to a fresh folder under --workdir, removed afterwards
unless --keep. Celery needs PostgreSQL on 127.0.0.1:5432 (fresh databases for Airflow's metadata and, with
`--catalog postgres`, the default under Celery, the catalog; created and dropped) and Redis on
127.0.0.1:6379 (database --redis-db).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DAG_ID = "curate_source"


class MemorySampler:
    """Samples, once a second, the resident memory of the processes that run tasks (every descendant
    of the given roots): the peak of their sum and of the largest single one; and the CPU time of the
    roots' children (executor workers: a finished task's CPU time is added to the worker that waited
    for it), which unlike wall time does not depend on what else the machine runs."""

    def __init__(self, roots: callable) -> None:
        self.roots = roots
        self.peak_total = 0
        self.peak_process = 0
        self.loads: list[float] = []
        self.cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.wait(1.0):
            total = 0
            for pid in self.roots():
                try:
                    procs = psutil.Process(pid).children(recursive=True)
                    for worker in psutil.Process(pid).children():
                        t = worker.cpu_times()
                        self.cpu[worker.pid] = t.user + t.system + t.children_user + t.children_system
                except psutil.Error:
                    continue
                for p in procs:
                    try:
                        rss = p.memory_info().rss
                    except psutil.Error:
                        continue
                    total += rss
                    self.peak_process = max(self.peak_process, rss)
            self.peak_total = max(self.peak_total, total)
            self.loads.append(os.getloadavg()[0])

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(str(value).replace(" ", "T")).timestamp()


def stage_figures(airflow: Any, run_id: str) -> dict[str, dict[str, Any]]:
    """Per task id: task instances, their states, wall time (first start to last end), summed duration."""
    rows = airflow.query("select task_id, state, start_date, end_date, duration from task_instance "
                         "where dag_id = ? and run_id = ?", DAG_ID, run_id)
    stages: dict[str, dict[str, Any]] = {}
    for task_id, state, start, end, duration in rows:
        s = stages.setdefault(task_id, {"tasks": 0, "states": {}, "start": None, "end": None, "task_seconds": 0.0})
        s["tasks"] += 1
        s["states"][str(state)] = s["states"].get(str(state), 0) + 1
        t0, t1 = _seconds(start), _seconds(end)
        if t0 is not None:
            s["start"] = t0 if s["start"] is None else min(s["start"], t0)
        if t1 is not None:
            s["end"] = t1 if s["end"] is None else max(s["end"], t1)
        s["task_seconds"] += float(duration or 0.0)
    for s in stages.values():
        s["wall_seconds"] = round(s["end"] - s["start"], 1) if s["start"] and s["end"] else None
        s["task_seconds"] = round(s["task_seconds"], 1)
    return dict(sorted(stages.items(), key=lambda kv: kv[1]["start"] or 0))


def catalog_counts(curate_home: Path, db_url: str | None) -> dict[str, Any]:
    """Instances, series and stage outcomes in the run's catalog (the correctness side of the figures), the
    rows the run wrote per table (the catalog database's load), and the objects and bytes per zone of the
    store (the object store's load)."""
    from sqlalchemy import func, select

    from curation.catalog import Catalog, Instance, LineageEvent, QuarantineRecord, Series, StageRecord

    catalog = Catalog(db_url or f"sqlite:///{curate_home / 'catalog.sqlite'}")
    with catalog.session() as s:
        outcomes: dict[str, dict[str, int]] = {}
        for stage, status, n in s.execute(select(StageRecord.stage, StageRecord.status, func.count())
                                          .group_by(StageRecord.stage, StageRecord.status)):
            outcomes.setdefault(stage, {})[str(status)] = n
        counts = {"instances": s.scalar(select(func.count()).select_from(Instance)),
                  "series": s.scalar(select(func.count()).select_from(Series)),
                  "quarantined": s.scalar(select(func.count()).select_from(QuarantineRecord)),
                  "stage_records": outcomes,
                  "lineage_events": s.scalar(select(func.count()).select_from(LineageEvent))}
    zones = {}
    for zone in sorted(p.name for p in (curate_home / "store").iterdir() if p.is_dir()):
        files = [f for f in (curate_home / "store" / zone).rglob("*") if f.is_file()]
        zones[zone] = {"objects": len(files), "bytes": sum(f.stat().st_size for f in files)}
    return {**counts, "store": zones}


def _fresh_postgres(name: str) -> str:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}"')
        db.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def _drop_postgres(name: str) -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(args: argparse.Namespace) -> dict[str, Any]:
    from tests.dags import components

    work = Path(tempfile.mkdtemp(prefix="bench-e2e-", dir=args.workdir))
    home, curate_home, logs = work / "airflow", work / "curate", work / "logs"
    for d in (home, curate_home, logs):
        d.mkdir(parents=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CURATE_"))}
    base.update({
        "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False", "AIRFLOW__API_AUTH__JWT_SECRET": "b" * 64,
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__PARALLELISM": str(args.parallelism), "CURATE_HOME": str(curate_home),
        # one pseudonym secret for every run of the benchmark (synthetic patients only): two runs of a site
        # then de-identify to the same bytes, which the scale suite's --reference comparison needs
        "CURATE_PSEUDONYM_SECRET": "e2e-benchmark-" + "s" * 50,
        "OMP_THREAD_LIMIT": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    })
    pg_name = f"bench_e2e_{os.getpid()}"
    if args.catalog == "postgres":
        base["CURATE_DB_URL"] = _fresh_postgres(f"{pg_name}_catalog")
    if args.executor == "celery":
        if not hasattr(components, "celery_env"):
            raise SystemExit("tests/dags/components.py has no Celery support in this checkout")
        env = components.celery_env(base, REPO / "dags", args.port, metadata_url=_fresh_postgres(pg_name),
                                    broker_url=f"redis://127.0.0.1:6379/{args.redis_db}")
    else:
        env = components.scheduler_env(base, REPO / "dags", args.port)
    airflow = components.Airflow(env, logs)
    figures: dict[str, Any] = {"executor": args.executor, "workers": args.workers if args.executor == "celery" else None,
                               "parallelism": args.parallelism, "site": str(args.site),
                               "load_before": [round(x, 2) for x in os.getloadavg()]}
    try:
        airflow.migrate()
        airflow.start_scheduler(args.port, DAG_ID, triggerer=False)
        if args.executor == "celery":
            for i in range(args.workers):
                airflow.start_celery_worker(f"w{i + 1}", concurrency=args.concurrency)
            roots = lambda: [p.pid for n, p in airflow.procs.items() if n.startswith("w")]  # noqa: E731
        else:
            roots = lambda: [airflow.procs["scheduler"].pid]  # noqa: E731
        conf = {"source": str(args.site), "site": "bench", "exclude": ["ground_truth.json"]}
        started = time.time()
        airflow.run("dags", "trigger", DAG_ID, "--conf", json.dumps(conf))
        run_id = airflow.wait_for("the run to be created", lambda: airflow.query(
            "select run_id from dag_run where dag_id = ?", DAG_ID), timeout_s=120)[0][0]
        with MemorySampler(roots) as memory:
            state = airflow.wait_for("the run to finish", lambda: next(iter(airflow.query(
                "select state from dag_run where run_id = ? and state in ('success', 'failed')", run_id)), None),
                timeout_s=args.timeout)[0]
        ended = time.time()
        stages = stage_figures(airflow, run_id)
        counts = catalog_counts(curate_home, env.get("CURATE_DB_URL"))
        first = min(s["start"] for s in stages.values() if s["start"])
        last = max(s["end"] for s in stages.values() if s["end"])
        figures.update({
            "state": state, "run_seconds": round(last - first, 1), "trigger_to_end_seconds": round(ended - started, 1),
            "instances": counts["instances"], "instances_per_second": round(counts["instances"] / (last - first), 2),
            "stages": {k: {kk: vv for kk, vv in v.items() if kk not in ("start", "end")} for k, v in stages.items()},
            "task_cpu_seconds": round(sum(memory.cpu.values()), 1),
            "peak_rss_workers_mb": round(memory.peak_total / 2**20), "peak_rss_one_task_mb": round(memory.peak_process / 2**20),
            "load_during": {"mean": round(statistics.fmean(memory.loads), 2) if memory.loads else None,
                            "max": round(max(memory.loads), 2) if memory.loads else None},
            "load_after": [round(x, 2) for x in os.getloadavg()], "catalog": counts,
            "catalog_database": args.catalog,
        })
        airflow.stop_all()
        if args.check:
            catalog_url = env.get("CURATE_DB_URL") or f"sqlite:///{curate_home / 'catalog.sqlite'}"
            figures.update(check_run(args, work, state, catalog_url, curate_home / "store"))
    finally:
        airflow.stop_all()
        databases = [pg_name] * (args.executor == "celery") + [f"{pg_name}_catalog"] * (args.catalog == "postgres")
        for name in databases:
            try:
                _drop_postgres(name)
            except Exception as exc:  # noqa: BLE001 - cleanup must not hide the figures
                print(f"bench: could not drop {name}: {exc}", file=sys.stderr)
        if args.keep:
            print(f"bench: kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return figures


def check_run(args: argparse.Namespace, work: Path, state: str, db_url: str, store: Path) -> dict[str, Any]:
    """Run the scale suite on what the run left; its verdict and the run's digest (catalog tables and
    store zones, for a later run's --reference)."""
    import subprocess

    described = work / "scale_run.json"
    digest, facts = work / "digest.json", work / "facts.json"
    described.write_text(json.dumps({"site": str(args.site), "state": state, "db_url": db_url, "store": str(store),
                                     "digest_out": str(digest), "facts_out": str(facts)}))
    cmd = [sys.executable, "-m", "pytest", "-m", "scale", str(REPO / "tests" / "scale"), "-q", "-p", "no:cacheprovider",
           f"--scale-run={described}", f"--junitxml={work / 'scale.xml'}"]
    if args.reference:
        cmd.append(f"--scale-reference={args.reference.resolve()}")
    started = time.time()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    tail = done.stdout.strip().splitlines()[-1:] or [""]
    if done.returncode:  # the failures, with the first differing rows of a --reference comparison
        print(done.stdout[-12000:], done.stderr[-2000:], file=sys.stderr)
    if args.out and facts.exists():  # what a later run's --reference comparison names differences from
        shutil.copyfile(facts, args.out.with_suffix(".facts.json"))
    return {"checks": {"exit": done.returncode, "summary": tail[0], "seconds": round(time.time() - started, 1),
                       "reference": str(args.reference) if args.reference else None},
            "digest": json.loads(digest.read_text()) if digest.exists() else None}


def print_table(f: dict[str, Any]) -> None:
    print(f"{f['executor']}{'' if f['workers'] is None else ' x' + str(f['workers'])}: {f['state']}, "
          f"{f['instances']} instances in {f['run_seconds']} s ({f['instances_per_second']} instances/s), "
          f"{f['task_cpu_seconds']} CPU s in task processes; "
          f"peak RSS of task processes {f['peak_rss_workers_mb']} MB (largest one {f['peak_rss_one_task_mb']} MB); "
          f"load {f['load_before'][0]} before, {f['load_during']['mean']} mean during")
    print(f"{'stage':<14} {'tasks':>6} {'wall s':>8} {'task s':>8}  states")
    for name, s in f["stages"].items():
        print(f"{name:<14} {s['tasks']:>6} {s['wall_seconds'] or 0:>8} {s['task_seconds']:>8}  {s['states']}")
    if "checks" in f:
        print(f"scale suite: {f['checks']['summary']} (exit {f['checks']['exit']})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--site", type=Path, required=True, help="a site made by `curate synth` (read only)")
    ap.add_argument("--executor", choices=("local", "celery"), default="local")
    ap.add_argument("--workers", type=int, default=1, help="Celery workers (each --concurrency slots)")
    ap.add_argument("--concurrency", type=int, default=2, help="task slots per Celery worker")
    ap.add_argument("--parallelism", type=int, default=4, help="AIRFLOW__CORE__PARALLELISM (embedded default: 4)")
    ap.add_argument("--port", type=int, default=28931, help="the API server's loopback port")
    ap.add_argument("--redis-db", type=int, default=11)
    ap.add_argument("--timeout", type=float, default=3 * 3600, help="give up after this many seconds")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the Airflow home, catalog and store")
    ap.add_argument("--out", type=Path, default=None, help="write the figures as JSON here too")
    ap.add_argument("--catalog", choices=("sqlite", "postgres"), default=None,
                    help="the catalog's database (default: postgres under Celery, as in production; sqlite else)")
    ap.add_argument("--reference", type=Path, default=None,
                    help="an earlier run's --out JSON: the catalog and store must equal that run's")
    ap.add_argument("--no-check", dest="check", action="store_false", help="skip the scale suite after the run")
    args = ap.parse_args()
    args.catalog = args.catalog or ("postgres" if args.executor == "celery" else "sqlite")
    args.site = args.site.resolve()
    figures = run(args)
    print_table(figures)
    if args.out:
        args.out.write_text(json.dumps(figures, indent=1))
    return 0 if figures.get("state") == "success" and figures.get("checks", {}).get("exit", 0) == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
