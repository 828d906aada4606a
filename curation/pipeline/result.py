"""StageResult: what every stage returns, stored or fresh.

The catalog's row of the same facts is `curation.catalog.StageRecord` (table stage_result); this is
the in-process value a stage function builds and an operator logs or passes on."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from curation.vocabulary import StageStatus


@dataclass
class StageResult:
    """status (ok | failed | review | excluded | skipped), metrics (small, JSON-able, no PHI), a
    reason sentence, where the output went and its content hashes (for the lineage ledger), whether
    a stored result was reused, the catalog record's id, and the references for the next stage."""

    status: str = StageStatus.OK
    metrics: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    output_uri: str | None = None
    output_hashes: list[str] = field(default_factory=list)
    reused: bool = False
    record_id: int | None = None
    refs: tuple[Any, ...] = ()

    @property
    def ref(self) -> Any:
        """The one reference a per-subject stage hands on."""
        (ref,) = self.refs
        return ref


__all__ = ["StageResult"]
