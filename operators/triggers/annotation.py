"""AnnotationRoundTrigger: waits in the triggerer until people have read a round, or its deadline.

It polls the round's status (`GET /api/projects/{pid}/rounds/{n}`) with the hook's async client
every `poll_interval_s` and fires once: when the service says the round is `complete` (every
non-gold item has its k readings) or `closed` (a manager closed it), or at the deadline with the
partial counts. Everything it needs is in its serialised kwargs (connection id, project id, round
number, absolute deadline), never the token, so a triggerer restart picks the wait up where it was.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timezone
from typing import Any

import httpx
from airflow.triggers.base import BaseTrigger, TriggerEvent

from operators.hooks.annotation import AnnotationServiceHook

#: The service's round states that end the wait (annotation/models.py: RoundState).
DONE_STATES = ("complete", "closed")
DEADLINE, ERROR = "deadline", "error"
#: What an event carries of the round: counts and ids, never reader names.
COUNT_KEYS = ("id", "project_id", "number", "name", "state", "items", "complete_items", "gold_items",
              "readings_required", "readings_submitted", "deadline", "completed_at", "closed_at")


def round_counts(rnd: Mapping[str, Any] | None) -> dict[str, Any]:
    """The round's ids, state and counts (XCom-safe; per-reader rows carry usernames and are left out)."""
    return {k: rnd.get(k) for k in COUNT_KEYS} if rnd else {}


def parse_deadline(value: str | datetime | None) -> datetime | None:
    """An aware UTC datetime; the service reports naive UTC times."""
    if value is None or value == "":
        return None
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at.astimezone(timezone.utc)


class AnnotationRoundTrigger(BaseTrigger):
    """Fires {"status": "complete" | "closed", "round": counts} when the round is done, {"status":
    "deadline", "round": counts} at `deadline` with what was read by then, or {"status": "error",
    "message"} when the service refuses the poll (a 4xx other than 429) or stays unreachable for
    `max_failures` polls in a row; passing outages (connection errors, 429, 5xx) are retried."""

    def __init__(self, *, project_id: int, round_number: int, deadline: str | None = None,
                 poll_interval_s: float = 60.0, annotation_conn_id: str = AnnotationServiceHook.default_conn_name,
                 max_failures: int = 30) -> None:
        super().__init__()
        self.project_id = int(project_id)
        self.round_number = int(round_number)
        self.deadline = parse_deadline(deadline).isoformat() if deadline else None
        self.poll_interval_s = float(poll_interval_s)
        self.annotation_conn_id = annotation_conn_id
        self.max_failures = int(max_failures)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"project_id": self.project_id, "round_number": self.round_number, "deadline": self.deadline,
                 "poll_interval_s": self.poll_interval_s, "annotation_conn_id": self.annotation_conn_id,
                 "max_failures": self.max_failures})

    def _where(self) -> str:
        return f"round {self.round_number} of project {self.project_id}"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = AnnotationServiceHook(self.annotation_conn_id)
        deadline = parse_deadline(self.deadline)
        last: dict[str, Any] | None = None
        failures = 0
        try:
            client_context = hook.async_client()
            client = await client_context.__aenter__()
        except Exception as exc:  # noqa: BLE001 - a missing connection ends the wait with its reason
            yield TriggerEvent({"status": ERROR, "message": str(exc), "round": {}})
            return
        try:
            while True:
                try:
                    last = await hook.aget_round(client, self.project_id, self.round_number)
                    failures = 0
                except httpx.HTTPStatusError as exc:
                    code = exc.response.status_code
                    if 400 <= code < 500 and code != 429:
                        yield TriggerEvent({"status": ERROR, "round": round_counts(last),
                                            "message": f"{self._where()} via connection {self.annotation_conn_id!r}: "
                                                       f"{code} {exc.response.text[:300]}"})
                        return
                    failures += 1
                    self.log.warning("poll of %s answered %s (try %d of %d)", self._where(), code, failures,
                                     self.max_failures)
                except httpx.HTTPError as exc:
                    failures += 1
                    self.log.warning("poll of %s failed: %s (try %d of %d)", self._where(), type(exc).__name__,
                                     failures, self.max_failures)
                if failures >= self.max_failures:
                    yield TriggerEvent({"status": ERROR, "round": round_counts(last),
                                        "message": f"{self._where()} unreachable for {failures} polls"})
                    return
                if failures == 0 and last is not None:
                    if last["state"] in DONE_STATES:
                        self.log.info("%s is %s: %s of %s items complete", self._where(), last["state"],
                                      last["complete_items"], last["items"])
                        yield TriggerEvent({"status": last["state"], "round": round_counts(last)})
                        return
                    self.log.info("%s open: %s of %s items complete, %s of %s readings", self._where(),
                                  last["complete_items"], last["items"], last["readings_submitted"],
                                  last["readings_required"])
                now = datetime.now(timezone.utc)
                if deadline is not None and now >= deadline:
                    self.log.info("%s reached its deadline %s", self._where(), deadline.isoformat())
                    yield TriggerEvent({"status": DEADLINE, "round": round_counts(last)})
                    return
                wait = self.poll_interval_s
                if deadline is not None:
                    wait = max(0.0, min(wait, (deadline - now).total_seconds()))
                await asyncio.sleep(wait)
        finally:
            await client_context.__aexit__(None, None, None)


__all__ = ["AnnotationRoundTrigger", "COUNT_KEYS", "DEADLINE", "DONE_STATES", "ERROR", "parse_deadline", "round_counts"]
