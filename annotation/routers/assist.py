"""Model suggestions of an item: the pipeline stores them, readers see them (blind first: after their
unaided answer), and the reader's unaided answer is recorded before the reveal."""
from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from annotation import assist, queue
from annotation.deps import CurrentUser, DB, IdPath, project_roles, require
from annotation.models import Item, Project, SchemaVersion
from annotation.permissions import MATRIX, Action
from annotation.routers.items import readable_item
from annotation.routers.tasks import _task_for
from annotation.schemas import PredictionsIn, PredictionsOut, UnaidedIn

router = APIRouter(tags=["assist"])


def _item(db, item_id: int) -> Item:
    item = db.get(Item, item_id)
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such item")
    return item


@router.put("/api/items/{item_id}/predictions", response_model=PredictionsOut)
def put_predictions(item_id: IdPath, body: PredictionsIn, db: DB, user: CurrentUser) -> PredictionsOut:
    """Replaces the item's suggestions (the same body twice leaves the same state)."""
    item = _item(db, item_id)
    require(db, user, item.project_id, Action.PREDICT)
    project = db.get(Project, item.project_id)
    pred = assist.store_predictions(db, item, queue.current_schema(db, project), body, user)
    return assist.predictions_out(pred, project, hidden=False)


@router.get("/api/items/{item_id}/predictions", response_model=PredictionsOut)
def get_predictions(item_id: IdPath, db: DB, user: CurrentUser) -> PredictionsOut:
    """`hidden` while a blind-first reader has not answered every label once (see POST .../unaided);
    `model` null when no model's suggestions are stored for the item."""
    item = _item(db, item_id)
    if user.is_admin or project_roles(db, user, item.project_id) & MATRIX[Action.PREDICT]:
        staff = True
    else:
        item, staff = readable_item(db, user, item_id)
    pred = assist.prediction_of(db, item.id)
    project = db.get(Project, item.project_id)
    if pred is None:  # no model ran on it: an empty answer (model null), so the viewer shows no panel
        return PredictionsOut(item_id=item.id, blind_first=project.blind_first)
    return assist.predictions_out(pred, project, hidden=not assist.revealed(db, project, item, user, staff))


@router.post("/api/tasks/{task_id}/unaided", response_model=PredictionsOut)
def record_unaided(task_id: IdPath, body: UnaidedIn, db: DB, user: CurrentUser) -> PredictionsOut:
    """Blind first: records the reader's answer before the model's and answers with the suggestions."""
    task = _task_for(db, user, task_id, own=True)
    db.refresh(task, with_for_update=True)
    project = db.get(Project, task.project_id)
    schema = db.get(SchemaVersion, task.schema_version_id) if task.schema_version_id else queue.current_schema(db, project)
    assist.record_unaided(db, project, task, schema, body.labels)
    pred = assist.prediction_of(db, task.item_id)
    if pred is None:  # recorded all the same: the model had nothing to show for this item
        return PredictionsOut(item_id=task.item_id, blind_first=project.blind_first)
    return assist.predictions_out(pred, project, hidden=False)
