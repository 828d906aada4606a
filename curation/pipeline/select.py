"""Choosing series from the catalog: for an annotation round (by kind, quality decision, modality,
body part, a seeded sample), for the quality-review round (the model said `review`, nobody has
decided yet), and for a release (the series' *final* quality decision: a person's where one decided,
else the model's).

What the catalog knows of a series is spread over its stage records (deid: the de-identified
objects; classify: kind and body part; quality: the model's decision); the newest record of each
stage counts. Results are `ItemRef`s: catalog ids, the de-identified series key and a few words, no
PHI, small enough for XCom.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from curation.catalog import Catalog, Instance, Series, StageRecord
from curation.catalog.models import AnnotationItem, AnnotationRound, QualityReview, Reading
from curation.pipeline.refs import XcomRef
from curation.vocabulary import QualityDecision, ReviewDecision, StageStatus

#: Formats whose stored pixel grid is the one readers draw on (a NIfTI volume is reoriented by the
#: annotation service, so its boxes are not checked against the catalog's rows and columns).
_GRID_FORMATS = ("dicom", "png", "jpeg")


#: When reviewers of one round disagree and no decision has a majority, the most cautious wins.
REVIEW_SEVERITY = {ReviewDecision.APPROVE: 0, ReviewDecision.EXCLUDE: 1, ReviewDecision.QUARANTINE: 2}


@dataclass(frozen=True)
class ItemRef(XcomRef):
    """One series as an item of a round: its catalog id, its key in the de-identified zone (the
    de-identified SeriesInstanceUID, or the content hash of a de-identified image), the words the
    selection used, and the image grid size where boxes are drawn on it."""

    series_id: int
    item_key: str
    format: str | None = None
    modality: str | None = None
    kind: str | None = None
    body_part: str | None = None
    decision: str | None = None
    decision_reason: str | None = None
    deid_record: int | None = None
    n_objects: int | None = None
    width: int | None = None
    height: int | None = None
    is_gold: bool | None = None


@dataclass(frozen=True)
class Selection:
    """What a round reads: series kinds, (final) quality decisions, modalities, body parts (empty:
    any), a sample of `size` (None: all) drawn with `seed`, and whether series already read in
    earlier rounds of `project` are left out."""

    series_kinds: tuple[str, ...] = ()
    quality_decisions: tuple[str, ...] = (QualityDecision.APPROVE,)
    modalities: tuple[str, ...] = ()
    body_parts: tuple[str, ...] = ()
    size: int | None = None
    seed: int = 0
    exclude_read: bool = True
    project: str | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, Any], defaults: Mapping[str, Sequence[str]] | None = None) -> Selection:
        """From a DAG's Params (lists, or comma-separated text); `defaults`: a label schema's
        `selection`, used for what the params leave empty."""
        defaults = defaults or {}

        def words(key: str, fallback: Sequence[str] = ()) -> tuple[str, ...]:
            value = params.get(key)
            if isinstance(value, str):
                value = [v for v in (w.strip() for w in value.split(",")) if v]
            return tuple(str(v) for v in (value or defaults.get(key) or fallback))

        size = params.get("size")
        return cls(series_kinds=words("series_kinds"),
                   quality_decisions=words("quality_decisions", (QualityDecision.APPROVE,)),
                   modalities=words("modalities"), body_parts=tuple(b.upper() for b in words("body_parts")),
                   size=None if size in (None, "", 0) else int(size), seed=int(params.get("seed") or 0),
                   exclude_read=bool(params.get("exclude_read", True)), project=params.get("project"))

    def to_json(self) -> dict[str, Any]:
        return {"series_kinds": list(self.series_kinds), "quality_decisions": list(self.quality_decisions),
                "modalities": list(self.modalities), "body_parts": list(self.body_parts), "size": self.size,
                "seed": self.seed, "exclude_read": self.exclude_read, "project": self.project}


@dataclass(frozen=True)
class FinalDecision:
    """A series' final quality decision and where it comes from (`human` or `model`); for a human
    decision the reviewers' pseudonyms and when the last of them decided."""

    series_id: int
    decision: str | None
    source: str | None
    reason: str | None = None
    reviewers: tuple[str, ...] = ()
    decided_at: datetime | None = None


def newest_records(catalog: Catalog, stage: str, series_ids: Iterable[int] | None = None) -> dict[int, StageRecord]:
    """The newest record of `stage` per series."""
    newest = (select(func.max(StageRecord.id)).where(StageRecord.stage == stage, StageRecord.subject_type == "series")
              .group_by(StageRecord.subject_id))
    query = select(StageRecord).where(StageRecord.id.in_(newest))
    if series_ids is not None:
        query = query.where(StageRecord.subject_id.in_(list(series_ids)))
    with catalog.session() as s:
        return {row.subject_id: row for row in s.scalars(query)}


