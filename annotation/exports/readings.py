"""Collects a project's readings once, in a flat shape every exporter shares."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from annotation.models import Annotation, Item, Membership, Project, Role, SchemaVersion, Task, TaskStatus, User


@dataclass
class Reading:
    task_id: int
    item: Item
    reader: str
    reader_level: str
    kind: str
    status: str
    round: int
    verify_level: int
    decision: str | None
    schema_version: int | None
    schema_labels: dict[str, dict[str, Any]]
    is_gold: bool
    gold_score: float | None
    labels: list[dict[str, Any]] = field(default_factory=list)
    rois: list[dict[str, Any]] = field(default_factory=list)
    comment: str = ""
    quality_decision: str | None = None
    quality_reason: str | None = None
    assist: dict[str, Any] | None = None  # what the model showed and what the reader did with it
    wall_ms: int | None = None
    active_ms: int | None = None
    idle_ms: int | None = None
    label_ms: dict[str, int] = field(default_factory=dict)
    skip_reason: str | None = None
    loaded_at: datetime | None = None
    submitted_at: datetime | None = None


def collect(db: Session, project: Project, round_: int | None = None) -> list[Reading]:
    versions = {sv.id: sv for sv in db.scalars(select(SchemaVersion).where(SchemaVersion.project_id == project.id))}
    levels: dict[int, str] = {}
    for m in db.scalars(select(Membership).where(Membership.project_id == project.id)):
        if m.role == Role.REVIEWER.value:
            levels[m.user_id] = "reviewer"
        elif m.role == Role.ANNOTATOR.value:
            levels.setdefault(m.user_id, m.level or "junior")
    q = (
        select(Task, User.username, Annotation)
        .join(User, User.id == Task.assignee_id)
        .outerjoin(Annotation, Annotation.task_id == Task.id)
        .where(Task.project_id == project.id, Task.status.in_([TaskStatus.SUBMITTED.value, TaskStatus.SKIPPED.value]))
        .order_by(Task.item_id, Task.id)
    )
    if round_ is not None:
        q = q.where(Task.round == round_)
    out: list[Reading] = []
    for task, username, ann in db.execute(q).all():
        sv = versions.get(task.schema_version_id) if task.schema_version_id else None
        out.append(Reading(
            task_id=task.id, item=task.item, reader=username, reader_level=levels.get(task.assignee_id or 0, ""),
            kind=task.kind, status=task.status, round=task.round, verify_level=task.verify_level, decision=task.decision,
            schema_version=sv.version if sv else None,
            schema_labels={lab["id"]: lab for lab in (sv.definition["labels"] if sv else [])},
            is_gold=task.is_gold, gold_score=task.gold_score,
            labels=list(ann.labels) if ann else [], rois=list(ann.rois) if ann else [], comment=ann.comment if ann else "",
            quality_decision=ann.quality_decision if ann else None, quality_reason=ann.quality_reason if ann else None,
            assist=ann.assist if ann else None,
            wall_ms=task.wall_ms, active_ms=task.active_ms, idle_ms=task.idle_ms, label_ms=dict(task.label_ms or {}),
            skip_reason=task.skip_reason, loaded_at=task.loaded_at, submitted_at=task.submitted_at,
        ))
    return out
