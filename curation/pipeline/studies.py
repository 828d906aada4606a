"""Series into studies: the unit of the register stage is a study's series fit for registration."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from curation.pipeline.refs import SeriesRef, StudyRef
from curation.vocabulary import QualityDecision, StageStatus

#: The fields of a series the register stage reads (the rest stays out of the study's reference).
_KEPT = ("series_id", "deid_prefix", "kind", "plane", "dimensions", "derived", "contrast", "decision")


def group_by_study(refs: Iterable[SeriesRef | Mapping[str, Any]]) -> list[StudyRef]:
    """Per-study references of the quality stage's series, keeping only series fit for registration:
    de-identified, not excluded, DICOM (a PNG/JPEG/NIfTI belongs to no study)."""
    studies: dict[str, list[SeriesRef]] = defaultdict(list)
    for ref in map(SeriesRef.from_xcom, refs):
        if not ref.deid_prefix or ref.decision == QualityDecision.EXCLUDE or ref.status != StageStatus.OK:
            continue
        if (ref.format or "dicom") != "dicom":
            continue
        study_key = "/".join(ref.deid_prefix.strip("/").split("/")[:2])
        studies[study_key].append(SeriesRef(**{k: getattr(ref, k) for k in _KEPT}))
    return [StudyRef(study=key, series=tuple(sorted(series, key=lambda r: r.series_id)))
            for key, series in sorted(studies.items())]


__all__ = ["group_by_study"]
