"""Rounds as objects, driven by a pipeline service token: creation with items (idempotent per name),
status per item and per reader, completion announced to the round's webhook and to Airflow's asset
event route (a real local HTTP server, with a failed first try), closing (idempotent) and the 409 of
a reading submitted after the close."""
from __future__ import annotations

from pathlib import Path

import pytest

from annotation.airflow_events import AirflowAuthError, bearer_token, post_asset_event
from tests.annotation.conftest import free_port, make_client, series_uris
from tests.annotation.receiver import Receiver
from tests.annotation.world import World, build_world, ok, reading


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def _pipeline(w: World) -> dict[str, str]:
    token = ok(w.client.post("/api/service-tokens", headers=w.h("admin"),
                             json={"name": "airflow", "projects": [w.project_id], "roles": ["pipeline"]}), 201)
    return {"Authorization": f"Bearer {token['token']}"}


def _read_until_empty(w: World, reader: str) -> list[int]:
    """The reader works through the queue; returns the item ids read."""
    read = []
    while True:
        t = ok(w.client.post(f"/api/tasks/next?project_id={w.project_id}", headers=w.h(reader)))["task"]
        if t is None:
            return read
        ok(w.client.post(f"/api/tasks/{t['id']}/submit", headers=w.h(reader), json=reading()))
        read.append(t["item"]["id"])


def test_round_lifecycle_with_webhook_and_airflow_asset_event(database_url: str, store_root: Path, receiver: Receiver) -> None:
    """On SQLite and PostgreSQL (row locks order the completion check there)."""
    receiver.statuses["/api/v2/assets/events"] = [503]  # Airflow down at first: the service retries
    url = database_url
    with make_client(url, airflow_url=receiver.url, airflow_token="jwt-from-airflow") as client:
        w = build_world(client, url, store_root, readers=2, verification=0, n_items=1)
        pipeline = _pipeline(w)
        items = [{"external_id": f"series-{n}", "uris": series_uris(store_root, n), "modality": "CT", "priority": 5}
                 for n in (1, 2)]
        gold = {"external_id": "gold-3", "uris": series_uris(store_root, 3), "modality": "CT", "is_gold": True,
                "gold_answer": {"labels": [{"label": "nodule", "value": True, "confidence": 100}]}}
        body = {"name": "manual__2026-12-05T06:00", "readers_per_item": 1, "gold_share": 0.25,
                "deadline": "2026-12-06T06:00:00+01:00", "webhook_url": receiver.url + "/round-done",
                "airflow_asset_id": 7, "items": items + [gold]}
        first = ok(client.post(f"/api/projects/{w.project_id}/rounds", headers=pipeline, json=body), 201)
        rnd = first["round"]
        assert len(first["created"]) == 3 and first["existing"] == []
        assert rnd["number"] == 2 and rnd["state"] == "open" and rnd["deadline"] == "2026-12-06T05:00:00"
        assert (rnd["items"], rnd["gold_items"], rnd["gold_share"], rnd["readings_required"]) == (2, 1, 0.25, 2)
        again = ok(client.post(f"/api/projects/{w.project_id}/rounds", headers=pipeline, json=body), 200)
        assert again["created"] == [] and sorted(again["existing"]) == sorted(first["created"])
        # the round's k (1) applies to its items, not the project's (2)
        assert [i["required"] for i in rnd["per_item"]] == [1, 1]
        # readers never see the gold share or whether an item is gold
        t = ok(client.post(f"/api/tasks/next?project_id={w.project_id}", headers=w.h("junior")))["task"]
        assert "gold" not in str(t["item"]["context"]) and t["item"]["is_gold"] is None
        ok(client.post(f"/api/tasks/{t['id']}/submit", headers=w.h("junior"), json=reading()))
        status = ok(client.get(f"/api/projects/{w.project_id}/rounds/2", headers=pipeline))
        assert status["state"] == "open" and status["complete_items"] == 1
        assert status["per_reader"] == [{"reader": "junior", "submitted": 1, "assigned": 0, "skipped": 0}]
        assert receiver.on("/round-done") == []
        _read_until_empty(w, "senior")
        done = ok(client.get(f"/api/projects/{w.project_id}/rounds/2", headers=pipeline))
        assert done["state"] == "complete" and done["complete_items"] == 2 and done["completed_at"]
        assert {r["reader"] for r in done["per_reader"]} == {"junior", "senior"}
        assert done["readings_submitted"] == 2
    hooks = receiver.on("/round-done")
    assert [h.body for h in hooks] == [{"project_id": w.project_id, "round_id": rnd["id"], "round": 2,
                                        "name": "manual__2026-12-05T06:00", "items": 2, "complete_items": 2,
                                        "event": "round_complete"}]
    events = receiver.on("/api/v2/assets/events")
    assert len(events) == 2, "one failed try (503), then the accepted one"
    assert events[-1].headers["authorization"] == "Bearer jwt-from-airflow"
    assert events[-1].body == {"asset_id": 7, "extra": {"annotation_round": {k: v for k, v in hooks[0].body.items()
                                                                            if k != "event"}}}


