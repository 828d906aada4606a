"""The reading workflow end to end over the API, on SQLite and on PostgreSQL."""
from __future__ import annotations

from pathlib import Path

from tests.annotation.conftest import make_client
from tests.annotation.world import build_world, ok, reading


def test_k_readers_verification_completion_and_exports(database_url: str, store_root: Path) -> None:
    with make_client(database_url) as client:
        w = build_world(client, database_url, store_root, readers=2, verification=1, n_items=2)
        pid = w.project_id
        # junior and senior both read item 1 (k=2); the lowest item id comes first
        t1 = ok(client.post(f"/api/tasks/next?project_id={pid}", headers=w.h("junior")))["task"]
        assert t1["item"]["id"] == w.items[0] and t1["kind"] == "annotate"
        assert t1["item"]["is_gold"] is None  # readers are not told which items are gold
        assert t1["schema_version"]["version"] == 1
        again = ok(client.post(f"/api/tasks/next?project_id={pid}", headers=w.h("junior")))["task"]
        assert again["id"] == t1["id"], "an open task is handed back until submitted or skipped"
        s1 = ok(client.post(f"/api/tasks/next?project_id={pid}", headers=w.h("senior")))["task"]
        assert s1["item"]["id"] == w.items[0] and s1["id"] != t1["id"]
        ok(client.post(f"/api/tasks/{s1['id']}/loaded", headers=w.h("senior")))
        ok(client.post(f"/api/tasks/{s1['id']}/submit", headers=w.h("senior"),
                       json=reading({"nodule": (False, 60), "effusion": (True, 100)})))
        ok(client.post(f"/api/tasks/{t1['id']}/loaded", headers=w.h("junior")))
        done = ok(client.post(f"/api/tasks/{t1['id']}/submit", headers=w.h("junior"), json=reading()))
        assert done["status"] == "submitted"
        # the same reader never reads the same item twice; a third reader is not needed (k=2)
        t2 = ok(client.post(f"/api/tasks/next?project_id={pid}", headers=w.h("junior")))["task"]
        assert t2["item"]["id"] == w.items[1]
        # the senior read item 1 too, so may not verify the junior there: a new reading instead
        s2 = ok(client.post(f"/api/tasks/next?project_id={pid}", headers=w.h("senior")))["task"]
        assert s2["kind"] == "annotate" and s2["item"]["id"] == w.items[1]
        status = ok(client.get(f"/api/projects/{pid}/completion", headers=w.h("data_owner")))
        first = next(i for i in status["items"] if i["item_id"] == w.items[0])
        assert first["submitted"] == 2 and not first["complete"], "readings wait for verification"
        # the reviewer (rank above both) verifies both readings of item 1
        for _ in range(2):
            v = ok(client.post(f"/api/tasks/next?project_id={pid}", headers=w.h("reviewer")))["task"]
            assert v["kind"] == "verify" and v["item"]["id"] == w.items[0] and v["reviewed"]["labels"]
            ok(client.post(f"/api/tasks/{v['id']}/submit", headers=w.h("reviewer"), json={"decision": "accept"}))
        assert ok(client.post(f"/api/tasks/next?project_id={pid}", headers=w.h("reviewer")))["task"] is None
        status = ok(client.get(f"/api/projects/{pid}/completion", headers=w.h("data_owner")))
        first = next(i for i in status["items"] if i["item_id"] == w.items[0])
        assert first["complete"] and status["rounds"]["1"] == {"items": 2, "complete_items": 1, "complete": False}
        # skip with reason: the slot goes back to the queue
        before = ok(client.get(f"/api/projects/{pid}/progress", headers=w.h("manager")))["tasks_open"]
        ok(client.post(f"/api/tasks/{t2['id']}/skip", headers=w.h("junior"), json={"reason": "motion artefact"}))
        assert ok(client.get(f"/api/projects/{pid}/progress", headers=w.h("manager")))["tasks_open"] == before + 1
        assert ok(client.post(f"/api/tasks/next?project_id={pid}", headers=w.h("junior")))["task"] is None
        # review: both readers side by side, the nodule label disagrees
        review = ok(client.get(f"/api/items/{w.items[0]}/review", headers=w.h("reviewer")))
        readers = {r["reader"] for r in review["readings"] if r["kind"] == "annotate"}
        assert readers == {"junior", "senior"} and "nodule" in review["disagreements"]
        stats = ok(client.get(f"/api/projects/{pid}/statistics", headers=w.h("manager")))
        assert stats["readers"] == ["junior", "senior"]
        assert stats["pairwise_agreement"][0][1] == 0.0
        # exports
        csv_text = client.get(f"/api/projects/{pid}/export/csv", headers=w.h("manager")).text
        header = csv_text.splitlines()[0].split(",")
        for col in ("external_id", "annotator", "label", "value", "confidence", "roi_kind", "x_min", "time_total_s"):
            assert col in header
        assert "motion artefact" in csv_text and csv_text.count("\n") >= 9
        js = ok(client.get(f"/api/projects/{pid}/export/json", headers=w.h("data_owner")))
        assert {r["annotator"] for r in js["readings"]} >= {"junior", "senior", "reviewer"}
        # annotators see only their own tasks
        mine = ok(client.get("/api/tasks", headers=w.h("junior")))
        assert {t["id"] for t in mine["tasks"]} == {t1["id"], t2["id"]}
        assert client.get(f"/api/tasks/{s1['id']}", headers=w.h("junior")).status_code == 403


