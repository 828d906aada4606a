"""The reader's side: next task (and the one after it, for prefetch), my tasks, image-loaded mark,
submit, skip, reopen."""
from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, HTTPException, Query, Request, status
from sqlalchemy import func, select

from annotation import queue, revisions, rounds, submission
from annotation.completion import notify_completed
from annotation.deps import CurrentUser, DB, IdPath, SettingsDep, project_roles, require
from annotation.models import Project, Round, Task, TaskStatus, User, utcnow
from annotation.permissions import MATRIX, Action
from annotation.schemas import MyProgress, NextTaskOut, SkipIn, SubmitIn, TaskBrief, TaskOut, TasksOut, TaskState
from annotation.views import task_out

router = APIRouter(prefix="/api/tasks", tags=["tasks"])


@router.post("/next", response_model=NextTaskOut)
def next_task(request: Request, db: DB, user: CurrentUser, settings: SettingsDep,
              project_id: IdPath | None = Query(None, ge=1, le=2**31 - 1),
              ahead: int = Query(0, ge=0, le=1)) -> NextTaskOut:
    """The reader's current task, or a new one from the queue (POST: it assigns).

    `ahead=1`: the task after the current one, claimed under the queue's lease but not opened (no
    reading clock), so the viewer can fetch its images while the reader works on the current case;
    unused, its lease runs out like any other and the slot goes back to the queue."""
    if project_id is not None:
        require(db, user, project_id, Action.READ)
    task = queue.next_task(db, user, project_id, settings.lease_minutes, ahead=ahead)
    if task is not None and task.schema_version_id is None:
        sv = queue.current_schema(db, db.get(Project, task.project_id))
        task.schema_version_id = sv.id if sv else None
    task_id = task.id if task is not None else None
    db.commit()  # end the write transaction (SQLite: the write lock) before building the answer
    with request.app.state.factories.reader() as ro:
        # "N left" after the case in hand: the queue's open readings plus cases already held (a prefetched
        # or reopened one); seen from the case ahead, the current one is not left.
        held = queue.held_besides(ro, user, project_id, task_id)
        remaining = queue.remaining_for(ro, user, project_id) + max(0, held - ahead)
        out = task_out(ro, ro.get(Task, task_id), request.app.state.instances) if task_id is not None else None
    return NextTaskOut(task=out, remaining=remaining)


@router.get("", response_model=TasksOut)
def my_tasks(db: DB, user: CurrentUser, limit: int = Query(100, ge=1, le=1000)) -> TasksOut:
    """Only the caller's own tasks, newest first, with per-project progress."""
    rows = db.execute(
        select(Task, Project.name).join(Project, Project.id == Task.project_id)
        .where(Task.assignee_id == user.id).order_by(Task.id.desc()).limit(limit)
    ).all()
    can_reopen = revisions.reopenable(db, [t for t, _ in rows])
    tasks = [TaskBrief(id=t.id, project_id=t.project_id, project_name=name, item_id=t.item_id, kind=t.kind, status=t.status,
                       round=t.round, submitted_at=t.submitted_at, reopenable=t.id in can_reopen) for t, name in rows]
    progress = []
    for reader in queue.reader_standing(db, user, None):
        counts = dict(db.execute(
            select(Task.status, func.count()).where(Task.project_id == reader.project.id, Task.assignee_id == user.id)
            .group_by(Task.status)
        ).all())
        progress.append(MyProgress(project_id=reader.project.id, project_name=reader.project.name,
                                   submitted=counts.get(TaskStatus.SUBMITTED.value, 0),
                                   skipped=counts.get(TaskStatus.SKIPPED.value, 0),
                                   open_for_me=queue.remaining_for(db, user, reader.project.id)))
    return TasksOut(tasks=tasks, progress=progress)


def _task_for(db, user: User, task_id: IdPath, *, own: bool) -> Task:
    """The task if the caller holds it (own=True), or holds it or manages/reviews its project."""
    task = db.get(Task, task_id)
    if task is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such task")
    if task.assignee_id == user.id:
        return task
    if not own:
        roles = project_roles(db, user, task.project_id)
        if user.is_admin or roles & MATRIX[Action.REVIEW]:
            return task
    raise HTTPException(status.HTTP_403_FORBIDDEN, "not your task")


@router.get("/{task_id}", response_model=TaskOut)
def read_task(task_id: IdPath, request: Request, db: DB, user: CurrentUser) -> TaskOut:
    return task_out(db, _task_for(db, user, task_id, own=False), request.app.state.instances)


def task_state(task: Task) -> TaskState:
    return TaskState(id=task.id, status=task.status, loaded_at=task.loaded_at, submitted_at=task.submitted_at)


@router.post("/{task_id}/loaded", response_model=TaskState)
def image_loaded(task_id: IdPath, db: DB, user: CurrentUser) -> TaskState:
    """Starts the reading clock: time per case runs from image fully loaded to submit (as in MarkIt)."""
    task = _task_for(db, user, task_id, own=True)
    if task.status != TaskStatus.ASSIGNED.value:
        raise HTTPException(status.HTTP_409_CONFLICT, f"task is {task.status}")
    if task.loaded_at is None:
        task.loaded_at = utcnow()
    return task_state(task)


@router.post("/{task_id}/submit", response_model=TaskState)
def submit_task(task_id: IdPath, body: SubmitIn, request: Request, background: BackgroundTasks, db: DB,
                user: CurrentUser, settings: SettingsDep) -> TaskState:
    task = _task_for(db, user, task_id, own=True)
    db.refresh(task, with_for_update=True)  # PostgreSQL: serialise a double submit of one task
    events = submission.submit(db, task, body)
    out = task_state(task)
    if events:
        project = db.get(Project, task.project_id)
        if project is not None and project.webhook_url:
            background.add_task(notify_completed, project.webhook_url, events)
        for number in sorted({e.round for e in events}):
            done = rounds.mark_complete(db, task.project_id, number)
            if done is not None:  # announced after the commit (background tasks run after the response)
                rnd = db.get(Round, done.round_id)
                url = rnd.webhook_url or (project.webhook_url if project else None)
                background.add_task(rounds.announce, done, url, rnd.airflow_asset_id, settings)
    return out


@router.post("/{task_id}/skip", response_model=TaskState)
def skip_task(task_id: IdPath, body: SkipIn, db: DB, user: CurrentUser) -> TaskState:
    task = _task_for(db, user, task_id, own=True)
    db.refresh(task, with_for_update=True)
    submission.skip(db, task, body.reason)
    db.flush()
    return task_state(task)


@router.post("/{task_id}/reopen", response_model=TaskState)
def reopen_task(task_id: IdPath, db: DB, user: CurrentUser) -> TaskState:
    """Its own reader takes a submitted reading back to change it, until the round closes (409 after,
    or when the task is not a submitted reading); the next submit replaces it and the replaced one
    is kept (annotation_revision, shown to managers in the item review)."""
    task = _task_for(db, user, task_id, own=True)
    db.refresh(task, with_for_update=True)  # PostgreSQL: serialise with a concurrent close or verification
    revisions.reopen(db, task)
    db.flush()
    return task_state(task)
