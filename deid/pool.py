"""Process pools for the libraries' folder runs (ingest's file inspection, de-identification),
with one rule for where a pool cannot start.

A daemonic process may not have children (multiprocessing raises "daemonic processes are not
allowed to have children"): a task run by a Celery prefork worker inherits its pool process's
daemon flag. There the work runs in the calling process, one item after another, instead of
failing the run. Lives in ``deid`` because ``curation`` may import ``deid`` but not the reverse
(DESIGN.md's layering), and both need the same rule."""
from __future__ import annotations

import logging
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable

log = logging.getLogger(__name__)


def usable_workers(workers: int, what: str, items: int) -> int:
    """``workers``, or 1 when this process may not start a pool (a daemonic process); ``what``
    and ``items`` only name the work in the log line that says so."""
    if workers > 1 and multiprocessing.current_process().daemon:
        log.info("%s: %d items in this process (a daemonic process, e.g. a Celery worker's task, cannot "
                 "start a process pool)", what, items)
        return 1
    return workers


def process_pool(workers: int, initializer: Callable[..., Any] | None = None,
                 initargs: tuple[Any, ...] = ()) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes, forked on Linux: the workers inherit what the parent built
    and imported before (de-identification's compiled profile and OCR engine) instead of building
    it again, whatever the interpreter's default start method; spawned elsewhere."""
    ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=initializer, initargs=initargs)
