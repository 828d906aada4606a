"""The round's operators on a real catalog and a real service: dispatch run twice registers each
series once (service and catalog), the wait defers to the trigger while the round is open (no
worker slot held), and a round past its deadline is closed with what was read, the partial
outcome recorded in the catalog and the result; a reading after that close is refused."""
from __future__ import annotations

import time
from types import SimpleNamespace

import httpx
import pytest
from airflow.sdk.exceptions import TaskDeferred
from sqlalchemy import func, select

from curation.catalog.db import open_catalog
from curation.catalog.models import AnnotationItem, AnnotationRound, LineageEvent
from operators.hooks.annotation import AnnotationServiceHook
from operators.annotation import DispatchRoundOperator, SelectRoundOperator, WaitForRoundOperator, round_name
from operators.triggers.annotation import AnnotationRoundTrigger
from tests.operators.world import LABELS_PROJECT, READERS, curated_catalog, findings_answer


@pytest.fixture
def curated(connection, tmp_path, monkeypatch):
    home = tmp_path / "curate"
    monkeypatch.setenv("CURATE_HOME", str(home))
    for name in ("CURATE_DB_URL", "CURATE_STORE_URI", "AIRFLOW_CONN_CURATE_DEFAULT"):
        monkeypatch.delenv(name, raising=False)
    open_catalog.cache_clear()  # the hook opens the embedded catalog by URL None: cached per process
    catalog, labels, review = curated_catalog(home, n_labels=2, n_review=0)
    yield catalog, labels
    catalog.dispose()
    open_catalog.cache_clear()


def _select(run_id: str) -> dict:
    op = SelectRoundOperator(task_id="select", project=LABELS_PROJECT, schema="chest_findings_v1",
                             selection={"exclude_read": True})
    return op.execute({"dag": SimpleNamespace(dag_id="annotation_round"), "run_id": run_id})


def test_round_name_is_stable_and_in_the_service_alphabet():
    name = round_name("annotation_round", "manual__2026-12-05T06:00:00.123456+00:00")
    assert name == "annotation_round.manual__2026-12-05T06:00:00.123456+00:00"
    long = round_name("annotation_round", "asset_triggered__" + "x/y " * 60)
    assert len(long) == 128 and long == round_name("annotation_round", "asset_triggered__" + "x/y " * 60)
    assert "/" not in long and " " not in long


def test_dispatch_twice_registers_once(curated, connection):
    catalog, labels = curated
    selected = _select("manual__twice")
    assert sorted(i["series_id"] for i in selected["items"]) == labels
    dispatch = DispatchRoundOperator(task_id="dispatch", selected=selected, readers_per_item=2, deadline_hours=1)
    first = dispatch.execute({})
    again = dispatch.execute({})  # a retry of the task, or a cleared run
    assert (first["created"], first["existing"]) == (2, 0)
    assert (again["created"], again["existing"]) == (0, 2)
    assert first["round"] == again["round"] and first["project_id"] == connection.projects[LABELS_PROJECT]
    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(AnnotationRound)) == 1
        assert s.scalar(select(func.count()).select_from(AnnotationItem)) == 2
        assert s.scalar(select(func.count()).select_from(AnnotationItem)
                        .where(AnnotationItem.service_item_id.is_not(None))) == 2
        events = list(s.scalars(select(LineageEvent.action).where(LineageEvent.stage == "annotation")))
    assert events.count("dispatch") == 1 and events.count("plan") == 1
    # a re-run of select for the same DAG run keeps its series (they are this round's, not read earlier)
    assert _select("manual__twice")["items"] == selected["items"]
    AnnotationServiceHook().close_round(first["project_id"], first["round"]["service_round_number"])


def test_wait_defers_while_open_and_closes_a_partial_round_at_the_deadline(curated, connection):
    catalog, _ = curated
    selected = _select("manual__deadline")
    dispatched = DispatchRoundOperator(task_id="dispatch", selected=selected, readers_per_item=1,
                                       deadline_hours=4 / 3600).execute({})
    assert connection.read_queue(READERS[2], LABELS_PROJECT, findings_answer(), limit=1) == 1
    wait = WaitForRoundOperator(task_id="wait", dispatched=dispatched, poll_interval_s=30)
    with pytest.raises(TaskDeferred) as deferred:
        wait.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, AnnotationRoundTrigger) and deferred.value.method_name == "execute_complete"
    assert trigger.serialize()[1]["round_number"] == dispatched["round"]["service_round_number"]

    # the item still in a reader's hands when the deadline comes
    with httpx.Client(base_url=connection.url, headers=connection.people[READERS[1]], timeout=30) as c:
        late = c.post(f"/api/tasks/next?project_id={dispatched['project_id']}").json()["task"]
    assert late is not None
    time.sleep(4.5)
    result = wait.execute({})  # past the deadline: closed at once, nothing deferred
    assert result["wait"]["outcome"] == "deadline" and result["wait"]["partial"] is True
    assert (result["wait"]["items"], result["wait"]["complete_items"]) == (2, 1)
    assert result["round"]["state"] == "closed"
    with catalog.session() as s:
        row = s.get(AnnotationRound, dispatched["round"]["round_id"])
        assert row.closed_at is not None and row.state == "closed"
        close = s.scalars(select(LineageEvent).where(LineageEvent.action == "close")).one()
        assert close.details["partial"] is True and close.details["complete_items"] == 1
    with httpx.Client(base_url=connection.url, headers=connection.people[READERS[1]], timeout=30) as c:
        refused = c.post(f"/api/tasks/{late['id']}/submit", json=findings_answer())
    assert refused.status_code == 409
    # the trigger's event path ends the same way (the round is closed already: idempotent)
    resumed = wait.execute_complete({}, {"status": "deadline", "round": {}})
    assert resumed["wait"]["partial"] is True and resumed["round"] == result["round"]
