"""Registering items (idempotent per external_id and round), shared by the items and rounds routers."""
from __future__ import annotations

from fastapi import HTTPException, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from annotation import queue
from annotation.imaging import InstanceCache, UriError, header_of
from annotation.models import Instance, Item, Project, Round, RoundState
from annotation.schemas import ItemIn


def round_of(db: Session, project_id: int, number: int) -> Round | None:
    return db.scalar(select(Round).where(Round.project_id == project_id, Round.number == number))


def register(db: Session, project: Project, specs: list[ItemIn], cache: InstanceCache,
             rnd: Round | None = None) -> tuple[list[int], list[int]]:
    """Create the items not yet there; returns (created ids, existing ids).

    Items go to `rnd` when given, else to their own `round` or the project's current one; a round
    object's k applies to its items, and a closed round takes no new item (409)."""
    rounds: dict[int, Round | None] = {}
    created, existing = [], []
    for spec in specs:
        number = rnd.number if rnd is not None else (spec.round or project.current_round)
        if rnd is not None and spec.round is not None and spec.round != rnd.number:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                                f"item {spec.external_id}: round {spec.round} given inside round {rnd.number}")
        if number not in rounds:
            rounds[number] = rnd if rnd is not None else round_of(db, project.id, number)
        target = rounds[number]
        found = db.scalar(select(Item.id).where(Item.project_id == project.id, Item.external_id == spec.external_id,
                                                Item.round == number))
        if found is not None:
            existing.append(found)
            continue
        if target is not None and target.state == RoundState.CLOSED.value:
            raise HTTPException(status.HTTP_409_CONFLICT, f"round {number} is closed; it takes no new items")
        headers = []
        for uri in spec.uris:
            try:
                headers.append(header_of(cache.dataset(uri)))
            except UriError as exc:
                raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"item {spec.external_id}: {exc}") from None
        item = Item(project_id=project.id, external_id=spec.external_id, round=number, modality=spec.modality,
                    body_part=spec.body_part, context=spec.context.model_dump(exclude_none=True),
                    is_gold=spec.is_gold, gold_answer=spec.gold_answer.model_dump() if spec.gold_answer else None,
                    priority=spec.priority, readers_required=target.readers_per_item if target is not None else None)
        db.add(item)
        db.flush()
        for pos, (uri, h) in enumerate(zip(spec.uris, headers)):
            db.add(Instance(item_id=item.id, position=pos, uri=uri, sop_class_uid=h.sop_class_uid,
                            sop_instance_uid=h.sop_instance_uid, series_instance_uid=h.series_instance_uid,
                            study_instance_uid=h.study_instance_uid, frames=h.frames, rows=h.rows, columns=h.columns))
        queue.open_tasks_for_item(db, project, item)
        created.append(item.id)
    db.flush()
    return created, existing