def series_key(outputs: Sequence[str]) -> str | None:
    """The de-identified series' key from its deid-zone keys: `<patient>/<study>/<series>/<sop>.dcm`
    gives the de-identified SeriesInstanceUID, `images|volumes/<hash>/<name>` the content hash."""
    if not outputs:
        return None
    parts = outputs[0].split("/")
    return parts[2] if len(parts) == 4 else parts[1] if len(parts) == 3 else None


def model_decision(record: StageRecord | None) -> str | None:
    """The quality model's decision in a quality record (its status where the metrics lack it)."""
    if record is None or record.status == StageStatus.SKIPPED:
        return None
    return ((record.metrics or {}).get("decision") or {}).get("decision") or {
        StageStatus.OK: QualityDecision.APPROVE, StageStatus.REVIEW: QualityDecision.REVIEW,
        StageStatus.EXCLUDED: QualityDecision.EXCLUDE}.get(record.status)


def candidates(catalog: Catalog) -> list[ItemRef]:
    """Every de-identified, classified series as an `ItemRef` with its newest kind and model
    decision, sorted by series id."""
    deid, classify, quality = (newest_records(catalog, stage) for stage in ("deid", "classify", "quality"))
    with catalog.session() as s:
        series = {row.id: row for row in s.scalars(select(Series).where(Series.id.in_(list(deid))))}
        grid = {sid: (cols, rows) for sid, rows, cols in s.execute(
            select(Instance.series_id, func.max(Instance.rows), func.max(Instance.columns))
            .where(Instance.series_id.in_(list(deid))).group_by(Instance.series_id))}
    refs = []
    for sid in sorted(deid):
        record = deid[sid]
        outputs = (record.metrics or {}).get("outputs") or []
        key = series_key(outputs)
        if record.status != StageStatus.OK or key is None or sid not in series:
            continue
        kind = (classify[sid].metrics or {}) if sid in classify else {}
        fmt = series[sid].format
        width, height = grid.get(sid, (None, None)) if fmt in _GRID_FORMATS else (None, None)
        refs.append(ItemRef(series_id=sid, item_key=key, format=fmt, modality=series[sid].modality,
                            kind=kind.get("kind"), body_part=(kind.get("body_part") or None),
                            decision=model_decision(quality.get(sid)),
                            decision_reason=quality[sid].reason if sid in quality else None,
                            deid_record=record.id, n_objects=len(outputs), width=width, height=height))
    return refs


def read_in_project(catalog: Catalog, project: str, except_round: str | None = None) -> set[int]:
    """Series read in rounds of `project` (a reading or a quality review), except round `except_round`
    (the round being planned, so that re-planning it keeps its own series)."""
    rounds = select(AnnotationRound.id).where(AnnotationRound.project == project)
    if except_round is not None:
        rounds = rounds.where(AnnotationRound.name != except_round)
    with catalog.session() as s:
        read = set(s.scalars(select(AnnotationItem.series_id).join(Reading, Reading.item_id == AnnotationItem.id)
                             .where(AnnotationItem.round_id.in_(rounds))))
        read |= set(s.scalars(select(QualityReview.series_id).where(QualityReview.round_id.in_(rounds))))
    return read


def sample(refs: Sequence[ItemRef], size: int | None, seed: int) -> list[ItemRef]:
    """`size` of `refs`, ranked by a seeded hash of each item key: the same seed draws the same
    series, and a series drawn stays drawn when new series arrive unless one outranks it."""
    if size is None or size >= len(refs):
        return list(refs)
    rank = sorted(refs, key=lambda r: hashlib.sha256(f"{seed}\x1f{r.item_key}".encode()).hexdigest())
    return sorted(rank[:size], key=lambda r: r.series_id)


def select_series(catalog: Catalog, selection: Selection, round_name: str | None = None) -> list[ItemRef]:
    """The series of a round: candidates whose kind, final quality decision, modality and body part
    match (an empty filter matches all), less those read in earlier rounds of the project when
    asked, then the seeded sample. `decision` on each ref is the final decision."""
    refs = candidates(catalog)
    finals = final_decisions(catalog, [r.series_id for r in refs])
    refs = [r.replace(decision=finals[r.series_id].decision) for r in refs]
    refs = [r for r in refs
            if (not selection.series_kinds or r.kind in selection.series_kinds)
            and (not selection.quality_decisions or r.decision in selection.quality_decisions)
            and (not selection.modalities or r.modality in selection.modalities)
            and (not selection.body_parts or (r.body_part or "").upper() in selection.body_parts)]
    if selection.exclude_read and selection.project:
        read = read_in_project(catalog, selection.project, round_name)
        refs = [r for r in refs if r.series_id not in read]
    return sample(refs, selection.size, selection.seed)


