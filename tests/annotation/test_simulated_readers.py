"""Simulated readers (`curate annotators simulate`) against a real service process: five readers
complete a round of 20 items, the export holds every reading, the round completes, a re-run submits
nothing, and a simulator killed mid-task leaves only whole readings behind."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from annotation.admin import create_admin
from annotation.models import Annotation, Task
from tests.annotation.conftest import ROOT, series_uris
from tests.annotation.world import PASSWORD, ok

SCHEMA = {
    "instructions": "Nodule and effusion, yes/no; box each nodule.",
    "labels": [
        {"id": "nodule", "name": "Nodule", "kind": "boolean"},
        {"id": "effusion", "name": "Effusion", "kind": "boolean"},
        {"id": "nodule_box", "name": "Nodule region", "kind": "box"},
    ],
}
N_ITEMS = 20
READERS = "careful:3,random:1,flat:1"
K = 5


def _round(server, store_root: Path, tmp_path: Path) -> tuple[dict[str, str], int, Path]:
    """Admin, a project with the schema, a round of N_ITEMS with K readers each, and the truth file."""
    create_admin(server.database_url, "admin", PASSWORD)
    admin = {"Authorization": "Bearer " + ok(httpx.post(server.url + "/api/auth/login",
                                                         json={"username": "admin", "password": PASSWORD}))["token"]}
    with httpx.Client(base_url=server.url, headers=admin, timeout=60) as c:
        project = ok(c.post("/api/projects", json={"name": "sim-chest", "readers_per_item": K, "schema": SCHEMA}), 201)
        items = [{"external_id": f"series-{n:02d}", "uris": series_uris(store_root, n % 6), "modality": "CT",
                  "body_part": "CHEST"} for n in range(N_ITEMS)]
        made = ok(c.post(f"/api/projects/{project['id']}/rounds", json={
            "name": "sim-round", "readers_per_item": K, "items": items}), 201)
    truth = {f"series-{n:02d}": {"nodule": {"value": n % 2 == 0, "boxes": [{"box": [20, 24, 12, 10], "instance": 1}]
                                            if n % 2 == 0 else []},
                                 "effusion": {"value": n % 3 == 0, "boxes": []}} for n in range(N_ITEMS)}
    path = tmp_path / "truth.json"
    path.write_text(json.dumps(truth))
    return admin, made["round"]["number"], path


def _simulate(server, project: str, truth: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "curate.main", "annotators", "simulate", "--url", server.url, "--project", project,
         "--readers", READERS, "--seed", "3", "--truth-json", str(truth), "--admin-user", "admin",
         "--admin-password-stdin", "--json", *extra],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run(server, truth: Path, *extra: str) -> dict[str, Any]:
    return _run_project(server, "sim-chest", truth, *extra)


def _run_project(server, project: str, truth: Path, *extra: str) -> dict[str, Any]:
    proc = _simulate(server, project, truth, *extra)
    out, err = proc.communicate(PASSWORD + "\n", timeout=120)
    assert proc.returncode == 0, err[-2000:]
    return json.loads(out)


def _export(server, admin: dict[str, str]) -> list[dict[str, Any]]:
    return ok(httpx.get(server.url + "/api/projects/1/export/json", headers=admin, timeout=60))["readings"]


def _whole(reading: dict[str, Any]) -> bool:
    return (reading["status"] == "submitted" and sorted(lv["label"] for lv in reading["labels"]) == ["effusion", "nodule"]
            and reading["timing"]["active_ms"] > 0
            and all(r["label"] == "nodule_box" for r in reading["rois"])
            and (not reading["rois"] or any(lv["label"] == "nodule" and lv["value"] for lv in reading["labels"])))


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, live_server_factory):
    """The service process on SQLite or PostgreSQL (where next-task claims rows with SKIP LOCKED)."""
    return live_server_factory(request.getfixturevalue("fresh_postgres_url") if request.param == "postgresql" else None)


def test_five_simulated_readers_complete_a_round(server, store_root: Path, tmp_path: Path) -> None:
    admin, number, truth = _round(server, store_root, tmp_path)
    summary = _run(server, truth)
    assert summary["tasks_done"] == N_ITEMS * K
    assert {r["profile"]: r["tasks_done"] for r in summary["readers"].values()} == {
        "careful": N_ITEMS, "random": N_ITEMS, "flat": N_ITEMS}
    assert summary["calls"]["frame"] == N_ITEMS * K * 3  # every instance fetched, as the viewer does
    readings = _export(server, admin)
    assert len(readings) == N_ITEMS * K and all(_whole(r) for r in readings)
    assert len({(r["annotator"], r["item"]["external_id"]) for r in readings}) == N_ITEMS * K
    by_reader: dict[str, list[dict]] = {}
    for r in readings:
        by_reader.setdefault(r["annotator"], []).append(r)
    flat = {(lv["value"], lv["confidence"]) for r in by_reader["sim-flat-1"] for lv in r["labels"]}
    assert flat == {(False, 60)}
    careful_hits = sum(lv["value"] == (int(r["item"]["external_id"][-2:]) % 2 == 0)
                       for name in ("sim-careful-1", "sim-careful-2", "sim-careful-3")
                       for r in by_reader[name] for lv in r["labels"] if lv["label"] == "nodule")
    assert careful_hits >= 0.75 * 3 * N_ITEMS
    boxes = [roi for r in by_reader["sim-careful-1"] for roi in r["rois"]]
    assert boxes and all(roi["instance"] == 1 for roi in boxes)
    status = ok(httpx.get(f"{server.url}/api/projects/1/rounds/{number}", headers=admin))
    assert status["state"] == "complete" and status["complete_items"] == N_ITEMS
    again = _run(server, truth)  # accounts reused, nothing read twice
    assert again["tasks_done"] == 0 and set(again["readers"]) == set(summary["readers"])
    assert len(_export(server, admin)) == N_ITEMS * K
    users = ok(httpx.get(server.url + "/api/users", headers=admin))
    assert sum(u["username"].startswith("sim-") for u in users) == 5


def test_killed_reader_leaves_no_half_reading(live_server_factory, store_root: Path, tmp_path: Path) -> None:
    """SQLite only, for the suite's time: the submit is one transaction on both databases."""
    server = live_server_factory()
    admin, number, truth = _round(server, store_root, tmp_path)
    # careful readers take ~50 simulated seconds per item: at 1 %, half a second between load and submit
    proc = _simulate(server, "1", truth, "--time-scale", "0.01", "--quiet", "--fetch", "first")
    proc.stdin.write(PASSWORD + "\n")
    proc.stdin.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        submitted = ok(httpx.get(f"{server.url}/api/projects/1/rounds/{number}", headers=admin))["readings_submitted"]
        if submitted >= 10:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    engine = create_engine(server.database_url)
    with Session(engine) as s:
        tasks = s.scalars(select(Task).where(Task.project_id == 1)).all()
        annotated = set(s.scalars(select(Annotation.task_id)))
    engine.dispose()
    held = [t for t in tasks if t.status == "assigned"]
    done = [t for t in tasks if t.status == "submitted"]
    assert held, "the kill should catch readers in the middle of a task"
    assert 10 <= len(done) < N_ITEMS * K
    assert annotated == {t.id for t in done}  # a task is submitted with its annotation, or has none
    readings = _export(server, admin)
    assert len(readings) == len(done) and all(_whole(r) for r in readings)
    summary = _run(server, truth, "--fetch", "none")  # the readers come back to the tasks they held
    assert summary["tasks_done"] == N_ITEMS * K - len(done)
    readings = _export(server, admin)
    assert len(readings) == N_ITEMS * K and all(_whole(r) for r in readings)
    assert ok(httpx.get(f"{server.url}/api/projects/1/rounds/{number}", headers=admin))["state"] == "complete"


