"""Items: registered by the pipeline, read by readers; DICOM bytes and raw frames served cleaned."""
from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from sqlalchemy import func, select

from annotation import queue
from annotation.deps import CurrentUser, DB, IdPath, IndexPath, project_roles, require
from annotation.imaging import UriError
from annotation.models import Instance, Item, Role, Task, TaskKind, TaskStatus, User
from annotation.registration import register
from annotation.permissions import MATRIX, Action
from annotation.routers.projects import get_project
from annotation.schemas import GoldIn, ItemBrief, ItemOut, ItemsIn, RegisterOut
from annotation.views import item_out

router = APIRouter(tags=["items"])


@router.post("/api/projects/{project_id}/items", response_model=RegisterOut, status_code=status.HTTP_201_CREATED)
def register_items(project_id: IdPath, body: ItemsIn, request: Request, db: DB, user: CurrentUser) -> RegisterOut:
    """Idempotent per (external_id, round): a second registration returns the existing item."""
    require(db, user, project_id, Action.REGISTER_ITEMS)
    project = get_project(db, project_id, lock=True)  # a round cannot close while items enter it
    created, existing = register(db, project, body.items, request.app.state.instances)
    return RegisterOut(created=created, existing=existing)


@router.get("/api/projects/{project_id}/items", response_model=list[ItemBrief])
def list_items(project_id: IdPath, db: DB, user: CurrentUser, round: int | None = Query(None, ge=1, le=10_000),
               limit: int = Query(500, ge=1, le=5000), offset: int = Query(0, ge=0, le=10**9)) -> list[ItemBrief]:
    require(db, user, project_id, Action.LIST_ITEMS)
    q = select(Item).where(Item.project_id == project_id).order_by(Item.id).limit(limit).offset(offset)
    if round is not None:
        q = q.where(Item.round == round)
    items = db.scalars(q).all()
    counts = dict(db.execute(
        select(Task.item_id, func.count()).where(Task.item_id.in_([i.id for i in items]), Task.kind == TaskKind.ANNOTATE.value,
                                                 Task.status == TaskStatus.SUBMITTED.value).group_by(Task.item_id)
    ).all()) if items else {}
    return [ItemBrief(id=i.id, external_id=i.external_id, round=i.round, modality=i.modality, body_part=i.body_part,
                      is_gold=i.is_gold, instances=len(i.instances), submitted=counts.get(i.id, 0),
                      complete=i.completed_at is not None) for i in items]


def readable_item(db, user: User, item_id: IdPath) -> tuple[Item, bool]:
    """The item if the user may see it: staff of its project, or a reader holding one of its tasks.

    Returns (item, is_staff); 404 for an unknown item, 403 otherwise.
    """
    item = db.get(Item, item_id)
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such item")
    roles = project_roles(db, user, item.project_id)
    if user.is_admin or roles & MATRIX[Action.VIEW_ITEM]:
        return item, True
    if roles & {Role.ANNOTATOR, Role.REVIEWER}:
        mine = db.scalar(select(Task.id).where(Task.item_id == item.id, Task.assignee_id == user.id).limit(1))
        if mine is not None:
            return item, False
    raise HTTPException(status.HTTP_403_FORBIDDEN, "this item is not in your tasks")


@router.get("/api/items/{item_id}", response_model=ItemOut)
def read_item(item_id: IdPath, request: Request, db: DB, user: CurrentUser) -> ItemOut:
    item, staff = readable_item(db, user, item_id)
    return item_out(item, staff=staff, cache=request.app.state.instances)


def _instance(item: Item, position: IndexPath) -> Instance:
    if position < 0 or position >= len(item.instances):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such instance in this item")
    return item.instances[position]


@router.get("/api/items/{item_id}/instances/{position}/file", response_class=Response,
            responses={200: {"content": {"application/dicom": {}}}})
