"""benchmarks/demo_fingerprint.py: the check that a refactor leaves `curate demo --fresh` unchanged.

Compare logic on small synthetic fingerprints, and capture on two tiny catalogs written through the
real models that differ only in what is run-dependent (ids, insertion order, timestamps, durations).
"""
from __future__ import annotations

import copy
import importlib.util
import io
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load():
    spec = importlib.util.spec_from_file_location("demo_fingerprint", REPO / "benchmarks" / "demo_fingerprint.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("demo_fingerprint", module)
    spec.loader.exec_module(module)
    return module


fpm = _load()

BASE = {
    "format": fpm.FORMAT,
    "counts": {"series": 1, "deid_files": 1},
    "series": {"c:aaaa": {"modality": "MR", "stages": [
        {"stage": "classify", "status": "ok", "metrics": {"kind": "T1W", "confidence": 0.99}},
        {"stage": "quality", "status": "ok", "reason": None,
         "metrics": {"decision": {"decision": "approve", "p_degraded": 0.01}}}]}},
    "zones": {"deid": {"ANONX/1/2/3.dcm": "ab" * 32}, "derived": {}},
}


def _compare(a, b, limit=40):
    out = io.StringIO()
    return fpm.compare(a, b, limit=limit, out=out), out.getvalue()


def test_identical_fingerprints_exit_0():
    rc, text = _compare(BASE, copy.deepcopy(BASE))
    assert rc == 0 and text.strip() == "identical"


def test_a_changed_file_hash_exits_1_naming_the_file():
    other = copy.deepcopy(BASE)
    other["zones"]["deid"]["ANONX/1/2/3.dcm"] = "cd" * 32
    rc, text = _compare(BASE, other)
    assert rc == 1
    assert "zones deid | ANONX/1/2/3.dcm: " + "ab" * 32 + " vs " + "cd" * 32 in text
    assert "1 differences (zones 1)" in text


def test_a_changed_decision_names_the_series_and_field():
    other = copy.deepcopy(BASE)
    other["series"]["c:aaaa"]["stages"][1]["metrics"]["decision"]["decision"] = "review"
    rc, text = _compare(BASE, other)
    assert rc == 1
    assert "series c:aaaa | stages.[1].metrics.decision.decision: approve vs review" in text


def test_a_missing_series_is_one_difference_and_output_is_bounded():
    other = copy.deepcopy(BASE)
    other["series"]["c:bbbb"] = copy.deepcopy(BASE["series"]["c:aaaa"])
    for i in range(100):
        other["zones"]["derived"][f"f{i:03d}.dcm"] = "00" * 32
    rc, text = _compare(BASE, other, limit=5)
    assert rc == 1
    assert "series c:bbbb | (value): <absent> vs {" in text
    lines = text.strip().splitlines()
    assert len(lines) == 5 + 2  # five differences, "... and N more", the summary
    assert "... and 96 more differences" in text  # 100 files + 1 series - 5 printed
    assert lines[-1].startswith("101 differences")


def test_excluded_fields_and_float_noise_do_not_matter():
    a = fpm.normalise({"kind": "T1W", "seconds": 0.25, "snr": 12.3456789012, "level_seconds": [1.0, 2.0],
                       "review_png": "/tmp/curate-register-abc123/out/review/x.png"})
    b = fpm.normalise({"kind": "T1W", "seconds": 9.75, "snr": 12.3456789999, "level_seconds": [3.0],
                       "review_png": "/tmp/curate-register-zzz999/out/review/x.png"})
    assert a == b == {"kind": "T1W", "snr": 12.3457}
    c = fpm.normalise({"kind": "T1W", "snr": 12.35})
    assert c != a  # a real change of a metric still shows


def _catalog(path: Path, order: list[int], t0: datetime, seconds: float) -> None:
    """A tiny catalog: one patient, study and two series, written in `order` (so ids differ)."""
    from curation.catalog import Catalog, Instance, Patient, QuarantineRecord, Series, Source, StageRecord, Study

    cat = Catalog(f"sqlite:///{path}")
    with cat.session() as s:
        src = Source(kind="folder", uri=str(path.parent / "site"), created_at=t0)
        pat = Patient(site="demo", patient_key="p" * 64, created_at=t0)
        s.add_all([src, pat])
        s.flush()
        study = Study(patient_id=pat.id, study_instance_uid="2.25.1", created_at=t0)
        s.add(study)
        s.flush()
        for n in order:
            se = Series(study_id=study.id, series_instance_uid=f"2.25.1{n}", modality="MR", created_at=t0)
            s.add(se)
            s.flush()
            s.add(Instance(series_id=se.id, sop_instance_uid=f"2.25.2{n}", sha256=f"{n}" * 64, size=10,
                           raw_key=f"objects/{n}", source_id=src.id, source_path=f"P/{n}", created_at=t0))
            s.add(StageRecord(stage="quality", stage_version="1", subject_type="series", subject_id=se.id,
                              input_hash="i" * 64, config_hash="c" * 64, status="ok",
                              metrics={"snr": 10.0 + n, "seconds": seconds}, created_at=t0))
        s.add(QuarantineRecord(source_id=src.id, file="P/bad", sha256="q" * 64, stage="ingest",
                               reason_code="corrupt", reason="damaged", created_at=t0))
        s.commit()
    cat.dispose()


def test_capture_ignores_ids_order_timestamps_and_durations(tmp_path):
    pytest.importorskip("sqlalchemy")
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for name, order, t, secs in (("a", [1, 2], t0, 0.5), ("b", [2, 1], t0 + timedelta(hours=3), 7.0)):
        (tmp_path / name / "store" / "deid" / "ANON").mkdir(parents=True)
        (tmp_path / name / "store" / "deid" / "ANON" / "x.dcm").write_bytes(b"same bytes")
        _catalog(tmp_path / name / "catalog.sqlite", order, t, secs)
    a, b = fpm.capture(tmp_path / "a"), fpm.capture(tmp_path / "b")
    assert _compare(a, b)[0] == 0
    assert len(a["series"]) == 2 and a["counts"]["deid_files"] == 1
    assert "2.25.11" not in repr(a) and "P/bad" not in repr(a)  # source UIDs and paths stay out

    (tmp_path / "b" / "store" / "deid" / "ANON" / "x.dcm").write_bytes(b"other bytes")
    rc, text = _compare(a, fpm.capture(tmp_path / "b"))
    assert rc == 1 and "zones deid | ANON/x.dcm" in text