def test_simulated_quality_review(live_server_factory, store_root: Path, tmp_path: Path) -> None:
    """A quality-review round: every reader decides approve / exclude / quarantine, with the reason the
    service requires; the straight-liner approves everything."""
    server = live_server_factory()
    create_admin(server.database_url, "admin", PASSWORD)
    admin = {"Authorization": "Bearer " + ok(httpx.post(server.url + "/api/auth/login",
                                                         json={"username": "admin", "password": PASSWORD}))["token"]}
    items = [{"external_id": f"qr-{n}", "uris": series_uris(store_root, n), "modality": "CT",
              "context": {"quality": {"decision": "review", "score": 0.4, "reason": "noise"}}} for n in range(6)]
    with httpx.Client(base_url=server.url, headers=admin, timeout=60) as c:
        project = ok(c.post("/api/projects", json={"name": "qr", "kind": "quality_review", "readers_per_item": K}), 201)
        ok(c.post(f"/api/projects/{project['id']}/rounds", json={"name": "qr-1", "readers_per_item": K, "items": items}), 201)
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps({f"qr-{n}": {"quality": {"decision": "exclude", "reason": "ghosting (severity 4)"}
                                             if n % 2 else {"decision": "approve"}} for n in range(6)}))
    summary = _run_project(server, "qr", truth, "--fetch", "none")
    assert summary["tasks_done"] == 6 * K
    decisions = ok(httpx.get(f"{server.url}/api/projects/{project['id']}/export/quality", headers=admin))["decisions"]
    assert len(decisions) == 6 * K
    assert all(d["reason"] for d in decisions if d["decision"] != "approve")
    assert {d["decision"] for d in decisions if d["reader"] == "sim-flat-1"} == {"approve"}
    careful = [d for d in decisions if d["reader"].startswith("sim-careful")]
    right = sum(d["decision"] == ("exclude" if int(d["external_id"][-1]) % 2 else "approve") for d in careful)
    assert right >= 0.7 * len(careful)