def instance_file(item_id: IdPath, position: IndexPath, request: Request, db: DB, user: CurrentUser) -> Response:
    """The whole DICOM object, identifying attributes stripped, for the browser to decode (16-bit kept)."""
    item, _ = readable_item(db, user, item_id)
    inst = _instance(item, position)
    db.close()  # free the connection before the (possibly slow) read
    try:
        data = request.app.state.instances.cleaned(inst.uri)
    except UriError as exc:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(exc)) from None
    return Response(data, media_type="application/dicom", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/api/items/{item_id}/instances/{position}/frames/{frame}", response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}}}})
def instance_frame(item_id: IdPath, position: IndexPath, frame: IndexPath, request: Request, db: DB, user: CurrentUser) -> Response:
    """One frame, little-endian, shape, photometric interpretation and VOI in headers (for plain-canvas
    clients): greyscale as stored values (MONOCHROME1 too: the client inverts), colour as 8-bit RGB."""
    item, _ = readable_item(db, user, item_id)
    inst = _instance(item, position)
    db.close()
    try:
        arr, ds, photometric = request.app.state.instances.frame(inst.uri, frame)
    except IndexError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such frame") from None
    except UriError as exc:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(exc)) from None
    colour = photometric == "RGB"
    slope = 1.0 if colour else float(getattr(ds, "RescaleSlope", 1) or 1)
    intercept = 0.0 if colour else float(getattr(ds, "RescaleIntercept", 0) or 0)
    headers = {
        "Cache-Control": "private, max-age=3600",
        "X-Rows": str(arr.shape[0]), "X-Columns": str(arr.shape[1]),
        "X-Samples-Per-Pixel": str(arr.shape[2] if arr.ndim == 3 else 1),
        "X-Dtype": arr.dtype.newbyteorder("<").str,
        "X-Photometric-Interpretation": photometric,
        "X-Rescale-Slope": repr(slope), "X-Rescale-Intercept": repr(intercept),
    }
    wc, ww = getattr(ds, "WindowCenter", None), getattr(ds, "WindowWidth", None)
    if colour:  # identity on 8-bit RGB
        headers["X-Window-Center"], headers["X-Window-Width"] = "127.5", "255.0"
    elif wc is not None and ww is not None:
        wc = wc[0] if hasattr(wc, "__len__") and not isinstance(wc, str) else wc
        ww = ww[0] if hasattr(ww, "__len__") and not isinstance(ww, str) else ww
        headers["X-Window-Center"], headers["X-Window-Width"] = str(float(wc)), str(float(ww))
    else:  # no window in the header: the full range of this frame's modality values (as Cornerstone does)
        lo, hi = float(arr.min()) * slope + intercept, float(arr.max()) * slope + intercept
        lo, hi = min(lo, hi), max(lo, hi)
        headers["X-Window-Center"], headers["X-Window-Width"] = repr((lo + hi) / 2), repr(max(1.0, hi - lo))
    return Response(arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes(), media_type="application/octet-stream",
                    headers=headers)


@router.put("/api/items/{item_id}/gold", response_model=ItemOut)
def set_gold(item_id: IdPath, body: GoldIn, db: DB, user: CurrentUser) -> ItemOut:
    """Mark an item as gold (known answer, shown to every reader at the project's rate) or unmark it."""
    item = db.get(Item, item_id)
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such item")
    require(db, user, item.project_id, Action.SET_GOLD)
    project = get_project(db, item.project_id)
    was_gold = item.is_gold
    item.is_gold = body.is_gold
    if body.is_gold and not was_gold:
        queue.purge_open_tasks(db, item)
    elif not body.is_gold and was_gold:  # back in the queue at the item's priority
        queue.open_tasks_for_item(db, project, item)
    item.gold_answer = body.gold_answer.model_dump() if body.gold_answer else item.gold_answer
    if item.is_gold:
        item.completed_at = None
    db.flush()
    return item_out(item, staff=True)
