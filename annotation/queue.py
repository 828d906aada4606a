"""The reading queue: k readers per item, routing by competence, gold items at a set rate,
second-level verification by a higher-ranked reader, skip with reason, leases that expire.

Open tasks are created when an item is registered (k per item); a reader claims one with a
conditional UPDATE, so two readers never get the same slot on either database.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, delete, exists, false, func, or_, select, true, update
from sqlalchemy.orm import Session, aliased

from annotation.models import (
    Item,
    Membership,
    Project,
    Role,
    Round,
    RoundState,
    SchemaVersion,
    Task,
    TaskKind,
    TaskStatus,
    User,
    utcnow,
)
from annotation.permissions import RANK


@dataclass
class Reader:
    """A user's standing in one project, as far as the queue cares."""

    project: Project
    rank: int
    annotates: bool
    verifies: bool
    competences: list[dict[str, str]]


def current_schema(db: Session, project: Project) -> SchemaVersion | None:
    return db.scalar(
        select(SchemaVersion).where(SchemaVersion.project_id == project.id, SchemaVersion.version == project.schema_version)
    )


def required_readers(project: Project, item: Item) -> int:
    """k of an item: its round's when the round set one, else the project's."""
    return item.readers_required or project.readers_per_item


def open_tasks_for_item(db: Session, project: Project, item: Item, count: int | None = None) -> None:
    """Give a non-gold item its k open reading slots."""
    if item.is_gold:
        return
    n = required_readers(project, item) if count is None else count
    for _ in range(n):
        db.add(Task(project_id=project.id, item_id=item.id, round=item.round, kind=TaskKind.ANNOTATE.value,
                    queue_rank=-item.priority))


def adjust_readers(db: Session, project: Project, new_k: int) -> None:
    """Change k for items not yet complete: add open slots, or drop unclaimed ones."""
    items = db.scalars(
        select(Item).where(Item.project_id == project.id, Item.is_gold == false(), Item.completed_at.is_(None),
                           Item.readers_required.is_(None))  # a round's own k is not the project's to change
    ).all()
    for item in items:
        live = db.scalars(
            select(Task).where(
                Task.item_id == item.id, Task.round == item.round, Task.kind == TaskKind.ANNOTATE.value,
                Task.status.in_([TaskStatus.OPEN.value, TaskStatus.ASSIGNED.value, TaskStatus.SUBMITTED.value]),
                or_(Task.decision.is_(None), Task.decision != "rejected"),
            )
        ).all()
        if len(live) < new_k:
            open_tasks_for_item(db, project, item, new_k - len(live))
        elif len(live) > new_k:
            surplus = [t for t in live if t.status == TaskStatus.OPEN.value][: len(live) - new_k]
            for t in surplus:
                db.delete(t)


def reader_standing(db: Session, user: User, project_ids: list[int] | None) -> list[Reader]:
    q = select(Membership, Project).join(Project, Project.id == Membership.project_id).where(
        Membership.user_id == user.id, Membership.role.in_([Role.ANNOTATOR.value, Role.REVIEWER.value])
    )
    if project_ids is not None:
        q = q.where(Membership.project_id.in_(project_ids))
    standing: dict[int, Reader] = {}
    for m, p in db.execute(q.order_by(Project.id)).all():
        r = standing.setdefault(p.id, Reader(project=p, rank=0, annotates=False, verifies=False, competences=[]))
        if m.role == Role.REVIEWER.value:
            r.rank = max(r.rank, RANK["reviewer"])
            r.verifies = True
        else:
            r.rank = max(r.rank, RANK.get(m.level or "junior", 1))
            r.annotates = True
            r.competences.extend(m.competences or [])
            if m.level == "senior":
                r.verifies = True
    return list(standing.values())


def _not_seen_by(user: User, item_id_column):
    """No task of this user on the item (NOT EXISTS: an anti-join on PostgreSQL, unlike NOT IN)."""
    mine = aliased(Task)
    return ~exists().where(mine.item_id == item_id_column, mine.assignee_id == user.id)


def _competence_clause(competences: list[dict[str, str]]):
    if not competences:
        return true()
    clauses = []
    for c in competences:
        parts = []
        if c.get("modality"):
            parts.append(Item.modality == c["modality"])
        if c.get("body_part"):
            parts.append(Item.body_part == c["body_part"])
        clauses.append(and_(*parts) if parts else true())
    return or_(*clauses)


def _claim(db: Session, task_id: int, user: User, lease_minutes: int) -> bool:
    now = utcnow()
    res = db.execute(
        update(Task)
        .where(Task.id == task_id, Task.status == TaskStatus.OPEN.value, Task.assignee_id.is_(None))
        .values(assignee_id=user.id, status=TaskStatus.ASSIGNED.value, assigned_at=now,
                lease_expires_at=now + timedelta(minutes=lease_minutes))
        .execution_options(synchronize_session=False)
    )
    return res.rowcount == 1


