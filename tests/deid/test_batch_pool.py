"""deid.batch with workers > 1 where no process pool can start: inside a daemonic process (a
Celery prefork worker's task). multiprocessing refused the pool there ("daemonic processes are
not allowed to have children") and the whole run failed; deid.pool runs the files in the task's
own process instead, with the same outputs as a pooled run."""
from __future__ import annotations

import hashlib
import io
import multiprocessing
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file

FILES = 12


def _site(src: Path) -> None:
    """FILES objects of two patients (CT_small with other UIDs and names)."""
    src.mkdir(parents=True)
    base = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for i in range(FILES):
        base.PatientName = f"Zebulon^Quixote{i % 2}"
        base.PatientID = f"PID-44556{i % 2}"
        base.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.{1000 + i}"
        buf = io.BytesIO()
        base.save_as(buf)
        (src / f"f{i:02d}.dcm").write_bytes(buf.getvalue())


def _deid_in_a_daemon(src: str, dst: str, secret_file: str, out) -> None:  # noqa: ANN001 - a multiprocessing queue
    from deid.batch import deidentify_tree

    rep = deidentify_tree(src, dst, secret_file=secret_file, workers=2).as_dict()
    out.put((rep["written"], rep["quarantined_count"]))


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.dcm"))}


def test_batch_with_workers_runs_inside_a_daemonic_process(tmp_path):
    from deid.batch import deidentify_tree

    _site(tmp_path / "src")
    secret_file = tmp_path / "vault" / "deid_secret"
    pooled = deidentify_tree(tmp_path / "src", tmp_path / "pooled", secret_file=secret_file, workers=2).as_dict()
    assert pooled["written"] == FILES

    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    proc = ctx.Process(target=_deid_in_a_daemon, daemon=True,
                       args=(str(tmp_path / "src"), str(tmp_path / "daemon"), str(secret_file), out))
    proc.start()
    proc.join(120)
    assert proc.exitcode == 0, f"deid inside a daemonic process exited with {proc.exitcode}"
    assert out.get(timeout=5) == (FILES, 0)
    assert _hashes(tmp_path / "daemon") == _hashes(tmp_path / "pooled")
    assert len(_hashes(tmp_path / "pooled")) == FILES
