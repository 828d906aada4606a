"""Model assistance (issue 18): a model's suggestions per item, who may see them when, and the
record of what a reader was shown and did with them.

Blind first: on such a project a reader sees no suggestion before answering every classification
label once; that unaided answer is stored here first (AssistReveal), so the aided reading that follows
can be compared with it (anchoring). The server holds the unaided answer: a client cannot rewrite it
after seeing the model.
"""
from __future__ import annotations

import base64
import binascii
import io
from typing import Any

from fastapi import HTTPException, status
from PIL import Image, UnidentifiedImageError
from sqlalchemy import select
from sqlalchemy.orm import Session

from annotation.models import (
    AssistReveal,
    Item,
    Prediction,
    PredictionHeatmap,
    Project,
    ProjectKind,
    SchemaVersion,
    Task,
    TaskKind,
    TaskStatus,
    User,
)
from annotation.schemas import AssistIn, HeatmapOut, LabelValue, ModelRef, PredictionsIn, PredictionsOut, RoiIn, SuggestionAction

MAX_HEATMAP_SIDE = 4096  # a heatmap is a coarse map; a larger PNG is refused before it is decoded
REGION_TOLERANCE_PX = 0.5  # an accepted suggestion's region may differ from its box by rounding only


def _unprocessable(msg: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, msg)


def classification_labels(schema: SchemaVersion | None) -> list[str]:
    return [lab["id"] for lab in (schema.definition["labels"] if schema else []) if lab["kind"] == "boolean"]


def region_label(schema: SchemaVersion | None, finding: str) -> dict | None:
    """The box label that outlines a finding, so an accepted suggested box becomes one of the reading's
    regions (exports, ROI agreement and consensus read regions only): the box label `<finding>_box`
    (the platform's convention, as the `regions` of include/annotation/schemas), else the one box label
    named after the finding ('Nodule region' for 'Nodule'). None: the project outlines no such finding.
    annotation/web/src/ai_panel.js regionLabel() applies the same rule."""
    labels = schema.definition["labels"] if schema else []
    boxes = [lab for lab in labels if lab["kind"] == "box"]
    by_id = [lab for lab in boxes if lab["id"] == f"{finding}_box"]
    if by_id:
        return by_id[0]
    named = next((lab["name"].strip().lower() for lab in labels if lab["id"] == finding and lab["kind"] == "boolean"), "")
    by_name = [lab for lab in boxes if named and (lab["name"].strip().lower() + " ").startswith(named + " ")]
    return by_name[0] if len(by_name) == 1 else None


def _same_box(roi: RoiIn, box: list[float]) -> bool:
    (x0, y0), (x1, y1) = roi.points
    return all(abs(a - b) <= REGION_TOLERANCE_PX for a, b in zip((x0, y0, x1, y1), box))


def check_regions(pred: Prediction, suggestions: list[SuggestionAction], rois: list[RoiIn],
                  schema: SchemaVersion | None) -> None:
    """Every suggested box the reader accepted or edited is one of the reading's regions of the finding's
    box label (same image, same box within REGION_TOLERANCE_PX), one region per suggestion; where the
    schema has no such label the suggestion stays in the assist record alone."""
    free = [r for r in rois if r.kind == "box"]
    for s in suggestions:
        if s.box_index is None or s.action == "reject" or s.box is None:
            continue
        label = region_label(schema, s.label)
        if label is None:
            continue
        where = pred.boxes[s.box_index]
        match = next((r for r in free if r.label == label["id"] and r.instance == where["instance_position"]
                      and r.frame == where["frame"] and _same_box(r, s.box)), None)
        if match is None:
            raise _unprocessable(
                f"suggested '{s.label}' box {s.box_index} was {'accepted' if s.action == 'accept' else 'edited'} "
                f"but the reading has no '{label['name']}' ({label['id']}) region on image {where['instance_position'] + 1}"
                f" at {[round(v, 2) for v in s.box]} (within {REGION_TOLERANCE_PX} px): add it to rois")
        free.remove(match)


def heatmap_png(b64: str, rows: int, cols: int) -> bytes:
    """The PNG once checked (8-bit greyscale, no larger than the instance it covers), pixels only."""
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise _unprocessable("png_base64 is not base64") from None
    try:
        with Image.open(io.BytesIO(raw)) as img:
            if img.format != "PNG":
                raise _unprocessable("a heatmap must be a PNG")
            if img.mode != "L":
                raise _unprocessable(f"a heatmap PNG must be 8-bit greyscale (mode L), not {img.mode}")
            w, h = img.size
            if w > min(cols, MAX_HEATMAP_SIDE) or h > min(rows, MAX_HEATMAP_SIDE):
                raise _unprocessable(f"heatmap {w}x{h} is larger than its image ({cols}x{rows})")
            img.load()  # a truncated or corrupt PNG fails here, not in the reader's browser
            pixels = img.tobytes()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise _unprocessable("heatmap is not a readable PNG") from None
    # Re-encoded from its pixels alone: text, EXIF or ICC chunks of the sender's PNG (where an identifying
    # string could ride along) never reach the service's database or a reader's browser.
    out = io.BytesIO()
    Image.frombytes("L", (w, h), pixels).save(out, format="PNG")
    return out.getvalue()


