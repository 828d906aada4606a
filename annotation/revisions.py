"""Reopening a submitted reading (issue 17, point 7): its reader may change it until the round
closes; the replaced submission is kept as an AnnotationRevision so the change stays on record.

The current Annotation stays in place while the case is reopened (a round closed meanwhile keeps
it); the next submit moves it into the history and writes the new one, so exports and agreement,
which read Annotation only, always see the latest reading."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from fastapi import HTTPException, status
from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session

from annotation.models import Annotation, AnnotationRevision, Round, RoundState, Task, TaskKind, TaskStatus, utcnow


def _round_closed(db: Session, task: Task) -> bool:
    return bool(db.scalar(select(exists().where(Round.project_id == task.project_id, Round.number == task.round,
                                                Round.state == RoundState.CLOSED.value))))


def _verification_started(db: Session, task: Task) -> bool:
    """A verifier took (or finished) the check of this reading: it can no longer change under them."""
    return bool(db.scalar(select(exists().where(Task.parent_task_id == task.id, Task.kind == TaskKind.VERIFY.value,
                                                Task.status != TaskStatus.OPEN.value))))


def blocker(db: Session, task: Task) -> str | None:
    """Why this reading cannot be reopened now, or None when it can."""
    if task.kind != TaskKind.ANNOTATE.value:
        return "a verification cannot be reopened"
    if task.status == TaskStatus.CLOSED.value or _round_closed(db, task):
        return f"round {task.round} is closed"
    if task.status != TaskStatus.SUBMITTED.value:
        return f"task is {task.status}, not submitted"
    if task.decision is not None or _verification_started(db, task):
        return "the reading is already being verified"
    return None


def reopen(db: Session, task: Task) -> None:
    """Give the submitted reading back to its reader: held without a lease expiry (like a gold task, it
    blocks nobody: the item already counts the reading), reading clock restarted; an unclaimed
    verification of the old reading is withdrawn (the resubmission opens a new one)."""
    why = blocker(db, task)
    if why is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, why)
    db.execute(delete(Task).where(Task.parent_task_id == task.id, Task.kind == TaskKind.VERIFY.value,
                                  Task.status == TaskStatus.OPEN.value).execution_options(synchronize_session=False))
    task.status = TaskStatus.ASSIGNED.value
    task.lease_expires_at = None
    task.loaded_at = None


def archive_replaced(db: Session, task: Task) -> None:
    """Before a resubmission: the reading it replaces becomes a revision (no-op on a first submit)."""
    old = db.scalar(select(Annotation).where(Annotation.task_id == task.id))
    if old is None:
        return
    db.add(AnnotationRevision(task_id=task.id, schema_version_id=old.schema_version_id, labels=old.labels, rois=old.rois,
                              comment=old.comment, quality_decision=old.quality_decision, quality_reason=old.quality_reason,
                              submitted_at=task.submitted_at or old.created_at, replaced_at=utcnow(), assist=old.assist))
    db.delete(old)
    db.flush()  # the row is gone before the new reading's INSERT (one reading per task)


def history(db: Session, task_ids: Iterable[int]) -> dict[int, list[AnnotationRevision]]:
    """Replaced submissions per task, oldest first."""
    ids = list(task_ids)
    out: dict[int, list[AnnotationRevision]] = defaultdict(list)
    if ids:
        for rev in db.scalars(select(AnnotationRevision).where(AnnotationRevision.task_id.in_(ids))
                              .order_by(AnnotationRevision.replaced_at, AnnotationRevision.id)):
            out[rev.task_id].append(rev)
    return out


def reopenable(db: Session, tasks: list[Task]) -> set[int]:
    """Which of these tasks their reader could reopen now (for the reader's task list)."""
    candidates = [t for t in tasks if t.kind == TaskKind.ANNOTATE.value and t.status == TaskStatus.SUBMITTED.value
                  and t.decision is None]
    if not candidates:
        return set()
    closed = set(db.execute(select(Round.project_id, Round.number).where(
        Round.project_id.in_({t.project_id for t in candidates}), Round.state == RoundState.CLOSED.value)).all())
    checked = set(db.scalars(select(Task.parent_task_id).where(
        Task.parent_task_id.in_([t.id for t in candidates]), Task.kind == TaskKind.VERIFY.value,
        Task.status != TaskStatus.OPEN.value)))
    return {t.id for t in candidates if (t.project_id, t.round) not in closed and t.id not in checked}


def keep_reopened(db: Session, project_id: int, number: int) -> None:
    """A round closing while a case is reopened: the reading submitted before stands (it is still
    the task's Annotation), so the task goes back to submitted instead of closed."""
    db.execute(update(Task).where(Task.project_id == project_id, Task.round == number,
                                  Task.status == TaskStatus.ASSIGNED.value,
                                  exists().where(Annotation.task_id == Task.id))
               .values(status=TaskStatus.SUBMITTED.value, lease_expires_at=None)
               .execution_options(synchronize_session=False))
