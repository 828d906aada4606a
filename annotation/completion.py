"""Completion status for the pipeline: which items and rounds are done, and the optional webhook."""
from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from annotation.models import Item, Project, Task, TaskKind, TaskStatus
from annotation.queue import required_readers
from annotation.schemas import CompletionOut, ItemCompletion
from annotation.submission import CompletionEvent

log = logging.getLogger("annotation.completion")


def completion(db: Session, project: Project, round_: int | None) -> CompletionOut:
    q = select(Item).where(Item.project_id == project.id, Item.is_gold.is_(False)).order_by(Item.id)
    if round_ is not None:
        q = q.where(Item.round == round_)
    items = db.scalars(q).all()
    ids = [i.id for i in items]
    submitted: dict[int, int] = {}
    verified: dict[int, int] = {}
    if ids:
        base = (select(Task.item_id, func.count())
                .where(Task.item_id.in_(ids), Task.kind == TaskKind.ANNOTATE.value, Task.status == TaskStatus.SUBMITTED.value,
                       Task.is_gold.is_(False))
                .group_by(Task.item_id))
        submitted = dict(db.execute(base).all())
        verified = dict(db.execute(base.where(Task.decision == "verified")).all())
    out: list[ItemCompletion] = []
    rounds: dict[str, dict[str, int | bool]] = {}
    for item in items:
        k = required_readers(project, item)
        needs_verification = project.verification_levels > 0
        ok_verified = (verified.get(item.id, 0) >= k) if needs_verification else True
        done = item.completed_at is not None
        out.append(ItemCompletion(item_id=item.id, external_id=item.external_id, round=item.round, required=k,
                                  submitted=submitted.get(item.id, 0), verified=ok_verified, complete=done,
                                  completed_at=item.completed_at))
        r = rounds.setdefault(str(item.round), {"items": 0, "complete_items": 0, "complete": False})
        r["items"] = int(r["items"]) + 1
        r["complete_items"] = int(r["complete_items"]) + (1 if done else 0)
    for r in rounds.values():
        r["complete"] = r["items"] == r["complete_items"]
    return CompletionOut(project_id=project.id, rounds=rounds, items=out)


def post_webhook(url: str, payload: dict[str, Any], project_id: int | str) -> None:
    """POST ids to a webhook; failures are logged (ids only) and dropped, the pipeline can always
    poll the completion and round endpoints."""
    try:
        httpx.post(url, json=payload, timeout=5.0).raise_for_status()
    except httpx.HTTPError as exc:
        log.warning("%s webhook failed for project %s: %s", payload.get("event"), project_id, type(exc).__name__)


def notify_completed(url: str, events: list[CompletionEvent]) -> None:
    """POST completed items to the project's webhook."""
    payload = {"event": "items_complete", "items": [asdict(e) for e in events]}
    post_webhook(url, payload, events[0].project_id if events else "?")
