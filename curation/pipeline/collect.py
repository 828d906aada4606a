"""Collect a round's readings from the annotation service's export into the catalog, once.

The service exports one row per yes/no answer (`record` label), per region (`record` roi) and per
quality decision (`record` quality) of each reading (annotation/exports/tabular.py, CSV_COLUMNS).
`export_tables` turns those rows into the long reading table `curation.agreement.table` reads
(`item,label,annotator,value,confidence,seconds`) and a box table (`item,label,annotator,x0..y1`);
`collect` writes them, keyed by the service's task and the record's place in it, so collecting the
same export again, or a later one with more readings, writes each reading once.

Readers are pseudonymous from here on: `reader_pseudonym` is a keyed hash of the service username
(the store's pseudonymisation secret), stable across rounds and never reversible without the key.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from curation.agreement.table import Readings, validate
from curation.catalog import Catalog, add_event
from curation.catalog.models import AnnotationItem, AnnotationRound, QualityReview, Reading
from curation.pipeline.dispatch import STAGE, RoundState
from curation.pipeline.result import StageResult
from curation.vocabulary import ReviewDecision, StageStatus

#: The export's record kinds and the reading states that count (annotation/exports/tabular.py).
LABEL, ROI, QUALITY = "label", "roi", "quality"
_ANNOTATE, _SUBMITTED, _REJECTED = "annotate", "submitted", "rejected"
READING_COLUMNS = ("item", "label", "annotator", "value", "confidence", "seconds", "task_id", "submitted_at")
MASK_COLUMNS = ("item", "label", "annotator", "instance", "frame", "points")
BOX_COLUMNS = ("item", "label", "annotator", "x0", "y0", "x1", "y1", "roi_kind", "instance", "frame", "points",
               "task_id", "ordinal", "submitted_at")


def reader_pseudonym(username: str, secret: bytes) -> str:
    """`rdr-` and 16 hex digits of HMAC-SHA256(secret, username): the same reader gets the same
    pseudonym in every round; without the secret the username cannot be recovered or tested."""
    digest = hmac.new(secret, b"annotation-reader\x00" + username.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"rdr-{digest[:16]}"


def _number(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number = float(value)
    return number if np.isfinite(number) else None


def _counts(row: Mapping[str, Any]) -> bool:
    """A submitted first reading that no verifier rejected."""
    return (str(row.get("task_kind") or _ANNOTATE) == _ANNOTATE and str(row.get("status")) == _SUBMITTED
            and str(row.get("decision") or "") != _REJECTED)


def _task_seconds(row: Mapping[str, Any]) -> float | None:
    active = _number(row.get("time_active_s"))
    return active if active else _number(row.get("time_total_s"))


@dataclass(frozen=True)
class ExportTables:
    """`readings`: one row per yes/no answer (READING_COLUMNS); `boxes`: one row per region
    (BOX_COLUMNS); `quality`: one row per quality decision (item, annotator, decision, reason,
    task_id, submitted_at). Annotators are pseudonyms."""

    readings: pd.DataFrame
    boxes: pd.DataFrame
    quality: pd.DataFrame


def export_tables(rows: Iterable[Mapping[str, Any]], pseudonym: Callable[[str], str]) -> ExportTables:
    """The service's export rows (CSV dict rows or `annotation.exports.tabular.rows`) as the long
    reading table, the box table and the quality decisions; verification tasks, skipped and rejected
    readings are left out. `seconds` is the label's own time where the viewer measured it, else the
    task's active (or wall) time shared equally by its yes/no answers."""
    rows = [r for r in rows if _counts(r)]
    answers_per_task: dict[Any, int] = {}
    for r in rows:
        if r.get("record") == LABEL:
            answers_per_task[r["task_id"]] = answers_per_task.get(r["task_id"], 0) + 1
    names: dict[str, str] = {}

    def who(row: Mapping[str, Any]) -> str:
        name = str(row["annotator"])
        if name not in names:
            names[name] = pseudonym(name)
        return names[name]

    readings, boxes, quality = [], [], []
    ordinal: dict[tuple[Any, str], int] = {}
    for r in rows:
        base = {"item": str(r["external_id"]), "annotator": who(r), "task_id": int(r["task_id"]),
                "submitted_at": r.get("submitted_at") or None}
        if r.get("record") == LABEL:
            seconds = _number(r.get("time_label_s"))
            if seconds is None:
                task = _task_seconds(r)
                seconds = None if task is None else task / answers_per_task[r["task_id"]]
            readings.append({**base, "label": str(r["label"]), "value": int(float(r["value"])),
                             "confidence": _number(r.get("confidence")), "seconds": seconds})
        elif r.get("record") == ROI:
            key = (r["task_id"], str(r["label"]))
            ordinal[key] = ordinal.get(key, 0) + 1
            points = r.get("points")
            boxes.append({**base, "label": str(r["label"]), "x0": _number(r.get("x_min")),
                          "y0": _number(r.get("y_min")), "x1": _number(r.get("x_max")), "y1": _number(r.get("y_max")),
                          "roi_kind": str(r.get("roi_kind") or "box"), "instance": int(float(r.get("instance") or 0)),
                          "frame": int(float(r.get("frame") or 0)),
                          "points": json.loads(points) if isinstance(points, str) and points else points or None,
                          "ordinal": ordinal[key]})
        elif r.get("record") == QUALITY:
            quality.append({**base, "decision": str(ReviewDecision(str(r["quality_decision"]))),
                            "reason": str(r.get("quality_reason") or "")})
    return ExportTables(pd.DataFrame(readings, columns=list(READING_COLUMNS)),
                        pd.DataFrame(boxes, columns=list(BOX_COLUMNS)),
                        pd.DataFrame(quality, columns=["item", "annotator", "decision", "reason", "task_id",
                                                       "submitted_at"]))


