"""A task listener that tallies a DAG run stage by stage (a stage: all mapped instances of one task),
so `curate demo` can print one line per stage instead of Airflow's task logs.

It is not registered as a plugin (the scheduler and workers never load it): the demo adds it to the
task SDK's listener manager around `dag.test()`, where every task runs in the calling process one
after another, so a stage is finished when the next task id starts (or the run ends).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from airflow.listeners import hookimpl


@dataclass
class StageTally:
    """One stage's outcome: final state and return value (XCom) per map index, and wall time."""

    task_id: str
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    states: dict[int, str] = field(default_factory=dict)
    results: dict[int, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return (self.ended or time.monotonic()) - self.started


class StageProgress:
    """Calls `on_stage(tally)` once per finished stage, in the order the stages ran, and
    `on_task(tally)` (optional) after each task of the stage in progress."""

    def __init__(self, on_stage: Callable[[StageTally], None],
                 on_task: Callable[[StageTally], None] | None = None) -> None:
        self.on_stage = on_stage
        self.on_task = on_task
        self.current: StageTally | None = None
        self.done: list[StageTally] = []

    def _tally(self, task_instance: Any) -> StageTally:
        if self.current is None or self.current.task_id != task_instance.task_id:
            self.flush()
            self.current = StageTally(task_instance.task_id)
        return self.current

    def _finish(self, task_instance: Any, state: str) -> None:
        tally = self._tally(task_instance)
        index = getattr(task_instance, "map_index", -1)
        tally.states[index] = state
        tally.ended = time.monotonic()
        if state == "success":
            try:
                tally.results[index] = task_instance.xcom_pull(task_ids=task_instance.task_id, map_indexes=index)
            except Exception:  # noqa: BLE001 - a missing value only shortens the progress line
                tally.results[index] = None
        if self.on_task is not None:
            self.on_task(tally)

    @hookimpl
    def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> None:
        self._tally(task_instance)

    @hookimpl
    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
        self._finish(task_instance, "success")

    @hookimpl
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
        self._finish(task_instance, "failed")  # a later successful retry of the same index replaces it

    @hookimpl
    def on_task_instance_skipped(self, previous_state: Any, task_instance: Any) -> None:
        self._finish(task_instance, "skipped")

    def flush(self) -> None:
        """Report the stage in progress (called when the next stage starts and when the run ends)."""
        if self.current is not None:
            self.done.append(self.current)
            self.on_stage(self.current)
            self.current = None

    @contextmanager
    def listening(self) -> Iterator[StageProgress]:
        """Registered with the task SDK's listener manager for the duration of the block."""
        from airflow.sdk.listener import get_listener_manager

        manager = get_listener_manager()
        manager.add_listener(self)
        try:
            yield self
        finally:
            manager.pm.unregister(self)
            self.flush()
