"""Two threads for the quality metrics: the goal is one volume in half a second on two cores, and the
work is numpy and OpenCV on large arrays, which release the GIL while they compute."""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

A = TypeVar("A")
B = TypeVar("B")
_PREFIX = "curate-quality"
_helper: tuple[int, ThreadPoolExecutor] | None = None


def both(f: Callable[[], A], g: Callable[[], B]) -> tuple[A, B]:
    """(f(), g()), f on a helper thread while g runs on this one. One helper per process (made again
    after a fork, where threads do not survive); called from the helper itself, both run here
    (waiting on its own queue would never end)."""
    global _helper
    if (os.cpu_count() or 1) < 2 or threading.current_thread().name.startswith(_PREFIX):
        return f(), g()
    if _helper is None or _helper[0] != os.getpid():
        _helper = (os.getpid(), ThreadPoolExecutor(max_workers=1, thread_name_prefix=_PREFIX))
    future = _helper[1].submit(f)
    try:
        b = g()
    finally:
        a = future.result()  # f's error, if any, or g's after f has finished
    return a, b
