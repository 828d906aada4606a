"""A stage runs once per (stage, version, subject, input hash, config hash)."""
from __future__ import annotations

from curation.catalog import Catalog, verify_chain
from curation.stages import Outcome, config_hash, run_stage


def test_rerun_reuses_and_changes_rerun(tmp_path):
    catalog = Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    calls = []

    def work() -> Outcome:
        calls.append(1)
        return Outcome(status="ok", metrics={"snr": 10.0}, output_hashes=["ab" * 32])

    kw = dict(stage="quality", version="1", subject_type="series", subject_id=3, input_hash="h" * 64)
    first = run_stage(catalog, config={"t": 1}, work=work, **kw)
    again = run_stage(catalog, config={"t": 1}, work=work, **kw)
    assert (first.reused, again.reused, len(calls)) == (False, True, 1)
    assert again.metrics["snr"] == 10.0
    run_stage(catalog, config={"t": 2}, work=work, **kw)  # new config: runs again
    run_stage(catalog, config={"t": 1}, work=work, **{**kw, "version": "2"})  # new version: runs again
    assert len(calls) == 3
    assert verify_chain(catalog).events == 3


def test_config_hash_is_order_independent():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})