def _when(value: Any) -> datetime | None:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value == "":
        return None
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


def _plain(value: Any) -> Any:
    """numpy scalars and NaN as the database's plain values."""
    if value is None:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    return value.item() if isinstance(value, np.generic) else value


def in_one_transaction(catalog: Catalog, write: Callable[[Any], StageResult]) -> StageResult:
    """Run `write(session)` in one transaction, retried when a concurrent ledger writer took the head."""
    for attempt in range(10):
        try:
            with catalog.session() as s:
                return write(s)
        except IntegrityError:
            time.sleep(0.05 * (attempt + 1))
    raise RuntimeError("could not write the round's rows (ledger contention)")


def collect(catalog: Catalog, round_id: int, rows: Iterable[Mapping[str, Any]], secret: bytes) -> StageResult:
    """Write the round's exported readings (answers and regions) to the catalog, each once, with a
    `readings_collected` ledger event when anything new came in. Rows of items the round does not
    hold (another round's, or gold items not planned) are counted, not written. `secret`: the key of
    the reader pseudonyms (`curation.reid_vault.store_secret(store)`)."""
    tables = export_tables(rows, lambda name: reader_pseudonym(name, secret))

    def write(s: Any) -> StageResult:
        rnd = s.get(AnnotationRound, round_id)
        if rnd is None:
            raise ValueError(f"annotation round {round_id} is not in the catalog")
        items = {i.item_key: i.id for i in s.scalars(select(AnnotationItem).where(AnnotationItem.round_id == round_id))}
        known = set(s.execute(select(Reading.task_id, Reading.record, Reading.label, Reading.ordinal)
                              .where(Reading.round_id == round_id)).all())
        new: list[Reading] = []
        unknown = 0
        for record, frame in ((LABEL, tables.readings), (ROI, tables.boxes)):
            for r in frame.to_dict(orient="records"):
                if r["item"] not in items:
                    unknown += 1
                    continue
                key = (int(r["task_id"]), record, r["label"], int(r.get("ordinal", 0)))
                if key in known:
                    continue
                known.add(key)
                fields = {c: _plain(r.get(c)) for c in ("value", "confidence", "seconds", "roi_kind", "instance",
                                                        "frame", "x0", "y0", "x1", "y1", "points")}
                new.append(Reading(round_id=round_id, item_id=items[r["item"]], task_id=key[0], record=record,
                                   ordinal=key[3], label=r["label"], reader=r["annotator"],
                                   submitted_at=_when(r["submitted_at"]), **fields))
        s.add_all(new)
        s.flush()
        totals = s.execute(select(Reading.record, Reading.reader).where(Reading.round_id == round_id)).all()
        rnd.n_readings = sum(1 for record, _ in totals if record == LABEL)
        rnd.n_readers = len({reader for _, reader in totals})
        if new:
            rnd.state = RoundState.COLLECTED
            digest = hashlib.sha256("\n".join(sorted(f"{r.task_id}/{r.record}/{r.label}/{r.ordinal}/{r.reader}/"
                                                     f"{r.value}/{r.x0},{r.y0},{r.x1},{r.y1}" for r in new))
                                    .encode()).hexdigest()
            add_event(s, stage=STAGE, action="readings_collected", subject=f"annotation_round:{round_id}",
                      outputs=[digest], details={"new_answers": sum(r.record == LABEL for r in new),
                                                 "new_regions": sum(r.record == ROI for r in new),
                                                 "answers": rnd.n_readings, "readers": rnd.n_readers,
                                                 "rows_of_other_items": unknown})
        metrics = {"round_id": round_id, "answers": rnd.n_readings, "regions": sum(r == ROI for r, _ in totals),
                   "readers": rnd.n_readers, "new": len(new), "rows_of_other_items": unknown}
        return StageResult(status=StageStatus.OK, metrics=metrics, reused=not new)

    return in_one_transaction(catalog, write)


