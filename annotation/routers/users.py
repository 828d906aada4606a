"""Site-admin user management."""
from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from sqlalchemy import delete, select

from annotation import security
from annotation.deps import AdminUser, DB, IdPath
from annotation.models import LoginSession, User
from annotation.schemas import UserCreate, UserOut, UserPatch

router = APIRouter(prefix="/api/users", tags=["users"])


@router.get("", response_model=list[UserOut])
def list_users(db: DB, admin: AdminUser) -> list[User]:
    return list(db.scalars(select(User).order_by(User.id)))


@router.post("", response_model=UserOut, status_code=status.HTTP_201_CREATED)
def create_user(body: UserCreate, db: DB, admin: AdminUser) -> User:
    if db.scalar(select(User.id).where(User.username == body.username)) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, "username taken")
    user = User(username=body.username, display_name=body.display_name, is_admin=body.is_admin,
                password_hash=security.hash_password(body.password))
    db.add(user)
    db.flush()
    return user


@router.patch("/{user_id}", response_model=UserOut)
def patch_user(user_id: IdPath, body: UserPatch, db: DB, admin: AdminUser) -> User:
    user = db.get(User, user_id)
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such user")
    if body.display_name is not None:
        user.display_name = body.display_name
    if body.is_admin is not None:
        if user.id == admin.id and not body.is_admin:
            raise HTTPException(status.HTTP_409_CONFLICT, "an admin cannot drop their own admin right")
        user.is_admin = body.is_admin
    if body.password is not None:
        user.password_hash = security.hash_password(body.password)
        db.execute(delete(LoginSession).where(LoginSession.user_id == user.id))
    if body.is_active is not None:
        if user.id == admin.id and not body.is_active:
            raise HTTPException(status.HTTP_409_CONFLICT, "an admin cannot deactivate themselves")
        user.is_active = body.is_active
        if not body.is_active:
            db.execute(delete(LoginSession).where(LoginSession.user_id == user.id))
    return user
