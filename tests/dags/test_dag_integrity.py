"""Every DAG imports cleanly, parses fast, does no heavy work at parse time, and has retries,
timeouts, described Params, a failure alert on every task and a run deadline."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((REPO / "dags").glob("*.py"))
HEAVY = ["pydicom", "SimpleITK", "torch", "cv2", "dipy", "pytesseract", "curation.ingest", "curation.catalog",
         "deid"]

PROBE = r"""
import importlib.util, json, sys, time
before = set(sys.modules)
t = time.perf_counter()
import airflow.sdk  # the framework itself is not the DAG's cost
t_fw = time.perf_counter()
spec = importlib.util.spec_from_file_location("probe_dag", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
t_end = time.perf_counter()
from airflow.sdk import DAG
dags = [v for v in vars(mod).values() if isinstance(v, DAG)]
out = {"parse_s": t_end - t_fw, "modules": sorted(set(sys.modules) - before), "dags": []}
for d in dags:
    out["dags"].append({
        "dag_id": d.dag_id,
        "params": {k: (p.description or "") for k, p in d.params.items()},
        "deadlines": [str(a.interval) for a in (d.deadline or [])],
        "tasks": [{"task_id": t.task_id, "retries": t.retries,
                   "timeout": t.execution_timeout.total_seconds() if t.execution_timeout else None,
                   "on_failure": [type(c).__name__ for c in (t.on_failure_callback or [])]}
                  for t in d.tasks],
    })
print("PROBE" + json.dumps(out))
"""


def _probe(path: Path, airflow_env: dict[str, str]) -> dict:
    res = subprocess.run([sys.executable, "-c", PROBE, str(path)], env=airflow_env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    line = next(l for l in res.stdout.splitlines() if l.startswith("PROBE"))
    return json.loads(line[5:])


def test_there_are_dags():
    assert any(p.name == "curate_source.py" for p in DAG_FILES)


@pytest.mark.parametrize("path", DAG_FILES, ids=[p.stem for p in DAG_FILES])
def test_dag_file_parses_fast_without_heavy_imports(path, airflow_env):
    out = _probe(path, airflow_env)
    assert out["dags"], f"{path.name} defines no DAG"
    assert out["parse_s"] < 2.0, f"{path.name} took {out['parse_s']:.2f} s to parse"
    heavy = [m for m in out["modules"] if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert not heavy, f"{path.name} imports heavy modules at parse time: {heavy[:10]}"
    for dag in out["dags"]:
        for name, description in dag["params"].items():
            assert description.strip(), f"{dag['dag_id']}: Param {name} has no description"
        for task in dag["tasks"]:
            assert task["retries"] >= 1, f"{dag['dag_id']}.{task['task_id']} has no retries"
            assert task["timeout"], f"{dag['dag_id']}.{task['task_id']} has no execution_timeout"
            assert "WebhookNotifier" in task["on_failure"], f"{dag['dag_id']}.{task['task_id']} sends no alert"
        assert dag["deadlines"], f"{dag['dag_id']} has no run deadline (operators.alerts.run_deadline)"


def test_dagbag_has_no_import_errors(airflow_env):
    code = ("from airflow.dag_processing.dagbag import DagBag\n"
            "import json\n"
            f"b = DagBag(dag_folder={str(REPO / 'dags')!r})\n"
            "print('BAG' + json.dumps({'errors': {k: str(v)[:500] for k, v in b.import_errors.items()},"
            " 'ids': sorted(b.dag_ids)}))")
    res = subprocess.run([sys.executable, "-c", code], env=airflow_env, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(next(l for l in res.stdout.splitlines() if l.startswith("BAG"))[3:])
    assert out["errors"] == {}
    assert "curate_source" in out["ids"]


def test_site_default_comes_from_the_settings(airflow_env):
    """CURATE_SITE is the DAG's default site as it is the CLI's (it was the literal "default")."""
    code = ("import importlib.util, sys\n"
            "spec = importlib.util.spec_from_file_location('d', sys.argv[1])\n"
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
            "print('SITE=' + str(m.dag.params['site']))")
    env = dict(airflow_env, CURATE_SITE="north-wing")
    res = subprocess.run([sys.executable, "-c", code, str(REPO / "dags" / "curate_source.py")], env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "SITE=north-wing" in res.stdout


@pytest.mark.parametrize("value,expected", [(None, 2), ("6", 6)])
def test_heavy_stages_per_run_come_from_the_settings(airflow_env, value, expected):
    """deid, quality and register run at most CURATE_STAGE_TASKS_PER_RUN tasks of one run at once (2, sized
    for a 2-core machine, unless a fleet's operator raises it); classification is not capped."""
    code = ("import importlib.util, json, sys\n"
            "spec = importlib.util.spec_from_file_location('d', sys.argv[1])\n"
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
            "print('CAPS=' + json.dumps({t.task_id: t.max_active_tis_per_dagrun for t in m.dag.tasks}))")
    env = {k: v for k, v in airflow_env.items() if k != "CURATE_STAGE_TASKS_PER_RUN"}
    if value is not None:
        env["CURATE_STAGE_TASKS_PER_RUN"] = value
    res = subprocess.run([sys.executable, "-c", code, str(REPO / "dags" / "curate_source.py")], env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    caps = json.loads(res.stdout.split("CAPS=", 1)[1])
    assert {t: caps[t] for t in ("deid", "quality", "register")} == dict.fromkeys(("deid", "quality", "register"),
                                                                                 expected)
    assert caps["classify"] is None
