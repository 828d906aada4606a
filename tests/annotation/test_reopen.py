"""Issue 17, point 7: a reader reopens a submitted case until the round closes, the change recorded;
and point 14's claim-ahead (`next?ahead=1`) that lets the viewer prefetch the next case."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import update

from annotation.models import Task, utcnow
from tests.annotation.conftest import make_client, series_uris
from tests.annotation.test_ai_predictions import ANSWERS, MODEL, predictions
from tests.annotation.test_rounds import _pipeline
from tests.annotation.world import build_world, ok, reading


def _take_and_submit(w, who: str, body: dict) -> dict:
    t = ok(w.client.post(f"/api/tasks/next?project_id={w.project_id}", headers=w.h(who)))["task"]
    ok(w.client.post(f"/api/tasks/{t['id']}/submit", headers=w.h(who), json=body))
    return t


def test_reopen_replaces_the_reading_and_keeps_the_old_one(database_url: str, store_root: Path) -> None:
    with make_client(database_url) as client:
        w = build_world(client, database_url, store_root, readers=2, verification=0, n_items=1)
        t = _take_and_submit(w, "junior", {**reading({"nodule": (True, 80)}), "comment": "first look"})
        mine = {x["id"]: x for x in ok(client.get("/api/tasks", headers=w.h("junior")))["tasks"]}
        assert mine[t["id"]]["reopenable"] is True
        # only its own reader: not another reader, not a manager, not a site admin
        for who in ("senior", "manager", "admin"):
            assert client.post(f"/api/tasks/{t['id']}/reopen", headers=w.h(who)).status_code == 403, who
        assert client.post("/api/tasks/999999/reopen", headers=w.h("junior")).status_code == 404
        state = ok(client.post(f"/api/tasks/{t['id']}/reopen", headers=w.h("junior")))
        assert state["status"] == "assigned" and state["loaded_at"] is None
        assert client.post(f"/api/tasks/{t['id']}/reopen", headers=w.h("junior")).status_code == 409  # not submitted now
        # it is the reader's current case again, with the reading to change
        again = ok(client.post(f"/api/tasks/next?project_id={w.project_id}", headers=w.h("junior")))["task"]
        assert again["id"] == t["id"] and again["annotation"]["comment"] == "first look"
        ok(client.post(f"/api/tasks/{t['id']}/loaded", headers=w.h("junior")))
        ok(client.post(f"/api/tasks/{t['id']}/submit", headers=w.h("junior"),
                       json={**reading({"nodule": (False, 60)}, box=False), "comment": "changed my mind"}))
        # exports and agreement: the latest reading only
        rows = ok(client.get(f"/api/projects/{w.project_id}/export/json", headers=w.h("manager")))
        text = str(rows)
        assert "changed my mind" in text and "first look" not in text
        # the manager's review shows the history, the old reading with its times
        review = ok(client.get(f"/api/items/{t['item']['id']}/review", headers=w.h("manager")))
        mine = next(r for r in review["readings"] if r["task_id"] == t["id"])
        assert mine["labels"] == [{"label": "nodule", "value": False, "confidence": 60}] and mine["rois"] == []
        [old] = mine["revisions"]
        assert old["labels"] == [{"label": "nodule", "value": True, "confidence": 80}] and len(old["rois"]) == 2
        assert old["comment"] == "first look" and old["submitted_at"] <= old["replaced_at"]
        # a second reopen-and-submit adds a second revision, oldest first
        ok(client.post(f"/api/tasks/{t['id']}/reopen", headers=w.h("junior")))
        ok(client.post(f"/api/tasks/{t['id']}/submit", headers=w.h("junior"), json=reading({"nodule": (True, 100)})))
        review = ok(client.get(f"/api/items/{t['item']['id']}/review", headers=w.h("reviewer")))
        revs = next(r for r in review["readings"] if r["task_id"] == t["id"])["revisions"]
        assert [r["comment"] for r in revs] == ["first look", "changed my mind"]
        # the queue did not hand the slot to anyone else meanwhile: still one task per reader on the item
        senior = _take_and_submit(w, "senior", reading())
        assert senior["item"]["id"] == t["item"]["id"]
        assert ok(client.post(f"/api/tasks/next?project_id={w.project_id}", headers=w.h("senior")))["task"] is None


def test_a_replaced_reading_keeps_its_assist_record(database_url: str, store_root: Path) -> None:
    """What the model showed and what the reader did with it stays with the revision (migration 0005):
    resubmitting a reopened case must not lose the first reading's assist record."""
    with make_client(database_url) as client:
        w = build_world(client, database_url, store_root, readers=1, verification=0, n_items=1)
        ok(client.put(f"/api/items/{w.items[0]}/predictions", headers=w.h("manager"), json=predictions()))
        t = ok(client.post(f"/api/tasks/next?project_id={w.project_id}", headers=w.h("junior")))["task"]
        first = {"model": MODEL, "shown": True, "suggestions": [{"label": "nodule", "box_index": 1, "action": "reject"}]}
        ok(client.post(f"/api/tasks/{t['id']}/submit", headers=w.h("junior"),
                       json={"labels": ANSWERS, "rois": [], "assist": first, "comment": "with the model"}))
        ok(client.post(f"/api/tasks/{t['id']}/reopen", headers=w.h("junior")))
        ok(client.post(f"/api/tasks/{t['id']}/submit", headers=w.h("junior"),
                       json={"labels": ANSWERS, "rois": [], "comment": "without"}))
        review = ok(client.get(f"/api/items/{t['item']['id']}/review", headers=w.h("manager")))
        mine = next(r for r in review["readings"] if r["task_id"] == t["id"])
        [old] = mine["revisions"]
        assert old["comment"] == "with the model" and old["assist"]["model"] == MODEL
        assert [(s["box_index"], s["action"]) for s in old["assist"]["suggestions"]] == [(1, "reject")]


