"""Simulated readers at work on a live annotation service, over the REST API the viewer uses.

Each reader logs in, asks for its next task, fetches the item's instances as the viewer does
(`/api/items/{id}/instances/{n}/file`: so a simulated round is also a load test), marks the image
loaded, answers every yes/no label and outlines from the ground truth (`synth.readers`), and submits
with the simulated reading time as `active_ms` and `label_ms` (the service measures wall time
itself, from `loaded` to submit). It stops when the service hands it no task.

Accounts: `sim-<profile>-<n>`, created through the admin API, reused on a re-run (their password is
reset to a fresh random one each run, so no password is ever derived or stored), added to the
project as junior annotators. A re-run therefore submits nothing twice: readings already submitted
are not handed out again, and a task a killed run held is handed back to the same reader, who
answers it as before (the answers depend only on seed, reader, item and label).
"""
from __future__ import annotations

import math
import secrets
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from synth.reader_truth import QUALITY, ItemLabelTruth, ItemTruth, label_truth
from synth.readers import ReaderSpec, item_reading, quality_answer, reading_rng

#: Box labels outline the yes/no label named by their id without this suffix (`nodule_box` -> `nodule`),
#: as in include/annotation/schemas (`regions:`); a schema may say otherwise through `regions`.
BOX_SUFFIX = "_box"
SKIP_NO_TRUTH = "simulated reader: no ground truth for this item"
#: Asks for a task again this many times, EMPTY_BACKOFF_S doubling, when the service answers "no task"
#: while open slots remain (some may be ones this reader already read: then the queue is empty).
EMPTY_RETRIES = 4
EMPTY_BACKOFF_S = 0.2


class ServiceError(RuntimeError):
    """The service answered something the simulator cannot go on from (names the call and status)."""


def _check(r: httpx.Response, *codes: int) -> Any:
    if r.status_code not in (codes or (200,)):
        raise ServiceError(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:300]}")
    return r.json() if r.content and r.headers.get("content-type", "").startswith("application/json") else None