def test_gold_items_at_set_rate_and_scored(tmp_path: Path, store_root: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gold.db'}"
    with make_client(url) as client:
        w = build_world(client, url, store_root, readers=1, verification=0, n_items=4)
        pid = w.project_id
        ok(client.patch(f"/api/projects/{pid}", headers=w.h("manager"), json={"gold_rate": 0.5}))
        ok(client.put(f"/api/items/{w.items[3]}/gold", headers=w.h("manager"),
                      json={"is_gold": True, "gold_answer": {"labels": [{"label": "nodule", "value": True, "confidence": 100}]}}))
        kinds = []
        for _ in range(4):
            t = ok(client.post(f"/api/tasks/next?project_id={pid}", headers=w.h("junior")))["task"]
            kinds.append(t["item"]["id"] == w.items[3])
            ok(client.post(f"/api/tasks/{t['id']}/submit", headers=w.h("junior"), json=reading(box=False)))
        assert kinds == [False, True, False, False], "one gold reading in every 1/rate, each gold item once per reader"
        stats = ok(client.get(f"/api/projects/{pid}/statistics", headers=w.h("manager")))
        assert stats["gold_accuracy"] == {"junior": 1.0}


def test_competence_routing(tmp_path: Path, store_root: Path) -> None:
    url = f"sqlite:///{tmp_path / 'route.db'}"
    with make_client(url) as client:
        w = build_world(client, url, store_root, readers=1, verification=0, n_items=2)
        pid = w.project_id
        members = ok(client.get(f"/api/projects/{pid}/members", headers=w.h("manager")))
        mid = next(m["id"] for m in members if m["username"] == "junior")
        ok(client.patch(f"/api/projects/{pid}/members/{mid}", headers=w.h("manager"),
                        json={"competences": [{"modality": "MR", "body_part": "BRAIN"}]}))
        assert ok(client.post(f"/api/tasks/next?project_id={pid}", headers=w.h("junior")))["task"] is None
        ok(client.patch(f"/api/projects/{pid}/members/{mid}", headers=w.h("manager"),
                        json={"competences": [{"modality": "CT", "body_part": ""}]}))
        assert ok(client.post(f"/api/tasks/next?project_id={pid}", headers=w.h("junior")))["task"] is not None


def test_expired_lease_goes_back_to_the_queue(tmp_path: Path, store_root: Path) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from annotation import queue
    from annotation.models import Task, utcnow

    url = f"sqlite:///{tmp_path / 'lease.db'}"
    with make_client(url) as client:
        w = build_world(client, url, store_root, readers=1, verification=0, n_items=1)
        pid = w.project_id
        t = ok(client.post(f"/api/tasks/next?project_id={pid}", headers=w.h("junior")))["task"]
        assert ok(client.post(f"/api/tasks/next?project_id={pid}", headers=w.h("senior")))["task"] is None
        with client.app.state.factories.writer() as db, db.begin():
            db.execute(update(Task).where(Task.id == t["id"]).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
        queue._last_release.clear()  # the sweep runs at most every 30 s per process
        s = ok(client.post(f"/api/tasks/next?project_id={pid}", headers=w.h("senior")))["task"]
        assert s is not None and s["id"] == t["id"] and s["item"]["id"] == w.items[0]
        assert client.post(f"/api/tasks/{t['id']}/submit", headers=w.h("junior"), json=reading()).status_code == 403
