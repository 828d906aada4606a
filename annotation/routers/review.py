"""Review and oversight: per-item discrepancy view, reader heatmap, progress, completion status."""
from __future__ import annotations

import statistics as pystats
from collections import defaultdict
from itertools import combinations

from fastapi import APIRouter, HTTPException, Query, status
from sqlalchemy import select

from annotation import queue
from annotation.completion import completion
from annotation.deps import CurrentUser, DB, IdPath, require
from annotation.models import Annotation, Item, Membership, Role, SchemaVersion, Task, TaskKind, TaskStatus, User
from annotation.permissions import Action
from annotation.routers.projects import get_project
from annotation.schemas import CompletionOut, ProgressOut, ReaderProgress, ReaderReading, ReviewOut, StatisticsOut
from annotation.views import item_out, schema_out

router = APIRouter(tags=["review"])


def _levels(db, project_id: IdPath) -> dict[int, str]:
    out: dict[int, str] = {}
    for m in db.scalars(select(Membership).where(Membership.project_id == project_id,
                                                 Membership.role.in_([Role.ANNOTATOR.value, Role.REVIEWER.value]))):
        out[m.user_id] = "reviewer" if m.role == Role.REVIEWER.value else (m.level or "junior")
    return out


@router.get("/api/items/{item_id}/review", response_model=ReviewOut)
def review_item(item_id: IdPath, db: DB, user: CurrentUser) -> ReviewOut:
    """Every reader's labels and ROIs for one item side by side, with the labels they disagree on."""
    item = db.get(Item, item_id)
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such item")
    require(db, user, item.project_id, Action.REVIEW)
    project = get_project(db, item.project_id)
    levels = _levels(db, item.project_id)
    rows = db.execute(
        select(Task, User.username, Annotation)
        .join(User, User.id == Task.assignee_id)
        .outerjoin(Annotation, Annotation.task_id == Task.id)
        .where(Task.item_id == item.id, Task.status.in_([TaskStatus.SUBMITTED.value, TaskStatus.SKIPPED.value]))
        .order_by(Task.kind, Task.id)
    ).all()
    readings = [
        ReaderReading(task_id=t.id, reader=name, level=levels.get(t.assignee_id or 0), kind=t.kind, status=t.status,
                      verify_level=t.verify_level, decision=t.decision, labels=a.labels if a else [],
                      rois=a.rois if a else [], wall_ms=t.wall_ms, active_ms=t.active_ms, skip_reason=t.skip_reason)
        for t, name, a in rows
    ]
    values: dict[str, set[bool]] = defaultdict(set)
    counts: dict[str, int] = defaultdict(int)
    readers = [r for r in readings if r.kind == TaskKind.ANNOTATE.value and r.status == TaskStatus.SUBMITTED.value]
    for r in readers:
        for lv in r.labels:
            values[lv["label"]].add(bool(lv["value"]))
            counts[lv["label"]] += 1
    disagreements = sorted(k for k, v in values.items() if len(v) > 1 or counts[k] < len(readers))
    sv = queue.current_schema(db, project)
    return ReviewOut(item=item_out(item, staff=True), schema_version=schema_out(sv), readings=readings,
                     disagreements=disagreements)


