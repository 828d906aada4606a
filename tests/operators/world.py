"""A real annotation service with the projects of a round, and a catalog of curated series whose
de-identified DICOM objects lie in the store's deid zone: what the round's operators, trigger and
DAG work against. People act through the service's REST API as they would in the viewer."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import Any

import httpx

from annotation.admin import create_admin
from curation.annotation_schema import load_schema
from curation.catalog import Catalog, StageRecord
from tests.annotation import dicomgen
from tests.annotation.conftest import LiveServer
from tests.pipeline.test_annotation_select import add_series

PASSWORD = "correct-horse-battery"
LABELS_PROJECT, REVIEW_PROJECT = "findings", "quality-review"
READERS = ("reader-a", "reader-b", "reader-c")
REVIEWER = "reviewer-q"


def ok(r: httpx.Response, code: int = 200) -> Any:
    assert r.status_code == code, f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:500]}"
    return r.json()


@dataclass
class ServiceWorld:
    """The service's URL, the admin's and every person's bearer headers, the pipeline token and project ids."""

    server: LiveServer
    token: str
    projects: dict[str, int]
    people: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def connection(self, token: str | None = None) -> str:
        """The `curate_annotation` connection as AIRFLOW_CONN_CURATE_ANNOTATION's JSON."""
        return json.dumps({"conn_type": "http", "host": self.url, "password": token or self.token})

    def read_queue(self, who: str, project: str, answer: dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]],
                   limit: int | None = None) -> int:
        """`who` takes tasks of `project` and submits `answer` (or `answer(task)`) until the queue is
        empty (or `limit`)."""
        n = 0
        with httpx.Client(base_url=self.url, headers=self.people[who], timeout=30) as c:
            while limit is None or n < limit:
                task = ok(c.post(f"/api/tasks/next?project_id={self.projects[project]}"))["task"]
                if task is None:
                    return n
                ok(c.post(f"/api/tasks/{task['id']}/submit", json=answer(task) if callable(answer) else answer))
                n += 1
        return n


def findings_answer(positive: bool = True) -> dict[str, Any]:
    """One reading of chest_findings_v1: the three yes/no findings, a nodule box when positive."""
    labels = [{"label": "opacity", "value": False, "confidence": 80},
              {"label": "effusion", "value": False, "confidence": 60},
              {"label": "nodule", "value": positive, "confidence": 80}]
    rois = [{"label": "nodule_box", "kind": "box", "instance": 0, "frame": 0,
             "points": [[10, 12], [30, 28]]}] if positive else []
    return {"labels": labels, "rois": rois, "active_ms": 6000, "idle_ms": 0,
            "label_ms": {"opacity": 2000, "effusion": 2000, "nodule": 2000}}


def exclude_answer() -> dict[str, Any]:
    return {"quality": {"decision": "exclude", "reason": "ghosting over the lungs"}}


def start_world(tmp_path: Path, database_url: str | None = None, env: dict[str, str] | None = None) -> ServiceWorld:
    """`curate annotation serve` on SQLite (or `database_url`, e.g. PostgreSQL; `env` adds the service's
    settings, e.g. its store), a labels project with chest_findings_v1, a quality-review project, three
    readers and a reviewer, and a pipeline token scoped to both projects."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    db = database_url or f"sqlite:///{tmp_path / 'annotation.db'}"
    server = LiveServer(db, tmp_path / "annotation.log", env)
    try:
        create_admin(db, "admin", PASSWORD)
        with httpx.Client(base_url=server.url, timeout=30) as c:
            login = ok(c.post("/api/auth/login", json={"username": "admin", "password": PASSWORD}))
            admin = {"Authorization": f"Bearer {login['token']}"}
            schema = load_schema("chest_findings_v1").payload
            bodies = {LABELS_PROJECT: {"name": LABELS_PROJECT, "schema": schema},
                      REVIEW_PROJECT: {"name": REVIEW_PROJECT, "kind": "quality_review"}}
            projects = {name: ok(c.post("/api/projects", headers=admin, json=body), 201)["id"]
                        for name, body in bodies.items()}
            token = ok(c.post("/api/service-tokens", headers=admin, json={
                "name": "airflow", "projects": sorted(projects.values()), "roles": ["pipeline"]}), 201)["token"]
            world = ServiceWorld(server=server, token=token, projects=projects, people={"admin": admin})
            for name in READERS + (REVIEWER,):
                user = ok(c.post("/api/users", headers=admin, json={"username": name, "password": PASSWORD}), 201)
                project = REVIEW_PROJECT if name == REVIEWER else LABELS_PROJECT
                ok(c.post(f"/api/projects/{projects[project]}/members", headers=admin,
                          json={"user_id": user["id"], "role": "annotator", "level": "senior"}), 201)
                login = ok(c.post("/api/auth/login", json={"username": name, "password": PASSWORD}))
                world.people[name] = {"Authorization": f"Bearer {login['token']}"}
        return world
    except BaseException:
        server.stop()
        raise


def curated_catalog(home: Path, n_labels: int = 3, n_review: int = 1) -> tuple[Catalog, list[int], list[int]]:
    """A catalog under `home` (CURATE_HOME's layout: catalog.sqlite, store/) with `n_labels` approved
    chest radiographs and `n_review` the quality model sent to review, each with one de-identified
    DICOM object written where its deid record says."""
    catalog = Catalog(f"sqlite:///{home / 'catalog.sqlite'}")
    labels = [add_series(catalog, n, size=(64, 64)) for n in range(n_labels)]
    review = [add_series(catalog, 100 + n, decision="review", size=(64, 64)) for n in range(n_review)]
    with catalog.session() as s:
        for record in s.query(StageRecord).filter(StageRecord.stage == "deid"):
            for i, key in enumerate(record.metrics["outputs"]):
                target = home / "store" / "deid" / key
                written = dicomgen.write_series(target.parent / "tmp", 1, seed=record.subject_id * 10 + i)[0]
                written.rename(target)
                written.parent.rmdir()
    return catalog, labels, review


class Readers(threading.Thread):
    """People reading while the pipeline waits: every `every_s`, each reader works through the queue
    of `project` with `answer` until `stop` is set."""

    def __init__(self, world: ServiceWorld, project: str, who: tuple[str, ...], answer: Any,
                 every_s: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.world, self.project, self.who, self.answer, self.every_s = world, project, who, answer, every_s
        self.stop = threading.Event()
        self.read = 0
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            for name in self.who:
                try:
                    self.read += self.world.read_queue(name, self.project, self.answer)
                except Exception as exc:  # noqa: BLE001 - reported by the test
                    self.errors.append(f"{name}: {exc}")
            time.sleep(self.every_s)
