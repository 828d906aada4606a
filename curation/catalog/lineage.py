"""Append-only, hash-chained audit ledger of what every stage did.

Each event's hash covers its content and its predecessor's hash, so editing or deleting any past
event breaks the chain from there on; `verify_chain` (and `curate audit verify`) finds the first
broken link. A unique `prev_hash` makes concurrent writers that raced for the same head fail
instead of forking the chain; `append_event` retries them.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from curation.catalog.models import LineageEvent

GENESIS = "0" * 64


def _utc_naive(at: datetime) -> datetime:
    """SQLite returns naive datetimes, PostgreSQL aware ones: hash the same UTC wall time."""
    if at.tzinfo is not None:
        at = at.astimezone(timezone.utc).replace(tzinfo=None)
    return at


def event_hash(prev_hash: str, at: datetime, actor: str, stage: str, action: str, subject: str,
               inputs: list[Any], outputs: list[Any], details: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of an event and its predecessor's hash."""
    body = json.dumps(
        {
            "prev": prev_hash,
            "at": _utc_naive(at).isoformat(timespec="microseconds"),
            "actor": actor,
            "stage": stage,
            "action": action,
            "subject": subject,
            "inputs": inputs,
            "outputs": outputs,
            "details": details,
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(body.encode()).hexdigest()


def add_event(session: Any, *, stage: str, action: str, subject: str, inputs: list[Any] | None = None,
              outputs: list[Any] | None = None, details: dict[str, Any] | None = None,
              actor: str = "curate") -> str:
    """Add one event inside the caller's transaction (so it commits or rolls back with the work).

    A concurrent writer that took the same head makes the flush raise IntegrityError: the caller
    retries its whole transaction.
    """
    inputs, outputs, details = list(inputs or []), list(outputs or []), dict(details or {})
    head = session.scalars(select(LineageEvent.hash).order_by(LineageEvent.id.desc()).limit(1)).first()
    prev = head or GENESIS
    at = _utc_naive(datetime.now(timezone.utc))
    digest = event_hash(prev, at, actor, stage, action, subject, inputs, outputs, details)
    session.add(LineageEvent(at=at, actor=actor, stage=stage, action=action, subject=subject,
                             inputs=inputs, outputs=outputs, details=details, prev_hash=prev, hash=digest))
    session.flush()
    return digest


def append_event(catalog: Any, *, retries: int = 20, **event: Any) -> str:
    """Append one event in its own transaction, retrying on ledger contention; returns its hash."""
    for attempt in range(retries):
        try:
            with catalog.session() as session:
                return add_event(session, **event)
        except IntegrityError:
            time.sleep(0.01 * (attempt + 1))
    raise RuntimeError(f"could not append a lineage event after {retries} attempts (ledger contention)")


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    events: int
    first_bad_id: int | None = None
    problem: str | None = None


def verify_chain(catalog: Any) -> ChainReport:
    """Recompute every event's hash in order and check each links to its predecessor."""
    prev = GENESIS
    n = 0
    with catalog.session() as session:
        for ev in session.scalars(select(LineageEvent).order_by(LineageEvent.id)).yield_per(1000):
            n += 1
            if ev.prev_hash != prev:
                return ChainReport(False, n, ev.id, "link to the previous event is broken (event removed or reordered)")
            digest = event_hash(ev.prev_hash, ev.at, ev.actor, ev.stage, ev.action, ev.subject,
                                ev.inputs, ev.outputs, ev.details)
            if digest != ev.hash:
                return ChainReport(False, n, ev.id, "content does not match its hash (event edited)")
            prev = ev.hash
    return ChainReport(True, n)


#: The ledger event of a re-identification (`curate deid reidentify`): who, when, which pseudonym,
#: with which officer key and the outcome. Never the identity: no parameter can carry it.
REIDENTIFY_STAGE, REIDENTIFY_ACTION = "deid", "reidentify"


def record_reidentification(catalog: Any, *, pseudonym: str, actor: str, outcome: str,
                            details: dict[str, Any] | None = None) -> str:
    """Append a re-identification attempt to the ledger before any identity is shown; returns its hash."""
    return append_event(catalog, stage=REIDENTIFY_STAGE, action=REIDENTIFY_ACTION, subject=pseudonym,
                        actor=actor[:128], details={"outcome": outcome, **(details or {})})


def reidentification_events(catalog: Any) -> list[dict[str, Any]]:
    """Every recorded re-identification, oldest first (for the officer's review)."""
    with catalog.session() as session:
        rows = session.scalars(select(LineageEvent).where(LineageEvent.stage == REIDENTIFY_STAGE,
                                                          LineageEvent.action == REIDENTIFY_ACTION)
                               .order_by(LineageEvent.id))
        return [{"id": ev.id, "at": _utc_naive(ev.at).isoformat(timespec="seconds") + "Z", "actor": ev.actor,
                 "pseudonym": ev.subject, **ev.details} for ev in rows]
