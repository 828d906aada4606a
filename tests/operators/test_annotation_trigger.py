"""The hook and the round trigger against a real annotation service: the connection's errors name
it, a round is created once per name, the trigger's serialised form rebuilds it (as after a
triggerer restart), it fires when people complete the round through the REST API, at the deadline
with the partial counts, and with an error on a refused token."""
from __future__ import annotations

import asyncio
import importlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from operators.hooks.annotation import AnnotationServiceError, AnnotationServiceHook
from operators.triggers.annotation import AnnotationRoundTrigger
from tests.annotation import dicomgen
from tests.operators.world import LABELS_PROJECT, READERS, ServiceWorld, findings_answer


def _items(tmp_path: Path, n: int, prefix: str, priority: int = 0) -> list[dict]:
    out = []
    for i in range(n):
        files = dicomgen.write_series(tmp_path / "store" / "deid" / f"{prefix}{i}", 1, seed=i)
        out.append({"external_id": f"{prefix}-{i}", "uris": [p.as_uri() for p in files], "modality": "CR",
                    "priority": priority})
    return out


def _round(hook: AnnotationServiceHook, world: ServiceWorld, tmp_path: Path, name: str, n: int = 2,
           deadline: datetime | None = None) -> dict:
    body = {"name": name, "readers_per_item": 1,
            "deadline": (deadline or datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()}
    return hook.create_round(world.projects[LABELS_PROJECT], body, _items(tmp_path, n, name, priority=9))["round"]


async def _first_event(trigger: AnnotationRoundTrigger, timeout_s: float = 30.0):
    async def first():
        async for event in trigger.run():
            return event
    return await asyncio.wait_for(first(), timeout_s)


def test_missing_or_incomplete_connection_is_named(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_CURATE_ANNOTATION", raising=False)
    with pytest.raises(AnnotationServiceError, match="curate_annotation"):
        AnnotationServiceHook().connection_settings()
    monkeypatch.setenv("AIRFLOW_CONN_CURATE_ANNOTATION", json.dumps({"conn_type": "http", "host": "http://x:1"}))
    with pytest.raises(AnnotationServiceError, match="'curate_annotation' has no password"):
        AnnotationServiceHook().connection_settings()
    monkeypatch.setenv("AIRFLOW_CONN_CURATE_ANNOTATION", json.dumps({"conn_type": "http", "password": "t"}))
    with pytest.raises(AnnotationServiceError, match="'curate_annotation' has no host"):
        AnnotationServiceHook().connection_settings()
    monkeypatch.setenv("AIRFLOW_CONN_OTHER", json.dumps({"conn_type": "http", "host": "svc.example.org",
                                                         "port": 8443, "schema": "https", "password": "t"}))
    assert AnnotationServiceHook("other").connection_settings() == ("https://svc.example.org:8443", "t")


def test_hook_resolves_the_project_and_creates_a_round_once(connection, tmp_path):
    hook = AnnotationServiceHook()
    pid = hook.project_id(LABELS_PROJECT)
    assert pid == connection.projects[LABELS_PROJECT]
    with pytest.raises(AnnotationServiceError, match="no project 'absent'.*curate_annotation"):
        hook.project_id("absent")
    items = _items(tmp_path, 3, "once")
    body = {"name": "once-round", "readers_per_item": 2}
    hook.items_per_call = 2  # the service's limit is 1000 a call: three items go in two calls
    first = hook.create_round(pid, body, items)
    again = hook.create_round(pid, body, items)
    assert len(first["created"]) == 3 and first["existing"] == []
    assert again["created"] == [] and sorted(again["existing"]) == sorted(first["created"])
    assert sorted(i["item_id"] for i in first["round"]["per_item"]) == sorted(first["created"])
    status = hook.get_round(pid, first["round"]["number"])
    assert (status["items"], status["readings_required"], status["state"]) == (3, 6, "open")
    assert hook.export_rows(pid, status["number"]) == []


def test_serialize_round_trips_as_after_a_triggerer_restart():
    trigger = AnnotationRoundTrigger(project_id=3, round_number=7, deadline="2026-12-06T06:00:00",
                                     poll_interval_s=5, annotation_conn_id="svc")
    classpath, kwargs = trigger.serialize()
    assert json.loads(json.dumps(kwargs)) == kwargs, "kwargs are stored as JSON in the metadata DB"
    assert "password" not in json.dumps(kwargs) and "token" not in json.dumps(kwargs)
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs["deadline"] == "2026-12-06T06:00:00+00:00"  # the service's naive UTC, made explicit


def test_trigger_fires_when_people_complete_the_round_after_a_triggerer_restart(connection, tmp_path):
    hook = AnnotationServiceHook()
    rnd = _round(hook, connection, tmp_path, "complete-round", n=2)
    before = AnnotationRoundTrigger(project_id=rnd["project_id"], round_number=rnd["number"],
                                    deadline=rnd["deadline"], poll_interval_s=0.3)

    async def scenario():
        waiting = asyncio.ensure_future(_first_event(before))
        await asyncio.sleep(1.0)
        assert not waiting.done(), "the round is not read yet"
        waiting.cancel()  # the triggerer stops; another one rebuilds the trigger from its stored kwargs
        module, _, name = before.serialize()[0].rpartition(".")
        after = getattr(importlib.import_module(module), name)(**json.loads(json.dumps(before.serialize()[1])))
        resumed = asyncio.ensure_future(_first_event(after))
        await asyncio.sleep(0.5)
        read = await asyncio.to_thread(connection.read_queue, READERS[0], LABELS_PROJECT, findings_answer())
        return read, await resumed

    read, event = asyncio.run(scenario())
    assert read >= 2  # the round's two items (first in the queue) and older items of the project
    assert event.payload["status"] == "complete"
    counts = event.payload["round"]
    assert (counts["items"], counts["complete_items"], counts["readings_submitted"]) == (2, 2, 2)
    assert "per_reader" not in counts and READERS[0] not in json.dumps(event.payload)


def test_trigger_fires_at_the_deadline_with_the_partial_counts(connection, tmp_path):
    hook = AnnotationServiceHook()
    deadline = datetime.now(timezone.utc) + timedelta(seconds=3)
    rnd = _round(hook, connection, tmp_path, "deadline-round", n=2, deadline=deadline)
    assert connection.read_queue(READERS[1], LABELS_PROJECT, findings_answer(False), limit=1) == 1
    trigger = AnnotationRoundTrigger(project_id=rnd["project_id"], round_number=rnd["number"],
                                     deadline=rnd["deadline"], poll_interval_s=60)
    event = asyncio.run(_first_event(trigger, timeout_s=20))
    assert datetime.now(timezone.utc) >= deadline
    assert event.payload["status"] == "deadline"
    counts = event.payload["round"]
    assert (counts["state"], counts["items"], counts["complete_items"]) == ("open", 2, 1)


def test_trigger_reports_a_refused_token(world, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_CONN_CURATE_ANNOTATION", world.connection("not-a-token"))
    trigger = AnnotationRoundTrigger(project_id=world.projects[LABELS_PROJECT], round_number=1, poll_interval_s=0.1)
    event = asyncio.run(_first_event(trigger))
    assert event.payload["status"] == "error" and "401" in event.payload["message"]