def _check_place(item: Item, position: int, frame: int, what: str) -> tuple[int, int]:
    """(rows, cols) of the referenced instance; 0 where the service does not know its size."""
    if position >= len(item.instances):
        raise _unprocessable(f"{what} references instance {position}; the item has {len(item.instances)}")
    inst = item.instances[position]
    if frame >= inst.frames:
        raise _unprocessable(f"{what} references frame {frame}; the instance has {inst.frames}")
    return inst.rows, inst.columns


def store_predictions(db: Session, item: Item, schema: SchemaVersion | None, body: PredictionsIn, user: User) -> Prediction:
    """Replaces the item's predictions (idempotent: the same body twice leaves one identical row)."""
    known = set(classification_labels(schema))
    named = set(body.probabilities) | {h.label for h in body.heatmaps} | {b.label for b in body.boxes}
    if schema is not None and named - known:
        raise _unprocessable(f"labels not among the schema's classification labels: {', '.join(sorted(named - known))}")
    for label in {h.label for h in body.heatmaps} | {b.label for b in body.boxes}:
        if label not in body.probabilities:
            raise _unprocessable(f"'{label}' has a heatmap or box but no probability")
    heatmaps = []
    seen: set[tuple[str, int, int]] = set()
    for h in body.heatmaps:
        rows, cols = _check_place(item, h.instance_position, h.frame, "a heatmap")
        if rows and cols and (h.rows, h.cols) != (rows, cols):
            raise _unprocessable(f"heatmap rows x cols {h.rows}x{h.cols} differ from the instance's {rows}x{cols}")
        key = (h.label, h.instance_position, h.frame)
        if key in seen:
            raise _unprocessable(f"two heatmaps for '{h.label}' on instance {h.instance_position} frame {h.frame}")
        seen.add(key)
        heatmaps.append(PredictionHeatmap(label=h.label, instance_position=h.instance_position, frame=h.frame,
                                          rows=h.rows, cols=h.cols, png=heatmap_png(h.png_base64, h.rows, h.cols)))
    for b in body.boxes:
        rows, cols = _check_place(item, b.instance_position, b.frame, "a box")
        if rows and cols and (b.x1 > cols or b.y1 > rows):
            raise _unprocessable(f"a '{b.label}' box reaches outside the {cols}x{rows} image")
    old = db.scalar(select(Prediction).where(Prediction.item_id == item.id))
    if old is not None:
        db.delete(old)
        db.flush()
    pred = Prediction(item_id=item.id, model_name=body.model.name, model_version=body.model.version,
                      probabilities=dict(body.probabilities), boxes=[b.model_dump() for b in body.boxes],
                      created_by_id=user.id, heatmaps=heatmaps)
    db.add(pred)
    db.flush()
    return pred


def prediction_of(db: Session, item_id: int) -> Prediction | None:
    return db.scalar(select(Prediction).where(Prediction.item_id == item_id))


def _reader_tasks(db: Session, item: Item, user: User) -> list[Task]:
    return list(db.scalars(select(Task).where(Task.item_id == item.id, Task.assignee_id == user.id,
                                              Task.kind == TaskKind.ANNOTATE.value)))


def revealed(db: Session, project: Project, item: Item, user: User, staff: bool) -> bool:
    """May this caller see the suggestions now? Staff always; a reader on a blind-first project once
    an unaided answer of theirs is recorded for the item (or their reading of it is submitted)."""
    if staff or not project.blind_first:
        return True
    tasks = _reader_tasks(db, item, user)
    if any(t.status == TaskStatus.SUBMITTED.value for t in tasks):
        return True
    ids = [t.id for t in tasks]
    return bool(ids) and db.scalar(select(AssistReveal.id).where(AssistReveal.task_id.in_(ids)).limit(1)) is not None


def predictions_out(pred: Prediction, project: Project, *, hidden: bool) -> PredictionsOut:
    if hidden:  # nothing of the model's answer, not even its labels' order of probability
        return PredictionsOut(item_id=pred.item_id, hidden=True, blind_first=project.blind_first)
    return PredictionsOut(
        item_id=pred.item_id, blind_first=project.blind_first,
        model=ModelRef(name=pred.model_name, version=pred.model_version), probabilities=dict(pred.probabilities),
        heatmaps=[HeatmapOut(label=h.label, instance_position=h.instance_position, frame=h.frame, rows=h.rows, cols=h.cols,
                             png_base64=base64.b64encode(h.png).decode("ascii")) for h in pred.heatmaps],
        boxes=list(pred.boxes), created_at=pred.created_at,
    )


