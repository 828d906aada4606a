"""The register stage in batches of studies (issue 16, throughput): studies are dealt into at most
MAX_REGISTER_TASKS batches of near-equal cost, and one failing study does not stop its batch."""
from __future__ import annotations

from typing import Any

import pytest

from operators.register import MAX_REGISTER_TASKS, RegisterOperator, balanced_batches


def _studies(costs: list[int]) -> list[dict[str, Any]]:
    return [{"study": f"P{i:03d}/1.2.{i}", "series": [{"series_id": i * 10 + j} for j in range(c)]}
            for i, c in enumerate(costs)]


def test_batches_hold_every_study_once_in_order_and_balance_the_cost():
    costs = [7, 1, 1, 2, 7, 1, 7, 1, 1, 2] * 9  # a site: MR studies of 7 series among CT studies
    studies = _studies(costs)
    batches = balanced_batches(studies, costs, MAX_REGISTER_TASKS)
    assert len(batches) == MAX_REGISTER_TASKS
    flat = [s["study"] for b in batches for s in b]
    assert sorted(flat) == sorted(s["study"] for s in studies) and len(flat) == len(set(flat))
    index = {s["study"]: i for i, s in enumerate(studies)}
    for b in batches:
        assert [index[s["study"]] for s in b] == sorted(index[s["study"]] for s in b)
    loads = [sum(len(s["series"]) for s in b) for b in batches]
    assert max(loads) - min(loads) <= max(costs), loads
    assert loads == sorted(loads, reverse=True), "the heaviest batches start first"
    contiguous = [sum(costs[i * len(costs) // 24:(i + 1) * len(costs) // 24]) for i in range(24)]
    assert max(loads) < max(contiguous)


def test_a_small_site_keeps_one_study_per_task():
    studies = _studies([3, 1, 2])
    assert sorted(map(len, balanced_batches(studies, [3, 1, 2]))) == [1, 1, 1]
    assert balanced_batches([], []) == []


def test_a_failing_study_does_not_stop_its_batch(monkeypatch: pytest.MonkeyPatch):
    from curation.pipeline import register
    from curation.pipeline.refs import StudyRef

    done: list[str] = []

    class Result:
        def __init__(self, ref: StudyRef) -> None:
            self.ref = ref.replace(status="ok", derived=2)

    def run(ref: StudyRef, store: Any, catalog: Any, config: Any = None) -> Result:
        done.append(ref.study)
        if ref.study.startswith("P001"):
            raise RuntimeError("boom")
        return Result(ref)

    class Hook:
        def get_store(self) -> None:
            return None

        def get_catalog(self) -> None:
            return None

    monkeypatch.setattr(register, "run", run)
    monkeypatch.setattr(RegisterOperator, "hook", lambda self: Hook())
    batch = [{"study": s["study"]} for s in _studies([1, 1, 1])]
    op = RegisterOperator(task_id="register", studies=batch)
    with pytest.raises(RuntimeError, match="1 of 3 studies failed"):
        op.execute({})
    assert done == [s["study"] for s in batch]
    ok = RegisterOperator(task_id="register_ok", studies=[batch[0], batch[2]]).execute({})
    assert [r["study"] for r in ok] == [batch[0]["study"], batch[2]["study"]]
    assert all(r["derived"] == 2 for r in ok)