_RELEASE_EVERY_S = 30.0
_last_release: dict[int, float] = {}
_release_lock = threading.Lock()


def release_expired(db: Session, project_ids: list[int]) -> None:
    """Leases that ran out go back to the queue (the reader left without submitting).

    Leases last hours, so a sweep per project every 30 s is enough; it keeps the UPDATE off the
    hot path of next-task.
    """
    now = time.monotonic()
    with _release_lock:
        due = [p for p in project_ids if now - _last_release.get(p, -1e9) >= _RELEASE_EVERY_S]
        for p in due:
            _last_release[p] = now
    if not due:
        return
    project_ids = due
    db.execute(
        update(Task)
        .where(Task.project_id.in_(project_ids), Task.status == TaskStatus.ASSIGNED.value,
               Task.lease_expires_at < utcnow(), Task.is_gold == false())
        .values(assignee_id=None, status=TaskStatus.OPEN.value, assigned_at=None, loaded_at=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )


def gold_rate(db: Session, project: Project) -> float:
    """The project's rate, or the largest gold share of its open rounds when that is higher."""
    share = db.scalar(select(func.max(Round.gold_share)).where(Round.project_id == project.id,
                                                              Round.state != RoundState.CLOSED.value))
    return max(project.gold_rate, share or 0.0)


def _closed_round(item_round_column, project_id_column):
    return exists().where(Round.project_id == project_id_column, Round.number == item_round_column,
                          Round.state == RoundState.CLOSED.value)


def _gold_due(db: Session, user: User, project: Project) -> bool:
    rate = gold_rate(db, project)
    if rate <= 0:
        return False
    counts = dict(
        db.execute(
            select(Task.is_gold, func.count())
            .where(Task.project_id == project.id, Task.assignee_id == user.id, Task.kind == TaskKind.ANNOTATE.value,
                   Task.status.in_([TaskStatus.SUBMITTED.value, TaskStatus.ASSIGNED.value]))
            .group_by(Task.is_gold)
        ).all()
    )
    regular, gold = counts.get(False, 0), counts.get(True, 0)
    # One gold reading per 1/rate readings in all: the (n+1)-th reading is gold when it is due.
    return math.floor((regular + gold + 1) * rate + 1e-9) > gold


def _take_gold(db: Session, user: User, reader: Reader) -> Task | None:
    project = reader.project
    item = db.scalar(
        select(Item)
        .where(Item.project_id == project.id, Item.is_gold == true(), _not_seen_by(user, Item.id),
               _competence_clause(reader.competences), ~_closed_round(Item.round, Item.project_id))
        .order_by(Item.id)
        .limit(1)
    )
    if item is None:
        return None
    now = utcnow()
    task = Task(project_id=project.id, item_id=item.id, round=item.round, kind=TaskKind.ANNOTATE.value,
                status=TaskStatus.ASSIGNED.value, assignee_id=user.id, is_gold=True,
                dedupe_key=f"g:{item.id}:{user.id}", assigned_at=now, lease_expires_at=None)
    db.add(task)
    db.flush()
    return task


def _take_verification(db: Session, user: User, reader: Reader, lease_minutes: int) -> Task | None:
    if reader.project.verification_levels <= 0 or not reader.verifies:
        return None
    mine = aliased(Task)
    read_it = exists().where(mine.item_id == Task.item_id, mine.assignee_id == user.id, mine.kind == TaskKind.ANNOTATE.value)
    candidates = db.scalars(
        select(Task)
        .where(Task.project_id == reader.project.id, Task.kind == TaskKind.VERIFY.value,
               Task.status == TaskStatus.OPEN.value, Task.min_rank < reader.rank, ~read_it)
        .order_by(Task.id)
        .limit(25)
        .with_for_update(skip_locked=True, of=Task)  # PostgreSQL: readers do not queue on one row
    ).all()
    for task in candidates:
        if user.id in (task.excluded_users or []):
            continue
        if _claim(db, task.id, user, lease_minutes):
            return task
    return None


#: Slots a next-task tries to claim before answering 'none' (each lost only to a concurrent claim).
_CLAIM_ATTEMPTS = 5


def _take_reading(db: Session, user: User, reader: Reader, lease_minutes: int) -> Task | None:
    if not reader.annotates:
        return None
    project = reader.project
    q = (
        select(Task.id)
        .where(Task.project_id == project.id, Task.kind == TaskKind.ANNOTATE.value,
               Task.status == TaskStatus.OPEN.value, _not_seen_by(user, Task.item_id))
        .order_by(Task.queue_rank, Task.id)  # tasks are made in item order: item order within a priority
        .limit(1)  # lock one slot at a time: locking several kept them from concurrent readers until commit
        .with_for_update(skip_locked=True, of=Task)  # PostgreSQL: concurrent readers take different slots
    )
    if reader.competences:
        q = q.join(Item, Item.id == Task.item_id).where(_competence_clause(reader.competences))
    tried: list[int] = []
    for _ in range(_CLAIM_ATTEMPTS):
        task_id = db.execute(q.where(Task.id.not_in(tried)) if tried else q).scalar()
        if task_id is None:
            return None
        if _claim(db, task_id, user, lease_minutes):
            return db.get(Task, task_id)
        tried.append(task_id)  # taken between the select and the claim (SQLite has no row locks)
    return None


def _held(project_ids: list[int], user: User):
    return select(Task).where(Task.project_id.in_(project_ids), Task.assignee_id == user.id,
                              Task.status == TaskStatus.ASSIGNED.value,
                              or_(Task.lease_expires_at.is_(None), Task.lease_expires_at >= utcnow()))


def next_task(db: Session, user: User, project_id: int | None, lease_minutes: int, ahead: int = 0) -> Task | None:
    """The reader's open task if any, else verification first, then gold when due, then a new reading.

    `ahead=n`: the task n places after that one, claimed now so the viewer can prefetch it; tasks in
    hand are served oldest first, so it becomes the current task once the ones before it are done."""
    readers = reader_standing(db, user, [project_id] if project_id is not None else None)
    if not readers:
        return None
    ids = [r.project.id for r in readers]
    held = db.scalars(_held(ids, user).order_by(Task.assigned_at, Task.id).limit(ahead + 1)).all()
    if len(held) > ahead:
        return held[ahead]
    release_expired(db, ids)
    task = None
    for _ in range(ahead + 1 - len(held)):
        task = _take_one(db, user, readers, lease_minutes)
        if task is None:
            return None
    return task


def _take_one(db: Session, user: User, readers: list[Reader], lease_minutes: int) -> Task | None:
    for reader in readers:
        task = _take_verification(db, user, reader, lease_minutes)
        if task is None and reader.annotates and _gold_due(db, user, reader.project):
            task = _take_gold(db, user, reader)
        if task is None:
            task = _take_reading(db, user, reader, lease_minutes)
        if task is not None:
            db.refresh(task)
            return task
    return None


def held_besides(db: Session, user: User, project_id: int | None, task_id: int | None) -> int:
    """Cases in the reader's hands other than `task_id` (one claimed ahead, one reopened)."""
    ids = [r.project.id for r in reader_standing(db, user, [project_id] if project_id is not None else None)]
    if not ids:
        return 0
    q = _held(ids, user).where(Task.kind == TaskKind.ANNOTATE.value)
    if task_id is not None:
        q = q.where(Task.id != task_id)
    return db.scalar(select(func.count()).select_from(q.subquery())) or 0


def remaining_for(db: Session, user: User, project_id: int | None) -> int:
    """Items this reader could still take a reading of: open slots on items they have not read or been
    given, within their competences ("N left": the reader's own count, not the project's open slots,
    and one per item however many readers it still needs). Verification not counted."""
    readers = reader_standing(db, user, [project_id] if project_id is not None else None)
    total = 0
    for reader in readers:
        if not reader.annotates:
            continue
        total += db.scalar(
            select(func.count(func.distinct(Task.item_id)))
            .join(Item, Item.id == Task.item_id)
            .where(Task.project_id == reader.project.id, Task.kind == TaskKind.ANNOTATE.value,
                   Task.status == TaskStatus.OPEN.value, _not_seen_by(user, Task.item_id),
                   _competence_clause(reader.competences))
        ) or 0
    return total


def reopen_slot(db: Session, task: Task) -> None:
    """Replace a skipped or rejected reading so the item still gets its k readers."""
    if task.is_gold:
        return
    if task.kind == TaskKind.ANNOTATE.value:
        db.add(Task(project_id=task.project_id, item_id=task.item_id, round=task.round, kind=TaskKind.ANNOTATE.value,
                    queue_rank=task.queue_rank))
    else:
        db.add(Task(project_id=task.project_id, item_id=task.item_id, round=task.round, kind=TaskKind.VERIFY.value,
                    parent_task_id=task.parent_task_id, verify_level=task.verify_level, min_rank=task.min_rank,
                    excluded_users=sorted(set(task.excluded_users or []) | {task.assignee_id or 0})))


def open_verification(db: Session, reading: Task, level: int, author_rank: int, excluded: list[int]) -> None:
    db.add(Task(project_id=reading.project_id, item_id=reading.item_id, round=reading.round, kind=TaskKind.VERIFY.value,
                parent_task_id=reading.id, verify_level=level, min_rank=author_rank, excluded_users=sorted(set(excluded))))


def purge_open_tasks(db: Session, item: Item) -> None:
    db.execute(delete(Task).where(Task.item_id == item.id, Task.status == TaskStatus.OPEN.value))
