"""The run's summary: counts by stage outcome over the references the last stages returned (no PHI)."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from curation.pipeline.refs import SeriesRef, StudyRef
from curation.vocabulary import QualityDecision, StageStatus

#: Decisions a person has to act on (listed one by one in the log).
FLAGGED = (QualityDecision.REVIEW, QualityDecision.EXCLUDE)


def summarize(series: Iterable[SeriesRef | Mapping[str, Any]],
              studies: Iterable[StudyRef | Mapping[str, Any]] = ()) -> dict[str, Any]:
    """Series count, deid statuses, kinds, decisions, studies registered and derived series."""
    refs = [SeriesRef.from_xcom(r) for r in series]
    registered = [StudyRef.from_xcom(r) for r in studies]
    return {
        "series": len(refs),
        "deid": dict(Counter(r.status for r in refs)),
        "kinds": dict(Counter(r.kind or "unclassified" for r in refs)),
        "decisions": dict(Counter(r.decision or "none" for r in refs)),
        "studies_registered": sum(1 for r in registered if r.status == StageStatus.OK),
        "derived_series": sum(int(r.derived or 0) for r in registered),
    }


def flagged(series: Iterable[SeriesRef | Mapping[str, Any]]) -> list[SeriesRef]:
    """The series quality sent to review or excluded."""
    return [r for r in map(SeriesRef.from_xcom, series) if r.decision in FLAGGED]


__all__ = ["FLAGGED", "flagged", "summarize"]
