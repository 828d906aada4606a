"""Rounds as first-class objects: created with their items, counted per item and per reader,
complete once every non-gold item has its readings (webhook and Airflow asset event), closed by hand
or by the pipeline at the deadline (idempotent; no reading is accepted after)."""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from fastapi import HTTPException, status
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from annotation import queue, revisions
from annotation.airflow_events import AirflowAuthError, bearer_token, post_asset_event
from annotation.completion import post_webhook
from annotation.config import Settings
from annotation.imaging import InstanceCache
from annotation.models import Item, Project, Round, RoundState, Task, TaskKind, TaskStatus, User, utcnow
from annotation.registration import register, round_of
from annotation.schemas import RoundIn, RoundItemStatus, RoundOut, RoundReaderStatus

log = logging.getLogger("annotation.rounds")


@dataclass
class RoundComplete:
    """Handed to the webhook and to Airflow after commit; ids and counts only."""

    project_id: int
    round_id: int
    round: int
    name: str
    items: int
    complete_items: int
    event: str = "round_complete"


def _naive_utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(timezone.utc).replace(tzinfo=None)


def get_round(db: Session, project_id: int, number: int) -> Round:
    rnd = round_of(db, project_id, number)
    if rnd is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such round")
    return rnd


def create(db: Session, project: Project, body: RoundIn, user: User, cache: InstanceCache) -> tuple[Round, list[int], list[int]]:
    """A new round, or the one of that name (the caller's key, e.g. a DAG run id) with any new items added."""
    rnd = db.scalar(select(Round).where(Round.project_id == project.id, Round.name == body.name))
    if rnd is None:
        number = body.number
        if number is None:
            top = max(db.scalar(select(func.max(Round.number)).where(Round.project_id == project.id)) or 0,
                      db.scalar(select(func.max(Item.round)).where(Item.project_id == project.id)) or 0)
            number = top + 1
        elif round_of(db, project.id, number) is not None:
            raise HTTPException(status.HTTP_409_CONFLICT, f"round {number} exists under another name")
        rnd = Round(project_id=project.id, number=number, name=body.name,
                    readers_per_item=body.readers_per_item or project.readers_per_item, gold_share=body.gold_share,
                    deadline=_naive_utc(body.deadline), webhook_url=body.webhook_url,
                    airflow_asset_id=body.airflow_asset_id, created_by_id=user.id, state=RoundState.OPEN.value)
        db.add(rnd)
        db.flush()
        project.current_round = max(project.current_round, number)
    elif body.number is not None and body.number != rnd.number:
        raise HTTPException(status.HTTP_409_CONFLICT, f"round '{body.name}' is round {rnd.number}, not {body.number}")
    created, existing = register(db, project, body.items, cache, rnd) if body.items else ([], [])
    return rnd, created, existing


def round_status(db: Session, project: Project, rnd: Round) -> RoundOut:
    items = db.scalars(select(Item).where(Item.project_id == project.id, Item.round == rnd.number).order_by(Item.id)).all()
    regular = [i for i in items if not i.is_gold]
    submitted: dict[int, int] = {}
    if regular:
        submitted = dict(db.execute(
            select(Task.item_id, func.count())
            .where(Task.item_id.in_([i.id for i in regular]), Task.kind == TaskKind.ANNOTATE.value,
                   Task.status == TaskStatus.SUBMITTED.value, Task.is_gold.is_(False))
            .group_by(Task.item_id)).all())
    per_item = [RoundItemStatus(item_id=i.id, external_id=i.external_id, required=queue.required_readers(project, i),
                                submitted=submitted.get(i.id, 0), complete=i.completed_at is not None,
                                completed_at=i.completed_at) for i in regular]
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for name, st, n in db.execute(
        select(User.username, Task.status, func.count()).join(User, User.id == Task.assignee_id)
        .where(Task.project_id == project.id, Task.round == rnd.number, Task.kind == TaskKind.ANNOTATE.value,
               Task.is_gold.is_(False))
        .group_by(User.username, Task.status)
    ).all():
        counts[name][st] += n
    per_reader = [RoundReaderStatus(reader=name, submitted=c[TaskStatus.SUBMITTED.value], assigned=c[TaskStatus.ASSIGNED.value],
                                    skipped=c[TaskStatus.SKIPPED.value]) for name, c in sorted(counts.items())]
    now = utcnow()
    return RoundOut(
        id=rnd.id, project_id=project.id, number=rnd.number, name=rnd.name, state=rnd.state,
        readers_per_item=rnd.readers_per_item, gold_share=rnd.gold_share, gold_items=len(items) - len(regular),
        deadline=rnd.deadline, overdue=bool(rnd.deadline and rnd.deadline < now and rnd.state != RoundState.CLOSED.value),
        webhook_url=rnd.webhook_url, airflow_asset_id=rnd.airflow_asset_id, created_at=rnd.created_at,
        completed_at=rnd.completed_at, closed_at=rnd.closed_at, items=len(regular),
        complete_items=sum(1 for s in per_item if s.complete),
        readings_required=sum(s.required for s in per_item), readings_submitted=sum(s.submitted for s in per_item),
        per_item=per_item, per_reader=per_reader,
    )