def select_review(catalog: Catalog, size: int | None = None, seed: int = 0, project: str | None = None,
                  round_name: str | None = None) -> list[ItemRef]:
    """The series of the quality-review round: the model said `review` and no person has decided
    (and, with `project`, none was read in an earlier round of it)."""
    decided = _human_reviews(catalog, None)
    refs = [r for r in candidates(catalog) if r.decision == QualityDecision.REVIEW and r.series_id not in decided]
    if project:
        read = read_in_project(catalog, project, round_name)
        refs = [r for r in refs if r.series_id not in read]
    return sample(refs, size, seed)


def _human_reviews(catalog: Catalog, series_ids: Iterable[int] | None) -> dict[int, list[QualityReview]]:
    query = select(QualityReview).order_by(QualityReview.id)
    if series_ids is not None:
        query = query.where(QualityReview.series_id.in_(list(series_ids)))
    out: dict[int, list[QualityReview]] = {}
    with catalog.session() as s:
        for row in s.scalars(query):
            out.setdefault(row.series_id, []).append(row)
    return out


def human_decision(reviews: Sequence[QualityReview]) -> FinalDecision | None:
    """The decision of a series' latest review round: the majority of its reviewers, the most
    cautious decision among the tied ones when there is no majority."""
    if not reviews:
        return None
    latest = max(reviews, key=lambda r: (r.decided_at.replace(tzinfo=None), r.id)).round_id
    last = [r for r in reviews if r.round_id == latest]
    votes = Counter(ReviewDecision(r.decision) for r in last)
    top = max(votes.values())
    decision = max((d for d, n in votes.items() if n == top), key=REVIEW_SEVERITY.__getitem__)
    reasons = [r.reason for r in last if r.decision == decision and r.reason]
    return FinalDecision(series_id=last[0].series_id, decision=str(decision), source="human",
                         reason="; ".join(dict.fromkeys(reasons)) or None,
                         reviewers=tuple(sorted({r.reviewer for r in last})),
                         decided_at=max(r.decided_at for r in last))


def final_decisions(catalog: Catalog, series_ids: Iterable[int] | None = None) -> dict[int, FinalDecision]:
    """Final quality decision per series (all series with a quality record or a human review, or
    those of `series_ids`): the human decision where there is one, else the model's."""
    ids = None if series_ids is None else list(series_ids)
    quality = newest_records(catalog, "quality", ids)
    humans = _human_reviews(catalog, ids)
    out = {}
    for sid in sorted(set(ids if ids is not None else set(quality) | set(humans))):
        human = human_decision(humans.get(sid, []))
        if human is not None:
            out[sid] = human
        else:
            decision = model_decision(quality.get(sid))
            out[sid] = FinalDecision(sid, decision, "model" if decision else None,
                                     quality[sid].reason if sid in quality else None)
    return out


def series_id_of(catalog: Catalog, series: int | str) -> int | None:
    """A catalog series id from an id or a de-identified series key (an item key of any round)."""
    if isinstance(series, int):
        return series
    with catalog.session() as s:
        found = s.scalar(select(AnnotationItem.series_id).where(AnnotationItem.item_key == series).limit(1))
        if found is None:
            found = s.scalar(select(QualityReview.series_id).where(QualityReview.series_key == series).limit(1))
    if found is None:
        found = next((r.series_id for r in candidates(catalog) if r.item_key == series), None)
    return found


def final_quality_decision(catalog: Catalog, series: int | str) -> FinalDecision:
    """A series' final quality decision: the human one when present, else the model's. `series`: a
    catalog series id or the de-identified series key."""
    sid = series_id_of(catalog, series)
    if sid is None:
        raise ValueError(f"series {series!r} is not in the catalog (no id or de-identified key matches)")
    return final_decisions(catalog, [sid])[sid]


def select_for_release(catalog: Catalog, decisions: Sequence[str] = (QualityDecision.APPROVE,)) -> list[int]:
    """Series ids whose final quality decision is one of `decisions` (approved ones by default):
    what release selection reads, so a person's exclude or quarantine overrides the model."""
    return [sid for sid, final in final_decisions(catalog).items() if final.decision in decisions]


__all__ = ["FinalDecision", "ItemRef", "REVIEW_SEVERITY", "ReviewDecision", "Selection", "candidates",
           "final_decisions", "final_quality_decision", "human_decision", "model_decision", "newest_records", "read_in_project",
           "sample", "select_for_release", "select_review", "select_series", "series_id_of", "series_key"]