def test_no_reopen_after_the_round_closed_and_a_reopened_case_keeps_its_reading(database_url: str, store_root: Path) -> None:
    with make_client(database_url) as client:
        w = build_world(client, database_url, store_root, readers=1, verification=0, n_items=1)
        pipeline = _pipeline(w)
        n = ok(client.post(f"/api/projects/{w.project_id}/rounds", headers=pipeline, json={
            "name": "r-reopen", "readers_per_item": 1, "items": [
                {"external_id": f"reopen-{k}", "uris": series_uris(store_root, 3 + k), "priority": 9} for k in range(2)]}),
            201)["round"]["number"]
        first = _take_and_submit(w, "junior", {**reading(), "comment": "kept"})
        second = _take_and_submit(w, "junior", reading())
        assert {first["round"], second["round"]} == {n}
        ok(client.post(f"/api/tasks/{first['id']}/reopen", headers=w.h("junior")))  # reopened, then the round closes
        ok(client.post(f"/api/projects/{w.project_id}/rounds/{n}/close", headers=pipeline))
        late = client.post(f"/api/tasks/{first['id']}/submit", headers=w.h("junior"), json=reading(box=False))
        assert late.status_code == 409
        refused = client.post(f"/api/tasks/{second['id']}/reopen", headers=w.h("junior"))
        assert refused.status_code == 409 and "closed" in refused.text
        mine = {x["id"]: x for x in ok(client.get("/api/tasks", headers=w.h("junior")))["tasks"]}
        assert mine[first["id"]]["status"] == "submitted" and not mine[second["id"]]["reopenable"]
        csv = client.get(f"/api/projects/{w.project_id}/export/csv?round={n}", headers=pipeline).text
        assert "reopen-0" in csv and "reopen-1" in csv  # the reading submitted before the reopen stands


def test_reopen_withdraws_an_unclaimed_verification_and_refuses_a_started_one(database_url: str, store_root: Path) -> None:
    with make_client(database_url) as client:
        w = build_world(client, database_url, store_root, readers=1, verification=1, n_items=2)
        t = _take_and_submit(w, "junior", reading())
        ok(client.post(f"/api/tasks/{t['id']}/reopen", headers=w.h("junior")))  # its verification was not taken yet
        assert ok(client.post(f"/api/tasks/next?project_id={w.project_id}", headers=w.h("reviewer")))["task"] is None
        ok(client.post(f"/api/tasks/{t['id']}/submit", headers=w.h("junior"), json=reading(box=False)))
        v = ok(client.post(f"/api/tasks/next?project_id={w.project_id}", headers=w.h("reviewer")))["task"]
        assert v["kind"] == "verify" and v["reviewed"]["rois"] == []  # it checks the new reading
        refused = client.post(f"/api/tasks/{t['id']}/reopen", headers=w.h("junior"))
        assert refused.status_code == 409 and "verified" in refused.text
        assert client.post(f"/api/tasks/{v['id']}/reopen", headers=w.h("reviewer")).status_code == 409


def test_claim_ahead_for_prefetch_and_its_lease(database_url: str, store_root: Path) -> None:
    with make_client(database_url) as client:
        w = build_world(client, database_url, store_root, readers=1, verification=0, n_items=3)
        nxt = f"/api/tasks/next?project_id={w.project_id}"
        cur = ok(client.post(nxt, headers=w.h("junior")))
        assert cur["remaining"] == 2
        ahead = ok(client.post(nxt + "&ahead=1", headers=w.h("junior")))
        assert ahead["task"]["id"] != cur["task"]["id"] and ahead["task"]["loaded_at"] is None
        assert ahead["remaining"] == 1  # what will be left once it is the case in hand
        assert ok(client.post(nxt + "&ahead=1", headers=w.h("junior")))["task"]["id"] == ahead["task"]["id"]  # idempotent
        assert ok(client.post(nxt, headers=w.h("junior")))["remaining"] == 2  # the current case still counts the one ahead
        assert client.post(nxt + "&ahead=2", headers=w.h("junior")).status_code == 422
        ok(client.post(f"/api/tasks/{cur['task']['id']}/submit", headers=w.h("junior"), json=reading()))
        after = ok(client.post(nxt, headers=w.h("junior")))
        assert after["task"]["id"] == ahead["task"]["id"] and after["remaining"] == 1
        # a claim ahead left unused goes back to the queue when its lease runs out, like any other
        ahead2 = ok(client.post(nxt + "&ahead=1", headers=w.h("junior")))["task"]
        with client.app.state.factories.writer() as db, db.begin():
            db.execute(update(Task).where(Task.id == ahead2["id"]).values(lease_expires_at=utcnow() - timedelta(minutes=1)))
        from annotation import queue
        queue._last_release.clear()  # the sweep runs at most every 30 s per project
        got = ok(client.post(nxt, headers=w.h("senior")))["task"]
        assert got["id"] == ahead2["id"]