@router.get("/api/projects/{project_id}/statistics", response_model=StatisticsOut)
def project_statistics(project_id: IdPath, db: DB, user: CurrentUser) -> StatisticsOut:
    """The reader-agreement heatmap data: labels x readers, and readers x readers agreement."""
    require(db, user, project_id, Action.STATISTICS)
    get_project(db, project_id)
    rows = db.execute(
        select(Task.item_id, Task.is_gold, Task.gold_score, User.username, Annotation.labels)
        .join(User, User.id == Task.assignee_id).join(Annotation, Annotation.task_id == Task.id)
        .where(Task.project_id == project_id, Task.kind == TaskKind.ANNOTATE.value, Task.status == TaskStatus.SUBMITTED.value)
    ).all()
    label_ids: list[str] = []
    for sv in db.scalars(select(SchemaVersion).where(SchemaVersion.project_id == project_id).order_by(SchemaVersion.version)):
        for lab in sv.definition["labels"]:
            if lab["kind"] == "boolean" and lab["id"] not in label_ids:
                label_ids.append(lab["id"])
    readers = sorted({r.username for r in rows})
    by_reader: dict[str, dict[tuple[int, str], tuple[bool, int]]] = defaultdict(dict)
    gold: dict[str, list[float]] = defaultdict(list)
    for item_id, is_gold, score, name, labels in rows:
        if is_gold and score is not None:
            gold[name].append(score)
        for lv in labels or []:
            by_reader[name][(item_id, lv["label"])] = (bool(lv["value"]), int(lv["confidence"]))
    positive, confidence = [], []
    for lab in label_ids:
        prow, crow = [], []
        for reader in readers:
            vals = [v for (_, lid), v in by_reader[reader].items() if lid == lab]
            prow.append(round(sum(v for v, _ in vals) / len(vals), 4) if vals else None)
            crow.append(round(sum(c for _, c in vals) / len(vals), 2) if vals else None)
        positive.append(prow)
        confidence.append(crow)
    agreement: list[list[float | None]] = [[None] * len(readers) for _ in readers]
    for i, j in combinations(range(len(readers)), 2):
        a, b = by_reader[readers[i]], by_reader[readers[j]]
        shared = set(a) & set(b)
        if shared:
            agreement[i][j] = agreement[j][i] = round(sum(a[k][0] == b[k][0] for k in shared) / len(shared), 4)
    for i in range(len(readers)):
        agreement[i][i] = 1.0 if by_reader[readers[i]] else None
    return StatisticsOut(labels=label_ids, readers=readers, positive_rate=positive, mean_confidence=confidence,
                         pairwise_agreement=agreement,
                         gold_accuracy={k: round(sum(v) / len(v), 4) for k, v in gold.items()})


@router.get("/api/projects/{project_id}/progress", response_model=ProgressOut)
def project_progress(project_id: IdPath, db: DB, user: CurrentUser) -> ProgressOut:
    require(db, user, project_id, Action.PROGRESS)
    get_project(db, project_id)
    items = db.scalars(select(Item).where(Item.project_id == project_id, Item.is_gold.is_(False))).all()
    tasks = db.execute(
        select(Task.status, Task.assignee_id, Task.wall_ms, Task.active_ms, User.username)
        .outerjoin(User, User.id == Task.assignee_id).where(Task.project_id == project_id)
    ).all()
    by_status: dict[str, int] = defaultdict(int)
    per: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for st, _, wall, active, name in tasks:
        by_status[st] += 1
        if name is None:
            continue
        per[name][st].append(1)
        if st == TaskStatus.SUBMITTED.value:
            if wall is not None:
                per[name]["wall"].append(wall / 1000)
            if active is not None:
                per[name]["active"].append(active / 1000)
    readers = [
        ReaderProgress(reader=name, submitted=len(d[TaskStatus.SUBMITTED.value]), skipped=len(d[TaskStatus.SKIPPED.value]),
                       assigned=len(d[TaskStatus.ASSIGNED.value]),
                       median_wall_s=round(pystats.median(d["wall"]), 2) if d["wall"] else None,
                       median_active_s=round(pystats.median(d["active"]), 2) if d["active"] else None)
        for name, d in sorted(per.items())
    ]
    return ProgressOut(items=len(items), complete_items=sum(1 for i in items if i.completed_at is not None),
                       tasks_open=by_status[TaskStatus.OPEN.value], tasks_assigned=by_status[TaskStatus.ASSIGNED.value],
                       tasks_submitted=by_status[TaskStatus.SUBMITTED.value], tasks_skipped=by_status[TaskStatus.SKIPPED.value],
                       readers=readers)


@router.get("/api/projects/{project_id}/completion", response_model=CompletionOut)
def project_completion(project_id: IdPath, db: DB, user: CurrentUser,
                       round: int | None = Query(None, ge=1, le=10_000)) -> CompletionOut:
    """For the pipeline's deferrable wait: which items and rounds are complete."""
    require(db, user, project_id, Action.COMPLETION)
    return completion(db, get_project(db, project_id), round)
