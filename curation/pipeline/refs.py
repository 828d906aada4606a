"""Typed references: what one task hands the next (through XCom), as small JSON without PHI.

A reference names its subject by catalog id and pseudonymous keys and carries the few results the
next stages decide on (deid status, kind and attributes, quality decision). Bulky data (the list of
de-identified objects, metrics) stays in the catalog: `deid_record` points at the deid stage's
record, which lists its outputs.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Self

#: The classification fields a quality decision and the choice of a study's fixed series read.
CLASSIFICATION_FIELDS = ("kind", "body_part", "plane", "dimensions", "contrast")


class XcomRef:
    """Base of every typed reference that travels in XCom: to_xcom / from_xcom for frozen dataclasses
    (None fields are left out). Public so that stage modules define their own refs on it."""

    def to_xcom(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, tuple) and value and isinstance(value[0], XcomRef):
                value = [v.to_xcom() for v in value]
            out[f.name] = str(value) if isinstance(value, str) else value  # StrEnum members as plain text
        return out

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any] | Self) -> Self:
        if isinstance(data, cls):
            return data
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})  # type: ignore[arg-type]

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True)
class SeriesRef(XcomRef):
    """One catalogued series on its way through deid -> classify -> quality.

    `status` is the deid stage's (ok | failed; None before deid), `reused` says whether the stage
    that returned this reference found its result stored instead of running."""

    series_id: int
    format: str | None = None
    status: str | None = None
    deid_record: int | None = None
    deid_prefix: str | None = None
    quarantined: int | None = None
    kind: str | None = None
    confidence: float | None = None
    plane: str | None = None
    dimensions: str | None = None
    contrast: Any = None
    derived: bool | None = None
    body_part: str | None = None
    rule: str | None = None
    decision: str | None = None
    decision_reason: str | None = None
    reused: bool | None = None

    def classification(self) -> dict[str, Any]:
        """The classify stage's fields the quality stage is keyed on."""
        return {k: getattr(self, k) for k in CLASSIFICATION_FIELDS}


@dataclass(frozen=True)
class StudyRef(XcomRef):
    """One study (its pseudonymous deid-zone key `<patient pseudonym>/<StudyInstanceUID>`) and its
    series fit for registration; after the register stage also its outcome."""

    study: str
    series: tuple[SeriesRef, ...] = field(default_factory=tuple)
    status: str | None = None
    reason: str | None = None
    derived: int | None = None
    fixed_reason: str | None = None
    reused: bool | None = None

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any] | StudyRef) -> StudyRef:
        if isinstance(data, StudyRef):
            return data
        ref = super().from_xcom(data)
        return ref.replace(series=tuple(SeriesRef.from_xcom(s) for s in data.get("series") or ()))


__all__ = ["CLASSIFICATION_FIELDS", "SeriesRef", "StudyRef"]
