"""Review and oversight: per-item discrepancy view, reader heatmap, progress, completion status."""
from __future__ import annotations

import statistics as pystats
from collections import defaultdict
from itertools import combinations
from typing import Any

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request, status
from sqlalchemy import select

from annotation import masks, queue
from annotation.completion import completion
from annotation.deps import CurrentUser, DB, IdPath, require
from annotation.models import Annotation, Item, Membership, Role, SchemaVersion, Task, TaskKind, TaskStatus, User
from annotation.permissions import Action
from annotation.revisions import history as revision_history
from annotation.routers.projects import get_project
from annotation.schemas import (
    CompletionOut,
    ItemDisagreement,
    KappaOut,
    ProgressOut,
    ReaderProgress,
    ReaderReading,
    ReviewOut,
    RevisionOut,
    RoiDisagreement,
    StatisticsOut,
)
from annotation.views import item_out, schema_out

router = APIRouter(tags=["review"])

IOU_THRESHOLD = 0.5  # two readers' regions of one label on one image agree at this overlap or more
IouQuery = Query(IOU_THRESHOLD, gt=0.0, le=1.0, description="regions overlapping less than this disagree")
BOOTSTRAP = 1000  # resamples of items for the kappa's confidence interval (fixed seed: same answer each time)


# --- agreement arithmetic (the service cannot import curation's agreement library) ---------------
def region_mask(roi: dict[str, Any]) -> tuple[int, int, np.ndarray]:
    """A region as (x0, y0, boolean mask over its pixel bounding box): boxes exactly, freehand outlines
    by the even-odd rule at pixel centres, masks as drawn."""
    if roi["kind"] == "mask":
        full = masks.roi_mask(roi)
        x0, y0, x1, y1 = masks.bounding_box(full) or (0, 0, 1, 1)
        return x0, y0, full[y0:y1, x0:x1]
    pts = np.asarray(roi["points"], dtype=np.float64)
    x0, y0 = int(np.floor(pts[:, 0].min())), int(np.floor(pts[:, 1].min()))
    x1, y1 = int(np.ceil(pts[:, 0].max())), int(np.ceil(pts[:, 1].max()))
    xs, ys = np.meshgrid(np.arange(x0, max(x1, x0 + 1)) + 0.5, np.arange(y0, max(y1, y0 + 1)) + 0.5)
    if roi["kind"] == "box":
        (bx0, by0), (bx1, by1) = pts.min(axis=0), pts.max(axis=0)
        return x0, y0, (xs >= bx0) & (xs < bx1) & (ys >= by0) & (ys < by1)
    inside = np.zeros(xs.shape, dtype=bool)
    for (ax, ay), (bx, by) in zip(pts, np.roll(pts, -1, axis=0)):
        crosses = (ay > ys) != (by > ys)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = ax + (ys - ay) * (bx - ax) / (by - ay)
        inside ^= crosses & (xs < at)
    return x0, y0, inside


def iou(a: dict[str, Any], b: dict[str, Any]) -> float:
    if (a["instance"], a["frame"]) != (b["instance"], b["frame"]):
        return 0.0
    ax, ay, am = region_mask(a)
    bx, by, bm = region_mask(b)
    x0, y0 = min(ax, bx), min(ay, by)
    w = max(ax + am.shape[1], bx + bm.shape[1]) - x0
    h = max(ay + am.shape[0], by + bm.shape[0]) - y0
    ca, cb = np.zeros((h, w), dtype=bool), np.zeros((h, w), dtype=bool)
    ca[ay - y0: ay - y0 + am.shape[0], ax - x0: ax - x0 + am.shape[1]] = am
    cb[by - y0: by - y0 + bm.shape[0], bx - x0: bx - x0 + bm.shape[1]] = bm
    union = int((ca | cb).sum())
    return int((ca & cb).sum()) / union if union else 0.0


