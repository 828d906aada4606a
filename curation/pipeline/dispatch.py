"""The catalog side of dispatching a round to the annotation service: plan the round (its series and
label schema, keyed by the caller's round name so a re-run adds nothing twice), build the service's
item bodies (de-identified objects only), and record what the service registered.

The HTTP calls are the Airflow hook's (operators/); this module never talks to the service, so the
round's bookkeeping runs and is tested without it.
"""
from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any

from sqlalchemy import select

from curation.annotation_schema import LabelSchema
from curation.catalog import Catalog, StageRecord, add_event
from curation.catalog.models import AnnotationItem, AnnotationRound
from curation.pipeline.refs import XcomRef
from curation.pipeline.result import StageResult
from curation.pipeline.select import ItemRef
from curation.store import Store, Zone
from curation.vocabulary import StageStatus

STAGE = "annotation"

#: The service's limits on the quality context shown to a human reviewer (annotation/schemas.py).
_METRIC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_MAX_METRICS = 200
_MAX_URIS = 2000


class RoundState(StrEnum):
    """Where a round stands on the pipeline's side (the service keeps its own open/complete/closed)."""

    PLANNED = "planned"
    DISPATCHED = "dispatched"
    CLOSED = "closed"
    COLLECTED = "collected"
    ANALYSED = "analysed"


@dataclass(frozen=True)
class RoundRef(XcomRef):
    """One round: catalog id, project, the caller's round name, kind, schema key, item count, state
    and the service's round id and number once dispatched."""

    round_id: int
    project: str
    name: str
    kind: str
    schema: str
    n_items: int = 0
    state: str | None = None
    service_round_id: int | None = None
    service_round_number: int | None = None


def _ref(row: AnnotationRound, n_items: int) -> RoundRef:
    return RoundRef(round_id=row.id, project=row.project, name=row.name, kind=row.kind,
                    schema=f"{row.schema_name}_v{row.schema_version}", n_items=n_items, state=row.state,
                    service_round_id=row.service_round_id, service_round_number=row.service_round_number)


def _subject(round_id: int) -> str:
    return f"annotation_round:{round_id}"


def plan_round(catalog: Catalog, *, project: str, name: str, schema: LabelSchema, items: Sequence[ItemRef | Mapping],
               params: Mapping[str, Any] | None = None,
               gold_answers: Mapping[str, Mapping[str, int]] | None = None) -> RoundRef:
    """The round `name` of `project` with these items: created, or found with any new items added
    (nothing twice). `gold_answers`: item key -> {label: 0/1} for gold items with a known answer.
    The schema's labels and regions are kept in the round's params, so its analysis reads the
    version it was read under."""
    refs = [ItemRef.from_xcom(i) for i in items]
    gold_answers = gold_answers or {}
    with catalog.session() as s:
        row = s.scalar(select(AnnotationRound).where(AnnotationRound.project == project, AnnotationRound.name == name))
        if row is None:
            row = AnnotationRound(project=project, name=name, kind=schema.project_kind, schema_name=schema.name,
                                  schema_version=schema.version, state=RoundState.PLANNED,
                                  params={**dict(params or {}), "labels": schema.labels, "regions": schema.regions})
            s.add(row)
            s.flush()
        elif (row.schema_name, row.schema_version) != (schema.name, schema.version):
            raise ValueError(f"round {name!r} of {project!r} was planned with schema "
                             f"{row.schema_name}_v{row.schema_version}, not {schema.key}")
        known = set(s.scalars(select(AnnotationItem.item_key).where(AnnotationItem.round_id == row.id)))
        new = [r for r in refs if r.item_key not in known]
        for r in new:
            answer = gold_answers.get(r.item_key)
            s.add(AnnotationItem(round_id=row.id, series_id=r.series_id, item_key=r.item_key,
                                 is_gold=bool(r.is_gold or answer), gold_answer=dict(answer) if answer else None,
                                 width=r.width, height=r.height))
        row.n_items = len(known) + len(new)
        if new:
            add_event(s, stage=STAGE, action="plan", subject=_subject(row.id),
                      inputs=sorted(r.item_key for r in new),
                      details={"project": project, "schema": schema.key, "new_items": len(new),
                               "items": row.n_items})
        return _ref(row, row.n_items)


