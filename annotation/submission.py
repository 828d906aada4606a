"""Submitting and skipping a task: validation against the task's schema version, time tracking,
gold scoring, verification chain and item completion."""
from __future__ import annotations

from dataclasses import dataclass

from fastapi import HTTPException, status
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from annotation import assist, masks, queue
from annotation.models import (
    Annotation,
    Item,
    Membership,
    Project,
    ProjectKind,
    Role,
    SchemaVersion,
    Task,
    TaskKind,
    TaskStatus,
    utcnow,
)
from annotation.permissions import RANK
from annotation.revisions import archive_replaced
from annotation.schemas import RoiIn, SubmitIn


@dataclass
class CompletionEvent:
    """Handed to the webhook after commit; ids only, never patient data."""

    project_id: int
    item_id: int
    external_id: str
    round: int


def _unprocessable(msg: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, msg)


def missing_labels(body: SubmitIn, schema: SchemaVersion | None) -> list[dict]:
    """Labels marked required that this reading leaves unanswered (a region label: no region drawn)."""
    answered = {lv.label for lv in body.labels} | {roi.label for roi in body.rois}
    return [lab for lab in (schema.definition["labels"] if schema else []) if lab.get("required") and lab["id"] not in answered]


def validate_against_schema(body: SubmitIn, schema: SchemaVersion | None, item: Item, *, complete: bool = True) -> None:
    """`complete` (a reading of a labels project): every required label answered, the error naming each
    one missing; and not empty where the schema asks questions (an empty reading would count as
    'no' everywhere and silently lower positive rates)."""
    if complete:
        missing = missing_labels(body, schema)
        if missing:
            names = ", ".join(f"'{lab['name']}' ({lab['id']})" for lab in missing)
            raise _unprocessable(f"required label{'s' if len(missing) > 1 else ''} not answered: {names}")
        questions = [lab for lab in (schema.definition["labels"] if schema else []) if lab["kind"] == "boolean"]
        if questions and not body.labels and not body.rois:
            names = ", ".join(f"'{lab['name']}' ({lab['id']})" for lab in questions)
            raise _unprocessable(f"empty reading: no label answered (labels: {names})")
    labels = {lab["id"]: lab for lab in (schema.definition["labels"] if schema else [])}
    seen: set[str] = set()
    masked: set[tuple[str, int, int]] = set()
    for lv in body.labels:
        lab = labels.get(lv.label)
        if lab is None or lab["kind"] != "boolean":
            raise _unprocessable(f"'{lv.label}' is not a classification label of this schema version")
        if lv.label in seen:
            raise _unprocessable(f"label '{lv.label}' given twice")
        seen.add(lv.label)
    for roi in body.rois:
        lab = labels.get(roi.label)
        if lab is None or lab["kind"] != roi.kind:
            raise _unprocessable(f"'{roi.label}' is not a {roi.kind} label of this schema version")
        if roi.instance >= len(item.instances):
            raise _unprocessable("ROI references an instance the item does not have")
        if roi.frame >= item.instances[roi.instance].frames:
            raise _unprocessable("ROI references a frame the instance does not have")
        if roi.kind == "mask":
            validate_mask(roi, lab, item, masked)
    for key in body.label_ms:
        if key not in labels:
            raise _unprocessable(f"time given for unknown label '{key}'")


def validate_mask(roi: RoiIn, label: dict, item: Item, masked: set[tuple[str, int, int]]) -> None:
    """A mask covers exactly its slice's pixel grid, in the canonical run-length encoding
    (annotation/masks.py), marks at least one pixel, and comes once per label and slice; the error
    names the label, since a reader drew several."""
    where = f"mask '{label['name']}' ({roi.label}) on image {roi.instance + 1}" + (f" frame {roi.frame + 1}" if roi.frame else "")
    inst = item.instances[roi.instance]
    if (roi.rows, roi.columns) != (inst.rows, inst.columns):
        raise _unprocessable(f"{where}: {roi.rows} x {roi.columns} pixels, the image has {inst.rows} x {inst.columns}")
    try:
        masks.check(roi.rle or [], inst.rows, inst.columns)
    except masks.MaskEncodingError as exc:
        raise _unprocessable(f"{where}: {exc}") from None
    if len(roi.rle or []) < 2:
        raise _unprocessable(f"{where}: no pixel marked")
    key = (roi.label, roi.instance, roi.frame)
    if key in masked:
        raise _unprocessable(f"{where}: given twice (one mask per label and slice)")
    masked.add(key)


def reader_rank(db: Session, project_id: int, user_id: int | None) -> int:
    if user_id is None:
        return 0
    rank = 0
    for m in db.scalars(select(Membership).where(Membership.project_id == project_id, Membership.user_id == user_id)):
        if m.role == Role.REVIEWER.value:
            rank = max(rank, RANK["reviewer"])
        elif m.role == Role.ANNOTATOR.value:
            rank = max(rank, RANK.get(m.level or "junior", 1))
    return rank


def gold_score(answer: dict | None, labels: list[dict]) -> float | None:
    expected = (answer or {}).get("labels") or []
    if not expected:
        return None
    given = {lv["label"]: lv["value"] for lv in labels}
    hits = sum(1 for e in expected if given.get(e["label"]) == e["value"])
    return hits / len(expected)