def test_late_reading_after_close_is_refused_and_close_is_idempotent(database_url: str, store_root: Path) -> None:
    url = database_url
    with make_client(url) as client:
        w = build_world(client, url, store_root, readers=1, verification=0, n_items=1)
        pipeline = _pipeline(w)
        rnd = ok(client.post(f"/api/projects/{w.project_id}/rounds", headers=pipeline, json={
            "name": "deadline-round", "readers_per_item": 2, "items": [
                {"external_id": "late-1", "uris": series_uris(store_root, 4), "priority": 9}]}), 201)["round"]
        n = rnd["number"]
        t = ok(client.post(f"/api/tasks/next?project_id={w.project_id}", headers=w.h("junior")))["task"]
        assert t["round"] == n
        closed = ok(client.post(f"/api/projects/{w.project_id}/rounds/{n}/close", headers=pipeline))
        assert closed["state"] == "closed" and closed["closed_at"]
        late = client.post(f"/api/tasks/{t['id']}/submit", headers=w.h("junior"), json=reading())
        assert late.status_code == 409 and "closed" in late.text
        again = ok(client.post(f"/api/projects/{w.project_id}/rounds/{n}/close", headers=pipeline))
        assert again["closed_at"] == closed["closed_at"] and again["state"] == "closed"
        # no reading was recorded, the closed round hands out nothing, and takes no new item
        assert again["readings_submitted"] == 0 and again["complete_items"] == 0
        nxt = ok(client.post(f"/api/tasks/next?project_id={w.project_id}", headers=w.h("senior")))["task"]
        assert nxt is None or nxt["round"] != n
        more = client.post(f"/api/projects/{w.project_id}/rounds", headers=pipeline, json={
            "name": "deadline-round", "items": [{"external_id": "late-2", "uris": series_uris(store_root, 5)}]})
        assert more.status_code == 409
        csv = client.get(f"/api/projects/{w.project_id}/export/csv?round={n}", headers=pipeline).text
        assert "late-1" not in csv
        assert client.post(f"/api/projects/{w.project_id}/rounds/99/close", headers=pipeline).status_code == 404


def test_airflow_token_from_its_login_and_no_retry_on_refusal(receiver: Receiver) -> None:
    """Against the local server: a fresh JWT from Airflow's /auth/token, a 404 (unknown asset) is not
    retried, an unreachable Airflow is retried and then given up, a refused login raises."""
    receiver.replies["/auth/token"] = {"access_token": "fresh-jwt", "token_type": "bearer"}
    receiver.statuses["/auth/token"] = [201, 401]
    assert bearer_token(receiver.url, "", "airflow", "secret-pw") == "fresh-jwt"
    assert receiver.on("/auth/token")[0].body == {"username": "airflow", "password": "secret-pw"}
    with pytest.raises(AirflowAuthError):
        bearer_token(receiver.url, "", "airflow", "wrong")
    assert bearer_token(receiver.url, "static-jwt") == "static-jwt"

    receiver.statuses["/api/v2/assets/events"] = [404]
    assert post_asset_event(receiver.url, "fresh-jwt", 99, {}, backoff_s=0.01) is False
    assert len(receiver.on("/api/v2/assets/events")) == 1
    receiver.statuses["/api/v2/assets/events"] = [500, 429]
    assert post_asset_event(receiver.url, "fresh-jwt", 7, {"k": 1}, backoff_s=0.01) is True
    assert len(receiver.on("/api/v2/assets/events")) == 4
    dead = f"http://127.0.0.1:{free_port()}"
    assert post_asset_event(dead, "t", 7, {}, retries=2, backoff_s=0.01, timeout_s=1) is False