def service_items(catalog: Catalog, store: Store, items: Sequence[ItemRef | Mapping], *,
                  quality_context: bool = False,
                  gold_answers: Mapping[str, Mapping[str, int]] | None = None) -> list[dict[str, Any]]:
    """The service's item bodies (`ItemIn`) for these series: external id = the de-identified
    series key, URIs of the de-identified objects only, modality and body part for routing, for a
    quality review the model's decision, score, reason and metrics beside the images, and for a gold
    item (`gold_answers`: item key -> {label: 0/1}) the answer the service scores readers against."""
    gold_answers = gold_answers or {}
    refs = [ItemRef.from_xcom(i) for i in items]
    with catalog.session() as s:
        records = {r.id: r for r in s.scalars(select(StageRecord).where(
            StageRecord.id.in_([r.deid_record for r in refs if r.deid_record is not None])))}
    quality = _quality_records(catalog, [r.series_id for r in refs]) if quality_context else {}
    out = []
    for r in refs:
        record = records.get(r.deid_record or -1)
        keys = list((record.metrics or {}).get("outputs") or []) if record is not None else []
        if not keys:
            raise ValueError(f"series {r.series_id} has no de-identified objects to send (deid record "
                             f"{r.deid_record})")
        if len(keys) > _MAX_URIS:
            raise ValueError(f"series {r.series_id} has {len(keys)} objects; an item takes at most {_MAX_URIS}")
        body: dict[str, Any] = {"external_id": r.item_key, "uris": [store.uri_for(Zone.DEID, k) for k in keys],
                                "modality": r.modality or "", "body_part": (r.body_part or "")[:64]}
        answer = gold_answers.get(r.item_key)
        if r.is_gold or answer:
            body["is_gold"] = True
        if answer:
            body["gold_answer"] = {"labels": [{"label": label, "value": bool(value), "confidence": 100}
                                              for label, value in sorted(answer.items())]}
        if quality_context:
            body["context"] = {"quality": quality_view(quality.get(r.series_id), r)}
        out.append(body)
    return out


def _quality_records(catalog: Catalog, series_ids: Sequence[int]) -> dict[int, StageRecord]:
    with catalog.session() as s:
        rows = s.scalars(select(StageRecord).where(StageRecord.stage == "quality", StageRecord.subject_type == "series",
                                                   StageRecord.subject_id.in_(list(series_ids)))
                         .order_by(StageRecord.id))
        return {row.subject_id: row for row in rows}


def quality_view(record: StageRecord | None, ref: ItemRef) -> dict[str, Any]:
    """What a human reviewer sees of the model's view: decision, score (probability the series is
    degraded), reason and the finite metrics, within the service's limits."""
    metrics = (record.metrics or {}) if record is not None else {}
    decision = metrics.get("decision") or {}
    values = {k: float(v) for k, v in (metrics.get("metrics") or {}).items()
              if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
              and abs(v) <= 1e12 and _METRIC_NAME.match(str(k))}
    view: dict[str, Any] = {"decision": decision.get("decision") or ref.decision,
                            "reason": (record.reason if record is not None else ref.decision_reason) or "",
                            "model": f"quality ({ref.kind})" if ref.kind else "quality",
                            "metrics": dict(sorted(values.items())[:_MAX_METRICS])}
    score = decision.get("p_degraded")
    if isinstance(score, (int, float)) and math.isfinite(score):
        view["score"] = float(score)
    return view