def validate_quality(project: Project, task: Task, body: SubmitIn) -> None:
    """Quality-review projects: a reading is a decision (approve / exclude / quarantine with a reason)."""
    if project.kind != ProjectKind.QUALITY_REVIEW.value:
        if body.quality is not None:
            raise _unprocessable("a quality decision belongs to quality-review projects only")
        return
    needs = task.kind == TaskKind.ANNOTATE.value or body.decision == "correct"
    if needs and body.quality is None:
        raise _unprocessable("a quality review needs a decision: approve, exclude or quarantine (with a reason)")


def submit(db: Session, task: Task, body: SubmitIn) -> list[CompletionEvent]:
    if task.status == TaskStatus.CLOSED.value:
        raise HTTPException(status.HTTP_409_CONFLICT, f"round {task.round} is closed; the reading was not recorded")
    if task.status != TaskStatus.ASSIGNED.value:
        raise HTTPException(status.HTTP_409_CONFLICT, f"task is {task.status}, not open for submission")
    project = db.get(Project, task.project_id)
    item = db.scalar(select(Item).where(Item.id == task.item_id).with_for_update())
    assert project is not None and item is not None
    schema = db.get(SchemaVersion, task.schema_version_id) if task.schema_version_id else queue.current_schema(db, project)
    if task.kind == TaskKind.VERIFY.value and body.decision is None:
        raise _unprocessable("a verification needs a decision: accept, reject or correct")
    if task.kind == TaskKind.ANNOTATE.value and body.decision is not None:
        raise _unprocessable("a decision belongs to verification tasks only")
    if task.kind == TaskKind.ANNOTATE.value or body.decision == "correct":
        # quality-review readings are a decision; their labels stay optional (README: Quality review projects)
        validate_against_schema(body, schema, item, complete=project.kind != ProjectKind.QUALITY_REVIEW.value)
    validate_quality(project, task, body)
    archive_replaced(db, task)  # a reopened case: the reading this one replaces goes into its history
    assist_record = assist.assist_record(db, project, task, item, body.assist, body.rois, schema)
    now = utcnow()
    task.status = TaskStatus.SUBMITTED.value
    task.submitted_at = now
    task.schema_version_id = schema.id if schema else None
    start = task.loaded_at or task.assigned_at or now
    task.wall_ms = max(0, int((now - start).total_seconds() * 1000))
    task.active_ms, task.idle_ms = body.active_ms, body.idle_ms
    task.label_ms = dict(body.label_ms)
    task.decision = body.decision if task.kind == TaskKind.VERIFY.value else None
    labels = [lv.model_dump() for lv in body.labels]
    rois = [r.model_dump(exclude_none=True, exclude={"points"} if r.kind == "mask" else None) for r in body.rois]
    quality = body.quality
    db.add(Annotation(task_id=task.id, schema_version_id=task.schema_version_id, labels=labels, rois=rois, comment=body.comment,
                      quality_decision=quality.decision.value if quality else None,
                      quality_reason=quality.reason.strip() if quality else None, assist=assist_record))
    if task.is_gold:
        task.gold_score = gold_score(item.gold_answer, labels)
        return []
    if task.kind == TaskKind.ANNOTATE.value:
        if project.verification_levels > 0:
            queue.open_verification(db, task, 1, reader_rank(db, project.id, task.assignee_id), [task.assignee_id or 0])
    else:
        _after_verification(db, project, task)
    db.flush()
    return _check_complete(db, project, item)


def _after_verification(db: Session, project: Project, vtask: Task) -> None:
    reading = db.get(Task, vtask.parent_task_id)
    if reading is None:
        return
    if vtask.decision == "reject":
        reading.decision = "rejected"
        queue.reopen_slot(db, reading)
        return
    if vtask.verify_level >= project.verification_levels:
        reading.decision = "verified"
        return
    excluded = list(vtask.excluded_users or []) + [vtask.assignee_id or 0]
    queue.open_verification(db, reading, vtask.verify_level + 1, vtask.min_rank, excluded)


def accepted_readings(db: Session, project: Project, item: Item) -> int:
    q = select(func.count()).select_from(Task).where(
        Task.item_id == item.id, Task.round == item.round, Task.kind == TaskKind.ANNOTATE.value,
        Task.status == TaskStatus.SUBMITTED.value, Task.is_gold.is_(False),
    )
    if project.verification_levels > 0:
        q = q.where(Task.decision == "verified")
    return db.scalar(q) or 0


def _check_complete(db: Session, project: Project, item: Item) -> list[CompletionEvent]:
    if item.completed_at is not None or item.is_gold:
        return []
    if accepted_readings(db, project, item) >= queue.required_readers(project, item):
        item.completed_at = utcnow()
        return [CompletionEvent(project.id, item.id, item.external_id, item.round)]
    return []


def skip(db: Session, task: Task, reason: str) -> None:
    if task.status == TaskStatus.CLOSED.value:
        raise HTTPException(status.HTTP_409_CONFLICT, f"round {task.round} is closed")
    if task.status != TaskStatus.ASSIGNED.value:
        raise HTTPException(status.HTTP_409_CONFLICT, f"task is {task.status}, cannot be skipped")
    task.status = TaskStatus.SKIPPED.value
    task.skip_reason = reason
    task.submitted_at = utcnow()
    queue.reopen_slot(db, task)