def record_unaided(db: Session, project: Project, task: Task, schema: SchemaVersion | None, labels: list[LabelValue]) -> None:
    """Stores the reader's answer before the reveal; every classification label exactly once."""
    if not project.blind_first:
        raise HTTPException(status.HTTP_409_CONFLICT, "this project shows suggestions at once (not blind first)")
    if task.kind != TaskKind.ANNOTATE.value or task.status != TaskStatus.ASSIGNED.value:
        raise HTTPException(status.HTTP_409_CONFLICT, f"task is {task.status}, not a reading in progress")
    if db.scalar(select(AssistReveal.id).where(AssistReveal.task_id == task.id)) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, "the unaided answer is recorded already; it cannot change after the reveal")
    wanted = classification_labels(schema)
    given = [lv.label for lv in labels]
    if len(set(given)) != len(given):
        raise _unprocessable("a label is answered twice")
    if set(given) != set(wanted):
        missing, extra = sorted(set(wanted) - set(given)), sorted(set(given) - set(wanted))
        raise _unprocessable("the unaided answer covers every classification label once"
                             + (f"; missing: {', '.join(missing)}" if missing else "")
                             + (f"; not in the schema: {', '.join(extra)}" if extra else ""))
    db.add(AssistReveal(task_id=task.id, unaided=[lv.model_dump() for lv in labels]))
    db.flush()


def assist_record(db: Session, project: Project, task: Task, item: Item, body: AssistIn | None,
                  rois: list[RoiIn] = (), schema: SchemaVersion | None = None) -> dict[str, Any] | None:
    """Checks a reading's `assist` against what the service served (and an accepted or edited box against
    the reading's regions, check_regions), and returns what is stored with it: the model, what it
    suggested (a snapshot: later predictions replace the item's), whether it was shown, the unaided answer
    (the server's copy) and each suggestion's fate."""
    validation = project.kind == ProjectKind.VALIDATION.value and task.kind == TaskKind.ANNOTATE.value
    pred = prediction_of(db, item.id)
    if body is None:
        if validation and pred is not None:
            raise _unprocessable("a validation reading rates the model's outputs (assist.suggestions)")
        return None
    if task.kind != TaskKind.ANNOTATE.value:
        raise _unprocessable("assist belongs to readings, not to verifications")
    if pred is None:
        raise _unprocessable("this item has no model suggestions")
    if (body.model.name, body.model.version) != (pred.model_name, pred.model_version):
        raise _unprocessable(f"the item's suggestions are from {pred.model_name} {pred.model_version}, "
                             f"not {body.model.name} {body.model.version} (reload the case)")
    reveal = db.scalar(select(AssistReveal).where(AssistReveal.task_id == task.id))
    unaided = None
    if project.blind_first:
        if body.shown and reveal is None:
            raise _unprocessable("suggestions were never revealed for this reading (answer every label first)")
        if reveal is not None:
            unaided = list(reveal.unaided)
            if body.unaided is not None and [lv.model_dump() for lv in body.unaided] != unaided:
                raise _unprocessable("assist.unaided differs from the unaided answer recorded before the reveal")
    elif body.unaided is not None:
        raise _unprocessable("an unaided answer belongs to blind-first projects")
    if not body.shown and body.suggestions:
        raise _unprocessable("suggestions acted on were shown: set shown")
    rated: set[tuple[str, int | None]] = set()
    for s in body.suggestions:
        if s.box_index is not None:
            if s.box_index >= len(pred.boxes):
                raise _unprocessable(f"box index {s.box_index}: the model suggested {len(pred.boxes)} boxes")
            if pred.boxes[s.box_index]["label"] != s.label:
                raise _unprocessable(f"box {s.box_index} is a '{pred.boxes[s.box_index]['label']}' box, not '{s.label}'")
        elif s.label not in pred.probabilities:
            raise _unprocessable(f"the model gave no probability for '{s.label}'")
        key = (s.label, s.box_index)
        if key in rated:
            raise _unprocessable(f"'{s.label}' {'box ' + str(s.box_index) if s.box_index is not None else 'call'} rated twice")
        rated.add(key)
        if validation and s.action != "accept" and not s.reason.strip():
            raise _unprocessable(f"a validation reading gives the reason to {'correct' if s.action == 'edit' else 'reject'} "
                                 f"'{s.label}'")
    if validation:
        if not body.shown:
            raise _unprocessable("a validation reading is made with the model's outputs shown")
        outputs = {(label, None) for label in pred.probabilities} | {(b["label"], i) for i, b in enumerate(pred.boxes)}
        unrated = outputs - rated
        if unrated:
            names = ", ".join(f"{label} box {i}" if i is not None else f"{label} call" for label, i in sorted(
                unrated, key=lambda k: (k[0], -1 if k[1] is None else k[1])))
            raise _unprocessable(f"rate every model output (accept / reject / correct); unrated: {names}")
    check_regions(pred, body.suggestions, list(rois), schema)
    return {
        "model": {"name": pred.model_name, "version": pred.model_version},
        "shown": body.shown, "blind_first": project.blind_first,
        "revealed_at": reveal.revealed_at.isoformat() if reveal is not None else None,
        "unaided": unaided,
        "probabilities": dict(pred.probabilities), "boxes": list(pred.boxes),
        "suggestions": [s.model_dump() for s in body.suggestions],
    }
