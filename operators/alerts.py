"""Failure and deadline alerts for operators: a JSON message to an incoming webhook (Slack, Teams, or
any HTTP receiver), wired into every DAG by `alert_args()` and `run_deadline()`.

Connection `curate_alerts`: host = the whole webhook URL (`https://hooks.slack.com/services/...`), or a
bare host with port, conn_type http/https and the path in `schema`. Without the connection, alerts are
skipped with one log line: a development machine has no webhook, and an alert must never fail (or
retry) the task it reports.

The message carries where to look (DAG, run, task, try, link to the log) and an error summary with no
PHI: the exception's type and its message with quoted values, paths, long digit runs and DICOM UIDs
cut out (a message may quote a file name or header value; the log, behind Airflow's login, has the rest).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import httpx
from airflow.sdk import BaseHook, BaseNotifier
from airflow.sdk.definitions.callback import AsyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

#: The Airflow connection holding the webhook URL.
ALERTS_CONN_ID = "curate_alerts"
#: Seconds a webhook gets to answer; an alert is best effort and must not hold a worker.
TIMEOUT_S = 10.0
#: The longest error summary sent.
MAX_SUMMARY = 300

_QUOTED = re.compile(r"""(['"]).*?\1""")
_PATH = re.compile(r"\S*[/\\]\S*")
_UID = re.compile(r"\b\d+(?:\.\d+){3,}\b")
_DIGITS = re.compile(r"\d{4,}")


def error_summary(exc: BaseException | str | None) -> str:
    """`Type: message` with what could identify a patient removed (quoted values, paths, UIDs, digit runs
    such as MRNs and dates), on one line, at most MAX_SUMMARY characters."""
    if exc is None:
        return "no exception recorded (see the log)"
    kind = type(exc).__name__ if isinstance(exc, BaseException) else "Error"
    text = str(exc).replace("\n", " ")
    for pattern, repl in ((_QUOTED, "'...'"), (_UID, "<uid>"), (_PATH, "<path>"), (_DIGITS, "<n>")):
        text = pattern.sub(repl, text)
    return f"{kind}: {' '.join(text.split())}"[:MAX_SUMMARY]


def webhook_url(conn: Any) -> str | None:
    """The webhook URL a connection names: its host when that is a URL, else scheme://host[:port]/schema."""
    host = (getattr(conn, "host", None) or "").strip()
    if not host:
        return None
    if "://" in host:
        return host
    scheme = "https" if getattr(conn, "conn_type", "") == "https" else "http"
    port = f":{conn.port}" if getattr(conn, "port", None) else ""
    path = (getattr(conn, "schema", None) or "").lstrip("/")
    return f"{scheme}://{host}{port}/{path}"


def failure_message(context: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body for a failed task: Slack/Teams read `text`; other receivers read `curate`."""
    ti = context.get("ti") or context.get("task_instance")
    facts = {
        "event": "task_failed",
        "dag_id": getattr(ti, "dag_id", None),
        "run_id": getattr(ti, "run_id", None),
        "task_id": getattr(ti, "task_id", None),
        "map_index": getattr(ti, "map_index", None),
        "try_number": getattr(ti, "try_number", None),
        "error": error_summary(context.get("exception")),
        "log_url": getattr(ti, "log_url", None),
    }
    mapped = f"[{facts['map_index']}]" if facts["map_index"] not in (None, -1) else ""
    text = (f":red_circle: {facts['dag_id']} / {facts['task_id']}{mapped} failed (try {facts['try_number']}, "
            f"run {facts['run_id']}): {facts['error']}. Log: {facts['log_url']}")
    return {"text": text, "curate": facts}


def deadline_message(context: Mapping[str, Any], deadline: str) -> dict[str, Any]:
    """The JSON body for a run past its deadline (from the scheduler's deadline context; the run's conf,
    which may name a source folder, is left out)."""
    run = context.get("dag_run") or {}
    facts = {
        "event": "deadline_missed",
        "dag_id": run.get("dag_id"),
        "run_id": run.get("dag_run_id") or run.get("run_id"),
        "state": run.get("state"),
        "deadline": deadline,
        "deadline_time": str((context.get("deadline") or {}).get("deadline_time")),
    }
    text = (f":hourglass: {facts['dag_id']} run {facts['run_id']} is still {facts['state']} past its deadline "
            f"({deadline} after it was queued)")
    return {"text": text, "curate": facts}


def _post(url: str, body: dict[str, Any]) -> None:
    response = httpx.post(url, json=body, timeout=TIMEOUT_S)
    response.raise_for_status()


class WebhookNotifier(BaseNotifier):
    """Posts `failure_message(context)` to the webhook of connection `conn_id`; every error is logged, none
    raised (the task already failed; its alert must not add a second failure)."""

    def __init__(self, conn_id: str = ALERTS_CONN_ID) -> None:
        super().__init__()
        self.conn_id = conn_id

    def url(self) -> str | None:
        try:
            return webhook_url(BaseHook.get_connection(self.conn_id))
        except Exception:  # noqa: BLE001 - Airflow raises its own not-found types by version
            return None

    def notify(self, context: Any) -> None:
        url = self.url()
        if url is None:
            self.log.info("alert not sent: no Airflow connection %r with a webhook URL", self.conn_id)
            return
        try:
            _post(url, failure_message(context))
        except httpx.HTTPError as exc:
            self.log.warning("alert not delivered to connection %r: %s", self.conn_id, type(exc).__name__)


async def notify_deadline_missed(context: dict[str, Any], deadline: str = "", conn_id: str = ALERTS_CONN_ID) -> None:
    """Deadline-alert callback (runs in the triggerer): posts `deadline_message` to the webhook."""
    try:
        conn = await BaseHook.aget_connection(conn_id)
    except Exception:  # noqa: BLE001
        return
    url = webhook_url(conn)
    if url is None:
        return
    async with httpx.AsyncClient(timeout=TIMEOUT_S) as client:
        try:
            (await client.post(url, json=deadline_message(context, deadline))).raise_for_status()
        except httpx.HTTPError:
            return


def alert_args() -> dict[str, Any]:
    """default_args entries that send an alert for every task of a DAG that fails after its retries."""
    return {"on_failure_callback": [WebhookNotifier()]}


def run_deadline(after: timedelta) -> DeadlineAlert:
    """A deadline alert for runs still going `after` their queueing (evaluated by the scheduler)."""
    return DeadlineAlert(reference=DeadlineReference.DAGRUN_QUEUED_AT, interval=after,
                         callback=AsyncCallback(notify_deadline_missed, kwargs={"deadline": str(after)}))


def foreground_test(dag: Any, **kwargs: Any) -> Any:
    """`dag.test(**kwargs)` without the DAG's deadline alerts. Airflow 3.3.2's `dag.test()` hands the run its
    in-memory deadline alerts where the scheduler's path hands database ids, and a successful run then fails
    in `DeadlineAlertModel.get_by_id` ('dict' object has no attribute 'hex'); a run in the foreground has
    nobody to alert anyway. The scheduler's runs keep their deadlines (tests/dags/test_alerts.py)."""
    dag.deadline = None
    return dag.test(**kwargs)


__all__ = ["ALERTS_CONN_ID", "WebhookNotifier", "alert_args", "deadline_message", "error_summary", "failure_message",
           "foreground_test", "notify_deadline_missed", "run_deadline", "webhook_url"]
