"""A set of named metrics where every missing value is NaN with a reason (never a sentinel like -1)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class MetricSet:
    values: dict[str, float] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    masks: dict[str, int] = field(default_factory=dict)  # mask name -> voxel count
    notes: dict[str, Any] = field(default_factory=dict)

    def set(self, name: str, value: float | None, reason: str = "could not be computed") -> None:
        """Record a value; None, NaN or inf becomes NaN with `reason`."""
        if value is None or not math.isfinite(float(value)):
            self.nan(name, reason)
        else:
            self.values[name] = float(value)
            self.reasons.pop(name, None)

    def nan(self, name: str, reason: str) -> None:
        self.values[name] = math.nan
        self.reasons[name] = reason

    def update(self, other: "MetricSet") -> None:
        self.values.update(other.values)
        self.reasons.update(other.reasons)
        self.masks.update(other.masks)
        self.notes.update(other.notes)

    def get(self, name: str) -> float:
        return self.values.get(name, math.nan)


def jsonable(obj: Any) -> Any:
    """A copy with NaN/inf floats as None (strict JSON; PostgreSQL's JSON type rejects NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return jsonable(obj.item())
    return obj