def close(db: Session, rnd: Round) -> Round:
    """Close the round: its unread slots and readings in hand are closed, so a late submit gets 409.
    Closing a closed round changes nothing.

    Lock order as in a submit (task rows, then the round row), so a close racing a submit on
    PostgreSQL waits instead of deadlocking: the reading that got its task row first is kept."""
    if rnd.state == RoundState.CLOSED.value:
        return rnd
    revisions.keep_reopened(db, rnd.project_id, rnd.number)
    db.execute(
        update(Task)
        .where(Task.project_id == rnd.project_id, Task.round == rnd.number,
               Task.status.in_([TaskStatus.OPEN.value, TaskStatus.ASSIGNED.value]))
        .values(status=TaskStatus.CLOSED.value, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    db.execute(update(Round).where(Round.id == rnd.id, Round.state != RoundState.CLOSED.value)
               .values(state=RoundState.CLOSED.value, closed_at=utcnow())
               .execution_options(synchronize_session=False))
    db.flush()
    db.refresh(rnd)
    return rnd


def mark_complete(db: Session, project_id: int, number: int) -> RoundComplete | None:
    """Open -> complete once every non-gold item of the round is complete; the conditional UPDATE
    lets exactly one request announce it."""
    # The round row lock makes two submits that complete its last two items see each other's
    # commit on PostgreSQL (the second counts after the first committed), so one of them announces.
    rnd = db.scalar(select(Round).where(Round.project_id == project_id, Round.number == number).with_for_update())
    if rnd is None or rnd.state != RoundState.OPEN.value:
        return None
    base = select(func.count()).select_from(Item).where(Item.project_id == project_id, Item.round == number,
                                                        Item.is_gold.is_(False))
    total = db.scalar(base) or 0
    pending = db.scalar(base.where(Item.completed_at.is_(None))) or 0
    if total == 0 or pending > 0:
        return None
    done = db.execute(update(Round).where(Round.id == rnd.id, Round.state == RoundState.OPEN.value)
                      .values(state=RoundState.COMPLETE.value, completed_at=utcnow())
                      .execution_options(synchronize_session=False))
    if done.rowcount != 1:
        return None
    return RoundComplete(project_id=project_id, round_id=rnd.id, round=number, name=rnd.name, items=total,
                         complete_items=total)


def announce(event: RoundComplete, webhook_url: str | None, asset_id: int | None, settings: Settings) -> None:
    """After commit: the round's (or project's) webhook, then the Airflow asset event when configured."""
    payload = asdict(event)
    if webhook_url:
        post_webhook(webhook_url, payload, event.project_id)
    if asset_id and settings.airflow_url:
        extra = {k: v for k, v in payload.items() if k != "event"}
        try:
            token = bearer_token(settings.airflow_url, settings.airflow_token, settings.airflow_username,
                                 settings.airflow_password)
        except AirflowAuthError as exc:
            log.warning("round %s of project %s: %s", event.round, event.project_id, exc)
            return
        post_asset_event(settings.airflow_url, token, asset_id, {"annotation_round": extra}, retries=settings.airflow_retries)