def roi_disagreements(readings: dict[str, list[dict[str, Any]]], threshold: float) -> list[RoiDisagreement]:
    """Per pair of readers and region label: regions matched greedily by overlap; a match under the
    threshold is `misplaced`, a region the other reader did not draw is `missing` (for them)."""
    out: list[RoiDisagreement] = []
    for ra, rb in combinations(sorted(readings), 2):
        for label in sorted({r["label"] for r in readings[ra] + readings[rb]}):
            a = [r for r in readings[ra] if r["label"] == label]
            b = [r for r in readings[rb] if r["label"] == label]
            pairs = sorted(((iou(x, y), i, j) for i, x in enumerate(a) for j, y in enumerate(b)), reverse=True)
            used_a, used_b = set(), set()
            for overlap, i, j in pairs:
                if overlap <= 0 or i in used_a or j in used_b:
                    continue
                used_a.add(i)
                used_b.add(j)
                if overlap < threshold:
                    out.append(RoiDisagreement(label=label, kind="misplaced", readers=[ra, rb], instance=a[i]["instance"],
                                               frame=a[i]["frame"], iou=round(overlap, 4)))
            for i, x in enumerate(a):
                if i not in used_a:
                    out.append(RoiDisagreement(label=label, kind="missing", readers=[ra, rb], drawn_by=ra, missing_for=rb,
                                               instance=x["instance"], frame=x["frame"], iou=0.0))
            for j, y in enumerate(b):
                if j not in used_b:
                    out.append(RoiDisagreement(label=label, kind="missing", readers=[ra, rb], drawn_by=rb, missing_for=ra,
                                               instance=y["instance"], frame=y["frame"], iou=0.0))
    return out


def fleiss_kappa(counts: np.ndarray) -> tuple[float | None, float]:
    """Fleiss' kappa and the raw agreement (mean share of agreeing rater pairs per item) of an
    items x categories table of counts with the same number of raters per item (Fleiss 1971)."""
    counts = np.asarray(counts, dtype=np.float64)
    n = counts.sum(axis=1)[0]
    per_item = ((counts ** 2).sum(axis=1) - n) / (n * (n - 1))
    observed = float(per_item.mean())
    p = counts.sum(axis=0) / counts.sum()
    expected = float((p ** 2).sum())
    if expected >= 1.0:
        return None, observed  # every answer in one category: chance agreement is total, kappa undefined
    return (observed - expected) / (1 - expected), observed


def kappa_with_ci(counts: np.ndarray, seed: int = 0) -> tuple[float | None, float, float | None, float | None]:
    """(kappa, raw agreement, 2.5th and 97.5th percentile of kappa over items resampled with replacement)."""
    kappa, raw = fleiss_kappa(counts)
    if kappa is None or len(counts) < 2:
        return kappa, raw, None, None
    rng = np.random.default_rng(seed)
    draws = []
    for idx in rng.integers(0, len(counts), size=(BOOTSTRAP, len(counts))):
        k, _ = fleiss_kappa(counts[idx])
        draws.append(1.0 if k is None else k)  # a resample in one category agrees perfectly
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return kappa, raw, float(lo), float(hi)


def label_disagreements(readings: list[list[dict[str, Any]]]) -> list[str]:
    values: dict[str, set[bool]] = defaultdict(set)
    counts: dict[str, int] = defaultdict(int)
    for labels in readings:
        for lv in labels:
            values[lv["label"]].add(bool(lv["value"]))
            counts[lv["label"]] += 1
    return sorted(k for k, v in values.items() if len(v) > 1 or counts[k] < len(readings))


def _levels(db, project_id: IdPath) -> dict[int, str]:
    out: dict[int, str] = {}
    for m in db.scalars(select(Membership).where(Membership.project_id == project_id,
                                                 Membership.role.in_([Role.ANNOTATOR.value, Role.REVIEWER.value]))):
        out[m.user_id] = "reviewer" if m.role == Role.REVIEWER.value else (m.level or "junior")
    return out