def collect_quality(catalog: Catalog, round_id: int, rows: Iterable[Mapping[str, Any]], secret: bytes) -> StageResult:
    """Write the human quality decisions of a quality-review round (export rows with record
    `quality`, or the service's `export/quality` decisions) as `quality_review` rows, each once, with
    a `quality_reviews_collected` ledger event. Gold items are left out."""
    rows = [dict(r, record=QUALITY, quality_decision=r.get("quality_decision") or r.get("decision"),
                 quality_reason=r.get("quality_reason", r.get("reason")), annotator=r.get("annotator", r.get("reader")),
                 submitted_at=r.get("submitted_at", r.get("decided_at")), status=r.get("status", _SUBMITTED))
            for r in rows if r.get("record", QUALITY) == QUALITY and not int(r.get("is_gold") or 0)]
    decisions = export_tables(rows, lambda name: reader_pseudonym(name, secret)).quality

    def write(s: Any) -> StageResult:
        if s.get(AnnotationRound, round_id) is None:
            raise ValueError(f"annotation round {round_id} is not in the catalog")
        items = {i.item_key: i.series_id for i in s.scalars(select(AnnotationItem)
                                                          .where(AnnotationItem.round_id == round_id))}
        known = set(s.execute(select(QualityReview.series_id, QualityReview.reviewer)
                              .where(QualityReview.round_id == round_id)).all())
        new = []
        for r in decisions.to_dict(orient="records"):
            sid = items.get(r["item"])
            if sid is None or (sid, r["annotator"]) in known:
                continue
            known.add((sid, r["annotator"]))
            new.append(QualityReview(series_id=sid, series_key=r["item"], round_id=round_id, decision=r["decision"],
                                     reason=r["reason"], reviewer=r["annotator"],
                                     decided_at=_when(r["submitted_at"]) or datetime.now(timezone.utc)))
        s.add_all(new)
        if new:
            add_event(s, stage=STAGE, action="quality_reviews_collected", subject=f"annotation_round:{round_id}",
                      outputs=sorted(f"{q.series_key}={q.decision}" for q in new),
                      details={"new_decisions": len(new), "series": len({q.series_id for q in new})})
        return StageResult(status=StageStatus.OK, reused=not new,
                           metrics={"round_id": round_id, "decisions": len(known), "new": len(new)})

    return in_one_transaction(catalog, write)


@dataclass(frozen=True)
class RoundReadings:
    """What a round's analysis reads back from the catalog: the validated long table (with `gold`
    where an item has a known answer), the box table (with `width`,`height` where known), which
    items are gold, and the painted masks (one row per slice: item, label, annotator, instance,
    frame, points = the service's `{rows, columns, rle}`)."""

    readings: Readings
    boxes: pd.DataFrame
    gold_items: frozenset[str]
    labels: dict[str, str]
    regions: dict[str, str]
    masks: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(MASK_COLUMNS)))


def round_readings(catalog: Catalog, round_id: int) -> RoundReadings:
    """The round's readings as `curation.agreement` reads them (raises TableError when there are none)."""
    with catalog.session() as s:
        rnd = s.get(AnnotationRound, round_id)
        if rnd is None:
            raise ValueError(f"annotation round {round_id} is not in the catalog")
        items = {i.id: i for i in s.scalars(select(AnnotationItem).where(AnnotationItem.round_id == round_id))}
        rows = list(s.scalars(select(Reading).where(Reading.round_id == round_id).order_by(Reading.id)))
        params = dict(rnd.params or {})
    answers = [{"item": items[r.item_id].item_key, "label": r.label, "annotator": r.reader, "value": r.value,
                "confidence": r.confidence, "seconds": r.seconds,
                "gold": (items[r.item_id].gold_answer or {}).get(r.label) if items[r.item_id].is_gold else None}
               for r in rows if r.record == LABEL]
    frame = pd.DataFrame(answers, columns=["item", "label", "annotator", "value", "confidence", "seconds", "gold"])
    if frame["gold"].isna().all():
        frame = frame.drop(columns="gold")
    boxes = pd.DataFrame([{"item": items[r.item_id].item_key, "label": r.label, "annotator": r.reader,
                           "x0": r.x0, "y0": r.y0, "x1": r.x1, "y1": r.y1, "roi_kind": r.roi_kind,
                           "frame": r.frame, "width": items[r.item_id].width, "height": items[r.item_id].height}
                          for r in rows if r.record == ROI],
                         columns=["item", "label", "annotator", "x0", "y0", "x1", "y1", "roi_kind", "frame", "width",
                                  "height"])
    masks = pd.DataFrame([{"item": items[r.item_id].item_key, "label": r.label, "annotator": r.reader,
                           "instance": r.instance or 0, "frame": r.frame or 0, "points": r.points}
                          for r in rows if r.record == ROI and r.roi_kind == "mask" and isinstance(r.points, dict)],
                         columns=list(MASK_COLUMNS))
    return RoundReadings(validate(frame), boxes, frozenset(i.item_key for i in items.values() if i.is_gold),
                         dict(params.get("labels") or {}), dict(params.get("regions") or {}), masks)


__all__ = ["BOX_COLUMNS", "MASK_COLUMNS", "ExportTables", "READING_COLUMNS", "RoundReadings", "collect", "collect_quality",
           "export_tables", "in_one_transaction", "reader_pseudonym", "round_readings"]
