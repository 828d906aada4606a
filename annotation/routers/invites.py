"""Invite links: a manager creates one for one project and role; an external expert opens it,
sets a password and is in (single use, expiring)."""
from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, HTTPException, Response, status
from sqlalchemy import select, update

from annotation import security
from annotation.deps import CurrentUser, DB, IdPath, SettingsDep, require
from annotation.models import Invite, Membership, Project, Role, User, utcnow
from annotation.permissions import Action
from annotation.routers.auth import start_session
from annotation.routers.projects import _guard_owner_grant, get_project
from annotation.schemas import InviteAccept, InviteIn, InviteInfo, InviteOut, SessionOut

router = APIRouter(tags=["invites"])


def invite_out(inv: Invite, token: str | None = None) -> InviteOut:
    return InviteOut(id=inv.id, role=inv.role, level=inv.level, note=inv.note, expires_at=inv.expires_at,
                     used=inv.used_at is not None, token=token, path=f"/#/invite/{token}" if token else None)


@router.post("/api/projects/{project_id}/invites", response_model=InviteOut, status_code=status.HTTP_201_CREATED)
def create_invite(project_id: IdPath, body: InviteIn, db: DB, user: CurrentUser, settings: SettingsDep) -> InviteOut:
    roles = require(db, user, project_id, Action.MANAGE_MEMBERS)
    get_project(db, project_id)
    _guard_owner_grant(roles, user.is_admin, body.role)
    token, digest = security.new_token()
    hours = body.hours or settings.invite_hours
    inv = Invite(token_hash=digest, project_id=project_id, role=body.role.value,
                 level=(body.level.value if body.level else "junior") if body.role == Role.ANNOTATOR else None,
                 competences=[c.model_dump() for c in body.competences], note=body.note, created_by_id=user.id,
                 expires_at=utcnow() + timedelta(hours=hours))
    db.add(inv)
    db.flush()
    return invite_out(inv, token)


@router.get("/api/projects/{project_id}/invites", response_model=list[InviteOut])
def list_invites(project_id: IdPath, db: DB, user: CurrentUser) -> list[InviteOut]:
    require(db, user, project_id, Action.MANAGE_MEMBERS)
    return [invite_out(i) for i in db.scalars(select(Invite).where(Invite.project_id == project_id).order_by(Invite.id))]


def _live_invite(db, token: str) -> Invite:
    inv = db.scalar(select(Invite).where(Invite.token_hash == security.token_hash(token)))
    if inv is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown invite")
    if inv.used_at is not None or inv.expires_at <= utcnow():
        raise HTTPException(status.HTTP_410_GONE, "this invite was used or has expired")
    return inv


@router.get("/api/invites/{token}", response_model=InviteInfo)
def read_invite(token: str, db: DB) -> InviteInfo:
    """Public: what the link is for, so the expert sees the project before choosing a password."""
    inv = _live_invite(db, token)
    project = db.get(Project, inv.project_id)
    return InviteInfo(project_name=project.name if project else "", role=inv.role, level=inv.level, expires_at=inv.expires_at)


@router.post("/api/invites/{token}/accept", response_model=SessionOut, status_code=status.HTTP_201_CREATED)
def accept_invite(token: str, body: InviteAccept, response: Response, db: DB, settings: SettingsDep) -> SessionOut:
    inv = _live_invite(db, token)
    if db.scalar(select(User.id).where(User.username == body.username)) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, "username taken; choose another")
    now = utcnow()
    # Conditional update: of two concurrent accepts only one wins the single use.
    won = db.execute(update(Invite).where(Invite.id == inv.id, Invite.used_at.is_(None)).values(used_at=now)
                     .execution_options(synchronize_session=False)).rowcount
    if won != 1:
        raise HTTPException(status.HTTP_410_GONE, "this invite was used or has expired")
    user = User(username=body.username, display_name=body.display_name, password_hash=security.hash_password(body.password))
    db.add(user)
    db.flush()
    db.execute(update(Invite).where(Invite.id == inv.id).values(used_by_id=user.id).execution_options(synchronize_session=False))
    db.add(Membership(project_id=inv.project_id, user_id=user.id, role=inv.role, level=inv.level, competences=inv.competences or []))
    response.status_code = status.HTTP_201_CREATED
    return start_session(db, settings, response, user)