@router.get("/api/items/{item_id}/review", response_model=ReviewOut)
def review_item(item_id: IdPath, request: Request, db: DB, user: CurrentUser, iou_threshold: float = IouQuery) -> ReviewOut:
    """Every reader's labels and ROIs for one item side by side, with the labels and regions they disagree on."""
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
    replaced = revision_history(db, [t.id for t, _, _ in rows])  # reopened and changed: the history
    readings = [
        ReaderReading(task_id=t.id, reader=name, level=levels.get(t.assignee_id or 0), kind=t.kind, status=t.status,
                      verify_level=t.verify_level, decision=t.decision, labels=a.labels if a else [],
                      rois=a.rois if a else [], wall_ms=t.wall_ms, active_ms=t.active_ms, skip_reason=t.skip_reason,
                      revisions=[RevisionOut.model_validate(rev) for rev in replaced.get(t.id, [])])
        for t, name, a in rows
    ]
    readers = [r for r in readings if r.kind == TaskKind.ANNOTATE.value and r.status == TaskStatus.SUBMITTED.value]
    sv = queue.current_schema(db, project)
    return ReviewOut(item=item_out(item, staff=True, cache=request.app.state.instances), schema_version=schema_out(sv),
                     readings=readings, disagreements=label_disagreements([r.labels for r in readers]),
                     roi_disagreements=roi_disagreements({r.reader: r.rois for r in readers}, iou_threshold),
                     iou_threshold=iou_threshold)


@router.get("/api/projects/{project_id}/statistics", response_model=StatisticsOut)
def project_statistics(project_id: IdPath, db: DB, user: CurrentUser, iou_threshold: float = IouQuery) -> StatisticsOut:
    """The reader-agreement heatmap data (labels x readers, readers x readers), Fleiss' kappa with its
    confidence interval per label, and every item's disagreement (labels and regions)."""
    require(db, user, project_id, Action.STATISTICS)
    get_project(db, project_id)
    rows = db.execute(
        select(Task.item_id, Task.is_gold, Task.gold_score, User.username, Annotation.labels, Annotation.rois)
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
    per_item: dict[int, dict[str, tuple[list, list]]] = defaultdict(dict)
    for item_id, is_gold, score, name, labels, rois in rows:
        if not is_gold:
            per_item[item_id][name] = (labels or [], rois or [])
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
                         gold_accuracy={k: round(sum(v) / len(v), 4) for k, v in gold.items()},
                         kappa=[_kappa(lab, per_item) for lab in label_ids],
                         items=_item_disagreements(db, per_item, iou_threshold), iou_threshold=iou_threshold)


def _kappa(label: str, per_item: dict[int, dict[str, tuple[list, list]]]) -> KappaOut:
    """Over the items where the usual number of readers (the most common count, at least 2) answered the label."""
    answers = []
    for readings in per_item.values():
        given = [lv["value"] for labels, _ in readings.values() for lv in labels if lv["label"] == label]
        if len(given) >= 2:
            answers.append(given)
    if not answers:
        return KappaOut(label=label, items=0, readers=0)
    raters = max(set(len(a) for a in answers), key=lambda n: (sum(len(a) == n for a in answers), n))
    table = np.array([[sum(bool(v) for v in a), sum(not v for v in a)] for a in answers if len(a) == raters])
    kappa, raw, lo, hi = kappa_with_ci(table)
    r4 = lambda v: None if v is None else round(v, 4)  # noqa: E731
    return KappaOut(label=label, items=len(table), readers=raters, raw_agreement=r4(raw), kappa=r4(kappa),
                    ci_low=r4(lo), ci_high=r4(hi))


def _item_disagreements(db, per_item: dict[int, dict[str, tuple[list, list]]], threshold: float) -> list[ItemDisagreement]:
    names = dict(db.execute(select(Item.id, Item.external_id).where(Item.id.in_(list(per_item)))).all()) if per_item else {}
    out = []
    for item_id, readings in sorted(per_item.items()):
        labels = label_disagreements([labels for labels, _ in readings.values()]) if len(readings) > 1 else []
        rois = roi_disagreements({name: r for name, (_, r) in readings.items()}, threshold)
        out.append(ItemDisagreement(item_id=item_id, external_id=names.get(item_id, ""), readings=len(readings),
                                    label_disagreements=labels, roi_disagreements=len(rois),
                                    roi_missing=sum(d.kind == "missing" for d in rois),
                                    roi_misplaced=sum(d.kind == "misplaced" for d in rois),
                                    disagreement=len(labels) + len(rois)))
    return out


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
