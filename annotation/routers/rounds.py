"""Rounds: the pipeline creates one with its items, reads its status, closes it at the deadline."""
from __future__ import annotations

from fastapi import APIRouter, Path, Request, Response, status
from sqlalchemy import select

from annotation import rounds
from annotation.deps import CurrentUser, DB, IdPath, require
from annotation.models import Round
from annotation.permissions import Action
from annotation.routers.projects import get_project
from annotation.schemas import RoundCreated, RoundIn, RoundOut

router = APIRouter(prefix="/api/projects/{project_id}/rounds", tags=["rounds"])
RoundNumber = Path(ge=1, le=10_000)


@router.post("", response_model=RoundCreated, status_code=status.HTTP_201_CREATED)
def create_round(project_id: IdPath, body: RoundIn, request: Request, response: Response, db: DB,
                 user: CurrentUser) -> RoundCreated:
    """201 for a new round; 200 when a round of that name exists (its new items added, nothing twice)."""
    require(db, user, project_id, Action.RUN_ROUNDS)
    project = get_project(db, project_id, lock=True)
    known = db.scalar(select(Round.id).where(Round.project_id == project_id, Round.name == body.name)) is not None
    rnd, created, existing = rounds.create(db, project, body, user, request.app.state.instances)
    if known:
        response.status_code = status.HTTP_200_OK
    return RoundCreated(round=rounds.round_status(db, project, rnd), created=created, existing=existing)


@router.get("", response_model=list[RoundOut])
def list_rounds(project_id: IdPath, db: DB, user: CurrentUser) -> list[RoundOut]:
    require(db, user, project_id, Action.COMPLETION)
    project = get_project(db, project_id)
    return [rounds.round_status(db, project, r)
            for r in db.scalars(select(Round).where(Round.project_id == project_id).order_by(Round.number))]


@router.get("/{number}", response_model=RoundOut)
def read_round(project_id: IdPath, db: DB, user: CurrentUser, number: int = RoundNumber) -> RoundOut:
    """State, deadline, gold share and completion counts per item and per reader."""
    require(db, user, project_id, Action.COMPLETION)
    project = get_project(db, project_id)
    return rounds.round_status(db, project, rounds.get_round(db, project_id, number))


@router.post("/{number}/close", response_model=RoundOut)
def close_round(project_id: IdPath, db: DB, user: CurrentUser, number: int = RoundNumber) -> RoundOut:
    """Idempotent: closing a closed round answers its status again."""
    require(db, user, project_id, Action.RUN_ROUNDS)
    project = get_project(db, project_id, lock=True)  # serialised with item registration into the round
    rnd = rounds.close(db, rounds.get_round(db, project_id, number))
    return rounds.round_status(db, project, rnd)
