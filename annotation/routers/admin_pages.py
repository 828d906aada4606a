"""The site admin's pages' own endpoints: users with their project roles and last login, a password
reset that hands the admin a one-time password, and the audit of logins the database keeps."""
from __future__ import annotations

import secrets
from collections import defaultdict
from datetime import datetime

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel
from sqlalchemy import delete, func, select

from annotation import security
from annotation.deps import AdminUser, DB, IdPath
from annotation.models import LoginAttempt, LoginSession, Membership, Project, User, utcnow
from annotation.schemas import MembershipBrief

router = APIRouter(prefix="/api/admin", tags=["admin"])


class AdminUserOut(BaseModel):
    id: int
    username: str
    display_name: str
    is_admin: bool
    is_active: bool
    is_service: bool
    created_at: datetime
    last_login_at: datetime | None
    live_sessions: int
    memberships: list[MembershipBrief]


class PasswordReset(BaseModel):
    username: str
    password: str  # shown once to the admin, who hands it over; the user's sessions are ended


class LoginRecord(BaseModel):
    username: str
    started_at: datetime
    expires_at: datetime
    live: bool


class FailedLogin(BaseModel):
    subject: str  # "user" or "address"
    value: str
    at: datetime


class LoginAudit(BaseModel):
    sessions: list[LoginRecord]  # logins whose session is still on record (a logout removes it)
    failures: list[FailedLogin]  # failed logins within the rate-limit records (a success clears its user's)


@router.get("/users", response_model=list[AdminUserOut])
def list_users(db: DB, admin: AdminUser) -> list[AdminUserOut]:
    now = utcnow()
    last = dict(db.execute(select(LoginSession.user_id, func.max(LoginSession.created_at)).group_by(LoginSession.user_id)).all())
    live = dict(db.execute(select(LoginSession.user_id, func.count()).where(LoginSession.expires_at > now)
                           .group_by(LoginSession.user_id)).all())
    roles: dict[int, list[MembershipBrief]] = defaultdict(list)
    for m, name in db.execute(select(Membership, Project.name).join(Project, Project.id == Membership.project_id)
                              .order_by(Project.id, Membership.role)):
        roles[m.user_id].append(MembershipBrief(project_id=m.project_id, project_name=name, role=m.role, level=m.level))
    return [AdminUserOut(id=u.id, username=u.username, display_name=u.display_name, is_admin=u.is_admin,
                         is_active=u.is_active, is_service=u.is_service, created_at=u.created_at,
                         last_login_at=last.get(u.id), live_sessions=live.get(u.id, 0), memberships=roles[u.id])
            for u in db.scalars(select(User).order_by(User.id))]


@router.post("/users/{user_id}/reset-password", response_model=PasswordReset)
def reset_password(user_id: IdPath, db: DB, admin: AdminUser) -> PasswordReset:
    """A fresh random password (shown once, stored hashed) and every session of the user ended."""
    user = db.get(User, user_id)
    if user is None:
        raise HTTPException(404, "no such user")
    if user.is_service:
        raise HTTPException(409, "a service account has no password: revoke its token and create a new one")
    password = secrets.token_urlsafe(12)
    user.password_hash = security.hash_password(password)
    db.execute(delete(LoginSession).where(LoginSession.user_id == user.id))
    return PasswordReset(username=user.username, password=password)


@router.get("/logins", response_model=LoginAudit)
def login_audit(db: DB, admin: AdminUser, limit: int = Query(200, ge=1, le=5000)) -> LoginAudit:
    now = utcnow()
    sessions = [LoginRecord(username=name, started_at=s.created_at, expires_at=s.expires_at, live=s.expires_at > now)
                for s, name in db.execute(select(LoginSession, User.username).join(User, User.id == LoginSession.user_id)
                                          .order_by(LoginSession.created_at.desc()).limit(limit))]
    failures = []
    for a in db.scalars(select(LoginAttempt).order_by(LoginAttempt.at.desc()).limit(limit)):
        kind, _, value = a.key.partition(":")
        failures.append(FailedLogin(subject="address" if kind == "addr" else "user", value=value, at=a.at))
    return LoginAudit(sessions=sessions, failures=failures)
