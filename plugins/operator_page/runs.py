"""What Airflow's metadata database says about DAG runs: per run, each task (a stage: all mapped
instances of one task) by state, its wall time and summed task time, and the run's throughput from
the ingest task's `summary` XCom (instances; counts only, no paths).

Runs inside the API server (the plugin's FastAPI app), where Airflow's ORM session is configured.
One grouped query per page, whatever the number of mapped task instances.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, select

#: The DAG whose runs the page lists (its ingest task pushes the run's counts under XCom key `summary`).
CURATE_SOURCE = "curate_source"
INGEST_TASK, SUMMARY_KEY = "ingest", "summary"


def _elapsed(started: datetime | None, ended: datetime | None) -> float | None:
    """Seconds from start to end, or to now while still going."""
    return None if started is None else ((ended or datetime.now(timezone.utc)) - started).total_seconds()


@dataclass
class TaskFigures:
    """One task of one run: its (mapped) instances by state, first start, last end, summed duration."""

    task_id: str
    states: dict[str, int] = field(default_factory=dict)
    started: datetime | None = None
    ended: datetime | None = None
    busy_seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.states.values())

    @property
    def wall_seconds(self) -> float | None:
        return _elapsed(self.started, self.ended)


@dataclass
class RunFigures:
    """One DAG run: state, times, its site (from the run's conf), tasks in the order they started,
    and the instances its ingest saw (None before ingest finished)."""

    dag_id: str
    run_id: str
    state: str | None
    started: datetime | None
    ended: datetime | None
    site: str | None
    tasks: list[TaskFigures] = field(default_factory=list)
    instances: int | None = None

    @property
    def seconds(self) -> float | None:
        return _elapsed(self.started, self.ended)

    @property
    def instances_per_second(self) -> float | None:
        seconds = self.seconds
        return round(self.instances / seconds, 2) if self.instances and seconds else None


def _json(value: Any) -> Any:
    """An XCom value as stored (JSON column; a string on some paths)."""
    if isinstance(value, (str, bytes)):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def run_figures(dag_id: str = CURATE_SOURCE, run_id: str | None = None, limit: int = 10) -> list[RunFigures]:
    """The newest `limit` runs of `dag_id` (or only `run_id`) with their per-task figures."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        query = select(DagRun).where(DagRun.dag_id == dag_id)
        if run_id is not None:
            query = query.where(DagRun.run_id == run_id)
        runs = {r.run_id: RunFigures(dag_id, r.run_id, str(r.state) if r.state else None, r.start_date, r.end_date,
                                     (r.conf or {}).get("site"))
                for r in session.scalars(query.order_by(DagRun.id.desc()).limit(limit))}
        if not runs:
            return []
        tasks: dict[tuple[str, str], TaskFigures] = {}
        rows = session.execute(
            select(TaskInstance.run_id, TaskInstance.task_id, TaskInstance.state, func.count(),
                   func.min(TaskInstance.start_date), func.max(TaskInstance.end_date), func.sum(TaskInstance.duration))
            .where(TaskInstance.dag_id == dag_id, TaskInstance.run_id.in_(list(runs)))
            .group_by(TaskInstance.run_id, TaskInstance.task_id, TaskInstance.state))
        for rid, task_id, state, n, started, ended, busy in rows:
            figures = tasks.setdefault((rid, task_id), TaskFigures(task_id))
            figures.states[str(state) if state else "none"] = n
            figures.busy_seconds += float(busy or 0)
            if started is not None and (figures.started is None or started < figures.started):
                figures.started = started
            if ended is not None and (figures.ended is None or ended > figures.ended):
                figures.ended = ended
        summaries = session.execute(select(XComModel.run_id, XComModel.value).where(
            XComModel.dag_id == dag_id, XComModel.task_id == INGEST_TASK, XComModel.key == SUMMARY_KEY,
            XComModel.run_id.in_(list(runs))))
        for rid, value in summaries:
            summary = _json(value)
            if isinstance(summary, dict) and isinstance(summary.get("instances"), int):
                runs[rid].instances = summary["instances"]
    far = datetime.max.replace(tzinfo=timezone.utc)
    for (rid, _), figures in sorted(tasks.items(), key=lambda kv: (kv[1].started or far, kv[1].task_id)):
        runs[rid].tasks.append(figures)
    return list(runs.values())


__all__ = ["CURATE_SOURCE", "RunFigures", "TaskFigures", "run_figures"]
