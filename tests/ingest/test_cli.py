"""`curate ingest` prints progress, a summary table and quarantine reasons without paths by default."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.ingest.corpus import build_bad_corpus


def _curate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "curate.main", *args], capture_output=True, text=True,
                          timeout=300)


def test_summary_table_and_json(tmp_path):
    build_bad_corpus(tmp_path / "src")
    common = ["--db", f"sqlite:///{tmp_path / 'c.sqlite'}", "--store", str(tmp_path / "store")]
    res = _curate("ingest", str(tmp_path / "src"), *common)
    assert res.returncode == 0, res.stderr
    assert "Ingest summary" in res.stdout and "quarantined files" in res.stdout
    assert "[truncated]" in res.stdout and "[conflicting_duplicate]" in res.stdout
    assert "later/conflict.dcm" not in res.stdout  # named by hash + file name unless --show-paths
    assert "ingest: " in res.stderr  # progress line
    res = _curate("ingest", str(tmp_path / "src"), *common, "--json", "--show-paths")
    out = json.loads(res.stdout)
    assert out["instances_new"] == 0 and out["instances_known"] == 5 and out["bytes_copied"] == 0
    assert {q["file"] for q in out["quarantine"]} >= {"later/conflict.dcm", "bad/truncated.dcm"}


def test_missing_source_exits_2_with_a_clear_message(tmp_path):
    res = _curate("ingest", str(tmp_path / "nope"), "--db", f"sqlite:///{tmp_path / 'c.sqlite'}",
                  "--store", str(tmp_path / "store"))
    assert res.returncode == 2
    assert "does not exist" in res.stderr and "Traceback" not in res.stderr


def test_audit_verify(tmp_path):
    db = f"sqlite:///{tmp_path / 'c.sqlite'}"
    build_bad_corpus(tmp_path / "src")
    _curate("ingest", str(tmp_path / "src"), "--db", db, "--store", str(tmp_path / "store"))
    res = _curate("audit", "verify", "--db", db)
    assert res.returncode == 0 and "intact" in res.stdout