def record_dispatch(catalog: Catalog, round_id: int, service_round: Mapping[str, Any],
                    item_ids: Mapping[str, int] | None = None) -> StageResult:
    """Record what the service answered to the round's creation (`RoundCreated` or `RoundOut`
    JSON): its round id and number and each item's service id (from `per_item`, or `item_ids`:
    external id -> item id), with a `dispatch` ledger event. Recording the same answer again changes
    nothing and appends nothing."""
    rnd = service_round.get("round", service_round)
    ids = {str(p["external_id"]): int(p["item_id"]) for p in rnd.get("per_item") or []}
    ids.update({str(k): int(v) for k, v in (item_ids or {}).items()})
    with catalog.session() as s:
        row = s.get(AnnotationRound, round_id)
        if row is None:
            raise ValueError(f"annotation round {round_id} is not in the catalog")
        items = list(s.scalars(select(AnnotationItem).where(AnnotationItem.round_id == round_id)))
        changed = [i for i in items if i.item_key in ids and i.service_item_id != ids[i.item_key]]
        for item in changed:
            item.service_item_id = ids[item.item_key]
        fresh = (row.service_round_id, row.service_round_number) != (rnd.get("id"), rnd.get("number"))
        if fresh:
            row.service_round_id, row.service_round_number = rnd.get("id"), rnd.get("number")
        if row.state == RoundState.PLANNED:
            row.state = RoundState.DISPATCHED
            row.dispatched_at = datetime.now(timezone.utc)
            fresh = True
        registered = sum(1 for i in items if i.service_item_id is not None)
        if fresh or changed:
            digest = hashlib.sha256("\n".join(sorted(f"{k}={v}" for k, v in ids.items())).encode()).hexdigest()
            add_event(s, stage=STAGE, action="dispatch", subject=_subject(round_id), outputs=[digest],
                      details={"service_round_id": row.service_round_id, "service_round": row.service_round_number,
                               "items": len(items), "registered": registered, "newly_recorded": len(changed)})
        metrics = {"round_id": round_id, "items": len(items), "registered": registered,
                   "unregistered": len(items) - registered, "service_round_id": row.service_round_id,
                   "service_round": row.service_round_number}
        return StageResult(status=StageStatus.OK, metrics=metrics, reused=not (fresh or changed),
                           refs=(_ref(row, len(items)),))


def record_close(catalog: Catalog, round_id: int, service_round: Mapping[str, Any]) -> StageResult:
    """Record the service's round at the end of the wait (`RoundOut` JSON): closed at, and how
    complete it was (a round closed at its deadline may be partial: its counts say how much)."""
    with catalog.session() as s:
        row = s.get(AnnotationRound, round_id)
        if row is None:
            raise ValueError(f"annotation round {round_id} is not in the catalog")
        metrics = {"round_id": round_id, "service_state": service_round.get("state"),
                   "items": service_round.get("items"), "complete_items": service_round.get("complete_items"),
                   "readings_required": service_round.get("readings_required"),
                   "readings_submitted": service_round.get("readings_submitted")}
        metrics["partial"] = bool(metrics["items"] and metrics["complete_items"] != metrics["items"])
        if row.closed_at is None:
            row.closed_at = datetime.now(timezone.utc)
            row.state = RoundState.CLOSED
            add_event(s, stage=STAGE, action="close", subject=_subject(round_id), details=metrics)
        return StageResult(status=StageStatus.OK, metrics=metrics, refs=(_ref(row, row.n_items),))


def round_ref(catalog: Catalog, round_id: int) -> RoundRef:
    """The round's current reference (state, service ids)."""
    with catalog.session() as s:
        row = s.get(AnnotationRound, round_id)
        if row is None:
            raise ValueError(f"annotation round {round_id} is not in the catalog")
        return _ref(row, row.n_items)


__all__ = ["RoundRef", "RoundState", "STAGE", "plan_round", "quality_view", "record_close", "record_dispatch",
           "round_ref", "service_items"]