@dataclass
class Latencies:
    """Seconds per call kind (next_task, frame, submit, ...), from all readers (thread-safe)."""

    calls: dict[str, list[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def timed(self, kind: str, fn: Callable[[], httpx.Response]) -> httpx.Response:
        start = time.perf_counter()
        r = fn()
        with self._lock:
            self.calls.setdefault(kind, []).append(time.perf_counter() - start)
        return r

    def percentile(self, kind: str, q: float) -> float | None:
        values = sorted(self.calls.get(kind, []))
        if not values:
            return None
        return values[min(len(values) - 1, max(0, math.ceil(q / 100 * len(values)) - 1))]


@dataclass
class ReaderSummary:
    username: str
    profile: str
    tasks_done: int = 0
    skipped: int = 0
    seconds: float = 0.0  # simulated reading time submitted
    wall_s: float = 0.0
    empty_answers: int = 0  # "no task" answers while open slots remained (asked again)

    def to_json(self) -> dict[str, Any]:
        return {"username": self.username, "profile": self.profile, "tasks_done": self.tasks_done,
                "skipped": self.skipped, "seconds": round(self.seconds, 1), "wall_s": round(self.wall_s, 2),
                "empty_answers": self.empty_answers}


def _client(url: str, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url, headers=headers, timeout=120)


def login(url: str, username: str, password: str) -> str:
    with _client(url) as c:
        return _check(c.post("/api/auth/login", json={"username": username, "password": password}))["token"]


def resolve_project(c: httpx.Client, project: str) -> dict[str, Any]:
    """The project by id or by name (as the admin sees the list)."""
    projects = _check(c.get("/api/projects"))
    for p in projects:
        if str(p["id"]) == project or p["name"] == project:
            return p
    raise ServiceError(f"no project {project!r} on the service (known: {', '.join(p['name'] for p in projects)})")


def enrol(admin: httpx.Client, project_id: int, readers: list[ReaderSpec]) -> dict[str, str]:
    """Reader accounts (created, or reused with a fresh password) and their annotator membership;
    returns username -> password for this run."""
    users = {u["username"]: u for u in _check(admin.get("/api/users"))}
    members = {(m["user_id"], m["role"]) for m in _check(admin.get(f"/api/projects/{project_id}/members"))}
    passwords = {}
    for reader in readers:
        password = secrets.token_urlsafe(24)
        user = users.get(reader.username)
        if user is None:
            user = _check(admin.post("/api/users", json={
                "username": reader.username, "password": password,
                "display_name": f"simulated {reader.profile.name} reader"}), 201)
        else:
            if user.get("is_service"):
                raise ServiceError(f"{reader.username} is a service account, not a simulated reader")
            _check(admin.patch(f"/api/users/{user['id']}", json={"password": password, "is_active": True}))
        if (user["id"], "annotator") not in members:
            _check(admin.post(f"/api/projects/{project_id}/members",
                              json={"user_id": user["id"], "role": "annotator", "level": "junior"}), 201)
        passwords[reader.username] = password
    return passwords


def submission(task: Mapping[str, Any], reader: ReaderSpec, seed: int,
               truth: ItemTruth) -> tuple[dict[str, Any], float] | None:
    """The submit body of one task and its simulated seconds: every boolean label answered, a box
    ROI per outlined region for the schema's box label of each label answered yes, and in a
    quality-review project the decision. None: the truth lacks what the task asks (no quality truth)."""
    item = task["item"]
    definition = (task.get("schema_version") or {}).get("definition") or {"labels": []}
    kinds = {lab["id"]: lab["kind"] for lab in definition["labels"]}
    booleans = [k for k, kind in kinds.items() if kind == "boolean"]
    box_of = {k[: -len(BOX_SUFFIX)]: k for k, kind in kinds.items() if kind == "box" and k.endswith(BOX_SUFFIX)}
    instances = item["instances"]
    uids = [i["sop_instance_uid"] for i in instances]
    grid = (instances[0]["columns"], instances[0]["rows"]) if instances else None
    placed = {label: label_truth(t, uids) for label, t in truth.items() if isinstance(t, ItemLabelTruth)}
    answers = item_reading(reader.profile, reader.username, seed, item["external_id"], placed, booleans, grid,
                           len(instances))
    labels, rois, label_ms = [], [], {}
    for label, a in answers.items():
        labels.append({"label": label, "value": a.value, "confidence": a.confidence})
        label_ms[label] = int(a.seconds * 1000)
        if label in box_of:
            for b in a.boxes:
                if b.instance < len(instances) and b.frame < instances[b.instance]["frames"]:
                    rois.append({"label": box_of[label], "kind": "box", "instance": b.instance, "frame": b.frame,
                                 "points": b.corners()})
    seconds = sum(a.seconds for a in answers.values())
    body: dict[str, Any] = {"labels": labels, "rois": rois}
    if task.get("project_kind") == "quality_review":
        if QUALITY not in truth:
            return None
        q = quality_answer(reader.profile, truth[QUALITY], reading_rng(seed, reader.username, item["external_id"], QUALITY))
        body["quality"] = {"decision": q.decision, "reason": q.reason}
        seconds += q.seconds
    return {**body, "active_ms": int(seconds * 1000), "idle_ms": 0, "label_ms": label_ms}, seconds


def work_queue(url: str, token: str, project_id: int, reader: ReaderSpec, seed: int,
               truth: Mapping[str, ItemTruth], *, latencies: Latencies, fetch: str = "all",
               time_scale: float = 0.0, progress: Callable[[str], None] | None = None) -> ReaderSummary:
    """One reader's queue, to the end. `fetch`: the instances fetched per task (`all` as the viewer's
    stack does, `first`, `none`); `time_scale`: the share of the simulated reading time actually
    waited (0: none) before submitting."""
    summary = ReaderSummary(reader.username, reader.profile.name)
    start = time.perf_counter()
    with _client(url, token) as c:
        empty = 0
        while True:
            out = _check(latencies.timed("next_task", lambda: c.post("/api/tasks/next",
                                                                        params={"project_id": project_id})))
            task = out["task"]
            if task is None and out["remaining"] > 0 and empty < EMPTY_RETRIES:
                # PostgreSQL: a concurrent reader's next-task can hold (not claim) the last slot meant
                # for us for a few milliseconds; ask again before calling the queue empty.
                time.sleep(EMPTY_BACKOFF_S * 2 ** empty)
                empty += 1
                summary.empty_answers += 1
                continue
            if task is None:
                break
            empty = 0
            item = task["item"]
            n = len(item["instances"]) if fetch == "all" else min(1, len(item["instances"])) if fetch == "first" else 0
            for position in range(n):
                _check(latencies.timed("frame", lambda p=position: c.get(f"/api/items/{item['id']}/instances/{p}/file")))
            if task["loaded_at"] is None:
                _check(latencies.timed("loaded", lambda: c.post(f"/api/tasks/{task['id']}/loaded")))
            item_truth = truth.get(item["external_id"])
            made = submission(task, reader, seed, item_truth) if task["kind"] == "annotate" and item_truth else None
            if made is None:
                _check(latencies.timed("skip", lambda: c.post(f"/api/tasks/{task['id']}/skip",
                                                              json={"reason": SKIP_NO_TRUTH})))
                summary.skipped += 1
                continue
            body, seconds = made
            if time_scale > 0:
                time.sleep(seconds * time_scale)
            _check(latencies.timed("submit", lambda: c.post(f"/api/tasks/{task['id']}/submit", json=body)))
            summary.tasks_done += 1
            summary.seconds += seconds
            if progress is not None:
                progress(f"{reader.username}: task {task['id']} (item {item['external_id']}) submitted, "
                         f"{out['remaining']} open slots before it")
    summary.wall_s = time.perf_counter() - start
    return summary


@dataclass
class SimulationResult:
    project_id: int
    readers: list[ReaderSummary]
    latencies: Latencies
    wall_s: float

    def to_json(self) -> dict[str, Any]:
        p95 = {k: round(v * 1000, 1) for k in sorted(self.latencies.calls)
               if (v := self.latencies.percentile(k, 95)) is not None}
        return {"project_id": self.project_id, "wall_s": round(self.wall_s, 2),
                "tasks_done": sum(r.tasks_done for r in self.readers),
                "readers": {r.username: r.to_json() for r in self.readers},
                "calls": {k: len(v) for k, v in sorted(self.latencies.calls.items())}, "p95_ms": p95}


def simulate(url: str, project: str, readers: list[ReaderSpec], seed: int,
             truth: Mapping[str, ItemTruth], *, admin_token: str, concurrency: int | None = None,
             fetch: str = "all", time_scale: float = 0.0,
             progress: Callable[[str], None] | None = None) -> SimulationResult:
    """Enrol `readers` in `project` and let them work their queues, `concurrency` at a time (default:
    all at once), until every queue is empty."""
    url = url.rstrip("/")
    say = progress or (lambda message: print(message, file=sys.stderr))
    with _client(url, admin_token) as admin:
        project_id = resolve_project(admin, project)["id"]
        passwords = enrol(admin, project_id, readers)
    latencies = Latencies()
    start = time.perf_counter()

    def one(reader: ReaderSpec) -> ReaderSummary:
        token = login(url, reader.username, passwords[reader.username])
        done = work_queue(url, token, project_id, reader, seed, truth, latencies=latencies, fetch=fetch,
                          time_scale=time_scale, progress=progress)
        say(f"{reader.username} ({reader.profile.name}): queue empty after {done.tasks_done} readings")
        return done

    with ThreadPoolExecutor(max_workers=max(1, concurrency or len(readers))) as pool:
        summaries = list(pool.map(one, readers))
    return SimulationResult(project_id, summaries, latencies, time.perf_counter() - start)
