"""FastAPI dependencies: the request's DB session, the current user and project access checks."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from annotation import security, service_accounts
from annotation.config import Settings
from annotation.db import session_scope
from annotation.models import Membership, Role, User
from annotation.permissions import Action, allowed

SESSION_COOKIE = "ann_session"


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_db(request: Request) -> Iterator[Session]:
    """Reads get a plain transaction; writes an immediate one on SQLite (see db.make_engine)."""
    factories = request.app.state.factories
    factory = factories.reader if request.method in ("GET", "HEAD") else factories.writer
    yield from session_scope(factory)


# scope="function": commit before the response is sent, so a client never acts on a change that is
# not yet committed (or that failed to commit).
DB = Annotated[Session, Depends(get_db, scope="function")]
# Database ids fit a 32-bit signed integer on both backends; larger ones are a 422, never a 500.
MAX_ID = 2_147_483_647
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
IndexPath = Annotated[int, Path(ge=0, le=100_000)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def request_token(request: Request) -> str | None:
    """Bearer header for API clients (the pipeline), HttpOnly cookie for the browser."""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return request.cookies.get(SESSION_COOKIE) or None


def current_user(request: Request, db: DB) -> User:
    token = request_token(request)
    user = None
    if token:  # a login session, else a service account's API token (same SHA-256 lookup)
        user = security.session_user(db, token) or service_accounts.token_user(db, token)
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "not logged in or session expired",
                            headers={"WWW-Authenticate": "Bearer"})
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def require_admin(user: CurrentUser) -> User:
    if not user.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "site admins only")
    return user


AdminUser = Annotated[User, Depends(require_admin)]


def project_memberships(db: Session, user: User, project_id: int) -> list[Membership]:
    return list(db.scalars(select(Membership).where(Membership.project_id == project_id, Membership.user_id == user.id)))


def project_roles(db: Session, user: User, project_id: int) -> set[Role]:
    return {Role(m.role) for m in project_memberships(db, user, project_id)}


def require(db: Session, user: User, project_id: int, action: Action) -> set[Role]:
    """Raise 403 unless the user's roles in the project grant the action; returns the roles."""
    roles = project_roles(db, user, project_id)
    if not allowed(roles, action, is_admin=user.is_admin):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"your role in this project does not allow '{action.value}'")
    return roles


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
