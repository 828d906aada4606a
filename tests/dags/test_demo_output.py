"""`curate demo` prints what a new user reads: one line per stage with counts and seconds, then the
report; Airflow's task logs go to a log file whose path it prints, and nothing of them to the terminal."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.ingest.corpus import build_bad_corpus

RUN = r"""
import json, sys
from pathlib import Path
from curate import demo
state = demo.run_quietly("curate_source", json.loads(sys.argv[1]), Path(sys.argv[2]),
                         report=lambda: demo._print_report({}))
print("STATE " + state)
"""

STAGES = ("ingest", "deid", "classify", "quality", "group_studies", "register", "summary")


def test_demo_prints_a_line_per_stage_and_logs_airflow_to_a_file(tmp_path, airflow_env):
    build_bad_corpus(tmp_path / "src")
    env = dict(airflow_env)
    env["CURATE_HOME"] = str(tmp_path / "curate")
    conf = {"source": str(tmp_path / "src"), "site": "demotest", "exclude": ["notes.txt"]}
    log_file = tmp_path / "demo" / "airflow.log"
    res = subprocess.run([sys.executable, "-c", RUN, json.dumps(conf), str(log_file)], env=env,
                         capture_output=True, text=True, timeout=600)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert "STATE success" in out, out[-4000:]
    lines = out.splitlines()
    progress = [l for l in lines if re.match(r"  \[\d/7\] ", l)]
    assert [l.split()[1] for l in progress] == list(STAGES), out
    assert re.search(r"\[2/7\] deid +5 series: 5 ok; 0 instances quarantined \(\d+\.\d s\)", out), out
    assert re.search(r"\[4/7\] quality +5 series: ", out), out
    # Airflow's task logs (the operators' lines, the task runner's) are in the file, not on the terminal.
    log = log_file.read_text()
    assert "curation summary:" in log and "5 instances (5 new)" in log and "[truncated]" in log
    for marker in ("curation summary:", "deid of series", "[DAG TEST]", "[info", "INFO"):
        assert marker not in out, marker
    # The quality table: counts per kind, and only the series not approved, each with its reason.
    assert re.search(r"kind +series +approve +review +exclude", out), out
    assert re.search(r"  all +5 +\d+ +\d+ +\d+", out), out
    assert not [l for l in lines if l.startswith("  approve ")], out
    # Budget: a fixed number of lines plus one per quarantined file and per series not approved
    # (what a curator acts on); nothing grows with the number of tasks or approved series.
    listed = [l for l in lines if re.match(r"  (review|exclude) |  ingest  sha256:", l)]
    assert len(lines) - len(listed) < 35, out


def test_quality_table_counts_per_kind_and_lists_only_the_not_approved():
    from curate.demo import format_quality_by_kind

    def row(i: int, kind: str, decision: str, reason: str = "") -> dict:
        return {"series": f"series #{i}", "kind": kind, "decision": {"decision": decision, "reason": reason,
                                                                     "p_degraded": 0.5}}

    rows = [row(i, "T1W", "approve") for i in range(30)] + [row(i, "CT", "approve") for i in range(30, 50)]
    rows += [row(50, "T1W", "exclude", "snr_dietrich 2.1 < limit 3.0"), row(51, "CT", "review", "ct_gnl 31 > 25")]
    lines = format_quality_by_kind(rows).splitlines()
    assert len(lines) == 1 + 2 + 1 + 1 + 2  # header, two kinds, all, "not approved:", two series
    assert lines[1].split() == ["CT", "21", "20", "1", "0"] and lines[2].split() == ["T1W", "31", "30", "0", "1"]
    assert lines[3].split() == ["all", "52", "50", "1", "1"]
    assert "series #51" in lines[5] and "ct_gnl 31 > 25" in lines[5] and "snr_dietrich" in lines[6]



def test_classification_is_one_line_when_all_correct_and_a_matrix_when_not():
    """The demo prints a diagonal confusion matrix as one line of counts per kind (17 lines saved of
    its < 150-line budget) but the whole matrix as soon as one series is misnamed."""
    from curation.classify.report import format_confusion

    right = [("T1W", "T1W")] * 4 + [("CT", "CT")] * 7 + [("US", "US")] * 2
    assert format_confusion(right, matrix_when_all_correct=False) == \
        "series kinds: 13/13 correct (100.0%): T1W 4, CT 7, US 2"
    assert len(format_confusion(right).splitlines()) == 2 + 3  # the matrix stays the default
    wrong = right + [("T2W", "PDW")]
    lines = format_confusion(wrong, matrix_when_all_correct=False).splitlines()
    assert lines[0] == "series kinds: 13/14 correct (92.9%)" and lines[1].startswith("truth/pred")
    assert len(lines) == 2 + 4 and any(l.startswith("T2W") for l in lines)

def test_progress_line_counts_without_identifiers():
    from curate.demo import describe_stage

    results = {i: {"series_id": i, "status": "ok", "quarantined": i % 2, "reused": i == 0} for i in range(4)}
    line = describe_stage("deid", {i: "success" for i in range(4)} | {4: "failed"}, results, 12.34, 2, 7)
    assert line == ("  [2/7] deid           5 series: 4 ok; 2 instances quarantined; 1 results reused "
                    "[tasks 1 failed] (12.3 s)")


LOAD = r"""
import sys
from curate import demo
try:
    demo._load_dag(sys.argv[1])
except RuntimeError as exc:
    print("ERROR " + str(exc))
else:
    print("LOADED")
"""


def test_demo_finds_the_dag_in_the_configured_dags_folder_and_names_import_errors(tmp_path, airflow_env):
    """The demo asks Airflow (a DagBag over AIRFLOW__CORE__DAGS_FOLDER) for the DAG: another folder
    without it is an error that names the file that failed to import, and the repository's folder has it."""
    (tmp_path / "broken_dag.py").write_text("from airflow.sdk import DAG\nraise ValueError('planted import error')\n")

    def load(folder: Path) -> str:
        env = dict(airflow_env, AIRFLOW__CORE__DAGS_FOLDER=str(folder))
        res = subprocess.run([sys.executable, "-c", LOAD, "curate_source"], env=env,
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-4000:]
        return res.stdout.strip().splitlines()[-1]

    error = load(tmp_path)
    assert error.startswith("ERROR DAG 'curate_source' not found in " + str(tmp_path)), error
    assert "broken_dag.py" in error and "planted import error" in error, error
    assert load(Path(airflow_env["AIRFLOW__CORE__DAGS_FOLDER"])) == "LOADED"
