"""A stage runs once per (stage, version, subject, input hash, config hash): the same key reuses the
stored result, a changed configuration, input or version runs again; each run is one ledger event."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from curation.catalog import Catalog, StageRecord, verify_chain
from curation.confighash import config_hash
from curation.pipeline.idempotency import StageKey, find, run_once
from curation.pipeline.result import StageResult
from curation.vocabulary import SeriesKind, StageStatus


@pytest.fixture
def catalog(tmp_path):
    c = Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    yield c
    c.dispose()


def _key(**over) -> StageKey:
    kw = dict(stage="quality", version="1", subject_type="series", subject_id=3, input_hash="h" * 64,
              config={"t": 1})
    kw.update(over)
    return StageKey.of(**kw)


def test_same_key_reuses_and_changed_config_input_or_version_reruns(catalog):
    calls = []

    def work() -> StageResult:
        calls.append(1)
        return StageResult(status=StageStatus.OK, metrics={"snr": 10.0}, output_hashes=["ab" * 32])

    first = run_once(catalog, _key(), work)
    again = run_once(catalog, _key(), work)
    assert (first.reused, again.reused, len(calls)) == (False, True, 1)
    assert again.metrics["snr"] == 10.0 and again.record_id == first.record_id
    run_once(catalog, _key(config={"t": 2}), work)  # new resolved configuration: runs again
    run_once(catalog, _key(input_hash="i" * 64), work)  # new input content: runs again
    run_once(catalog, _key(version="2"), work)  # new stage version: runs again
    run_once(catalog, _key(subject_id=4), work)  # another subject: runs
    assert len(calls) == 5
    assert verify_chain(catalog).events == 5
    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(StageRecord)) == 5


def test_the_key_holds_the_hash_of_the_resolved_configuration():
    key = _key(config={"b": [1, 2], "a": 1})
    assert key.config_hash == config_hash({"a": 1, "b": [1, 2]})
    assert _key(config={"a": 1}).config_hash != _key(config={"a": 2}).config_hash
    assert _key(config=None).config_hash == config_hash({})
    # vocabulary members hash like the strings already in a catalog's keys
    assert _key(config={"kind": SeriesKind.T1W}).config_hash == _key(config={"kind": "T1W"}).config_hash
    assert set(key.columns()) == {"stage", "stage_version", "subject_type", "subject_id", "input_hash", "config_hash"}


def test_find_sees_only_the_exact_key(catalog):
    run_once(catalog, _key(), lambda: StageResult(status=StageStatus.REVIEW, reason="why"))
    stored = find(catalog, _key())
    assert stored is not None and (stored.status, stored.reason, stored.reused) == ("review", "why", True)
    assert find(catalog, _key(config={"t": 3})) is None


def test_seconds_are_measured_unless_the_stage_says(catalog):
    timed = run_once(catalog, _key(), lambda: StageResult(metrics={}))
    given = run_once(catalog, _key(subject_id=9), lambda: StageResult(metrics={"seconds": 1.5}))
    assert isinstance(timed.metrics["seconds"], float) and given.metrics["seconds"] == 1.5
