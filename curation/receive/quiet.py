"""Which series have gone quiet: complete after `quiet_seconds` without a new instance.

DICOM networking has no "end of series" message: a sender may split a series over associations, or
resend part of it. Like Orthanc's StableAge (and Kaapana's receiver), a series is taken as complete
once no instance of it has arrived for a while.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass
class Burst:
    """Instances of one series received since its curation was last started."""

    series_id: int
    first_arrival: datetime  # UTC: names the curation run this burst starts (stable across retries)
    last_seen: float  # monotonic clock
    instances: int = 0


class QuietSeries:
    """Thread-safe record of open series; `due()` hands out those quiet for `quiet_seconds`."""

    def __init__(self, quiet_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.quiet_seconds = quiet_seconds
        self._clock = clock
        self._open: dict[int, Burst] = {}
        self._lock = threading.Lock()

    def note(self, series_id: int, instances: int = 1) -> None:
        """An instance of the series arrived (or `instances` were found waiting at start-up)."""
        with self._lock:
            burst = self._open.get(series_id)
            if burst is None:
                burst = self._open[series_id] = Burst(series_id, datetime.now(UTC), self._clock())
            burst.last_seen = self._clock()
            burst.instances += instances

    def due(self) -> list[Burst]:
        """Remove and return the series quiet for at least `quiet_seconds`."""
        now = self._clock()
        with self._lock:
            ready = [b for b in self._open.values() if now - b.last_seen >= self.quiet_seconds]
            for burst in ready:
                del self._open[burst.series_id]
        return ready

    def retry(self, burst: Burst) -> None:
        """Put back a burst whose trigger failed: tried again after another quiet period (merged with
        any instance that arrived meanwhile, keeping the burst's first arrival and so its run id)."""
        with self._lock:
            current = self._open.get(burst.series_id)
            if current is None:
                burst.last_seen = self._clock()
                self._open[burst.series_id] = burst
            else:
                current.instances += burst.instances
                current.first_arrival = min(current.first_arrival, burst.first_arrival)

    def is_open(self, series_id: int) -> bool:
        with self._lock:
            return series_id in self._open

    def __len__(self) -> int:
        with self._lock:
            return len(self._open)
