"""Login, logout and the current user."""
from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, HTTPException, Request, Response, status
from sqlalchemy import select

from annotation import security
from annotation.deps import DB, SESSION_COOKIE, CurrentUser, SettingsDep, client_address, request_token
from annotation.models import Membership, Project, User, utcnow
from annotation.schemas import LoginIn, MeOut, MembershipBrief, SessionOut, UserOut

router = APIRouter(prefix="/api/auth", tags=["auth"])


def start_session(db, settings, response: Response, user: User) -> SessionOut:
    token = security.open_session(db, user, settings.session_hours)
    expires = utcnow() + timedelta(hours=settings.session_hours)
    response.set_cookie(SESSION_COOKIE, token, max_age=int(settings.session_hours * 3600), httponly=True,
                        samesite="strict", secure=settings.cookie_secure, path="/")
    return SessionOut(token=token, expires_at=expires, user=UserOut.model_validate(user))


@router.post("/login", response_model=SessionOut)
def login(body: LoginIn, request: Request, response: Response, db: DB, settings: SettingsDep) -> SessionOut:
    """Rate-limited per username and per client address; failures are counted in the DB."""
    keys = [f"user:{body.username.lower()}", f"addr:{client_address(request)}"]
    if security.login_blocked(db, keys, settings.login_window_s, settings.login_max_failures):
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too many failed logins; try again later",
                            headers={"Retry-After": str(settings.login_window_s)})
    user = db.scalar(select(User).where(User.username == body.username))
    if user is None:
        security.burn_verify()
    if user is None or not user.is_active or not security.verify_password(user.password_hash, body.password):
        security.record_failure(db, keys)
        db.commit()
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username or password")
    security.clear_failures(db, keys[0])
    return start_session(db, settings, response, user)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(request: Request, response: Response, db: DB, user: CurrentUser) -> Response:
    token = request_token(request)
    if token:
        security.close_session(db, token)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.status_code = status.HTTP_204_NO_CONTENT
    return response


@router.get("/me", response_model=MeOut)
def me(db: DB, user: CurrentUser) -> MeOut:
    rows = db.execute(
        select(Membership, Project.name).join(Project, Project.id == Membership.project_id)
        .where(Membership.user_id == user.id).order_by(Project.id, Membership.role)
    ).all()
    return MeOut(
        **UserOut.model_validate(user).model_dump(),
        memberships=[MembershipBrief(project_id=m.project_id, project_name=name, role=m.role, level=m.level) for m, name in rows],
    )
