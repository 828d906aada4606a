"""`curate deid` from the command line ends without the interpreter's teardown once the run is
complete (issue 11: ~0.07-0.1 s CPU of a run's parent), and loses nothing by it: the summary
reaches a pipe, the report, the outputs and the sealed map are all written."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file

from deid.vault import SEALED_MAP_NAME

ROOT = Path(__file__).resolve().parents[2]

#: runs `curate` as its console script does (main() with no argv), with an atexit handler that
#: prints a marker: the marker shows that the interpreter's teardown ran
DRIVER = (
    "import atexit, runpy, sys\n"
    "atexit.register(lambda: sys.stdout.write('TEARDOWN-RAN\\n'))\n"
    "sys.argv = ['curate', *sys.argv[1:]]\n"
    "runpy.run_module('curate.main', run_name='__main__')\n"
)


def _folder(src: Path, n: int) -> None:
    """``n`` distinct CT objects (more than 8: the run uses a pool of 2 workers)."""
    src.mkdir()
    for i in range(n):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        ds.SOPInstanceUID = f"{ds.SOPInstanceUID}.{i + 1}"
        ds.PatientName = "Zebulon^Quixote"
        buf = io.BytesIO()
        ds.save_as(buf)
        (src / f"im{i:02d}.dcm").write_bytes(buf.getvalue())


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # stdout block-buffered
    env["OMP_THREAD_LIMIT"] = "1"
    return subprocess.run([sys.executable, "-c", DRIVER, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_completed_run_skips_teardown_and_loses_nothing(tmp_path):
    src, out, vault = tmp_path / "src", tmp_path / "out", tmp_path / "vault"
    _folder(src, 12)
    p = _run("deid", str(src), str(out), "--secret-file", str(vault / "secret"), "--report", str(tmp_path / "r.json"),
             "--workers", "2", "--quiet")
    assert p.returncode == 0, p.stderr[-2000:]
    assert "TEARDOWN-RAN" not in p.stdout  # ended at once, after the work
    assert p.stdout.startswith("deid: 12 files, 12 written,")  # flushed through the pipe
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["written"] == 12 and len(report["files"]) == 12
    outputs = sorted(out.rglob("*.dcm"))
    assert len(outputs) == 12 and all(b"Zebulon" not in f.read_bytes() for f in outputs)
    assert not list(out.rglob(".*.tmp"))
    sealed = (vault / SEALED_MAP_NAME).read_text().splitlines()  # written and closed before the exit
    assert len(sealed) == 1 and json.loads(sealed[0])


def test_json_summary_and_errors_still_end_normally(tmp_path):
    src = tmp_path / "src"
    _folder(src, 2)
    p = _run("deid", str(src), str(tmp_path / "out"), "--secret-file", str(tmp_path / "vault" / "secret"), "--json",
             "--quiet")
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads(p.stdout.replace("TEARDOWN-RAN\n", ""))["written"] == 2
    assert "TEARDOWN-RAN" not in p.stdout
    # a run that could not start returns through the normal path (status 2, teardown runs)
    bad = _run("deid", str(tmp_path / "missing"), str(tmp_path / "o2"))
    assert bad.returncode == 2 and "does not exist" in bad.stderr
    assert "TEARDOWN-RAN" in bad.stdout
