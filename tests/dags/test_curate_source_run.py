"""curate_source runs end to end under Airflow's dag.test(): ingest reports counts and reasons
in its task log without PHI, and the catalog holds what the source held."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.ingest.corpus import build_bad_corpus

REPO = Path(__file__).resolve().parents[2]

RUN = r"""
import time
_t0 = time.time()
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("d", sys.argv[1])
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
from operators.alerts import foreground_test
run = foreground_test(m.dag, run_conf=json.loads(sys.argv[2]))
print("STATE " + str(run.state))
from airflow.models import TaskInstance
from airflow.utils.session import create_session
with create_session() as s:
    for ti in s.query(TaskInstance).filter(TaskInstance.run_id == run.run_id):
        print("TI", ti.task_id, ti.map_index, ti.state, ti.duration)
"""


def test_curate_source_dag_ingests_and_quarantines(tmp_path, airflow_env):
    expected = build_bad_corpus(tmp_path / "src")
    env = dict(airflow_env)
    env["CURATE_HOME"] = str(tmp_path / "curate")
    conf = {"source": str(tmp_path / "src"), "site": "dagtest", "exclude": ["notes.txt"]}
    res = subprocess.run([sys.executable, "-c", RUN, str(REPO / "dags" / "curate_source.py"), json.dumps(conf)],
                         env=env, capture_output=True, text=True, timeout=600)
    log = res.stdout + res.stderr
    print("\n".join(l for l in log.splitlines() if l.startswith("TI ")))
    assert res.returncode == 0, log[-4000:]
    assert "STATE success" in log, log[-4000:]
    assert "5 instances (5 new)" in log
    assert "curation summary:" in log and "'series': 5" in log
    for task in ("deid", "classify", "quality"):
        assert sum(1 for l in log.splitlines() if l.startswith(f"TI {task} ") and "success" in l) == 5
    for code in ("truncated", "missing_attribute", "conflicting_duplicate", "corrupt"):
        assert f"[{code}]" in log
    # Paths can carry patient names in real exports: the task log names content hashes instead.
    assert "no_uid.dcm" not in log and "conflict.dcm" not in log

    from sqlalchemy import func, select

    from curation.catalog import Catalog, Instance, QuarantineRecord

    catalog = Catalog(f"sqlite:///{tmp_path / 'curate' / 'catalog.sqlite'}")
    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(Instance)) == 5
        codes = sorted(s.scalars(select(QuarantineRecord.reason_code)))
    assert codes == sorted(c for f, c in expected.items() if c not in ("ok", "duplicate") and f != "bad/notes.txt")
