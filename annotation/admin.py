"""First-admin bootstrap (the CLI's `curate annotation admin create`)."""
from __future__ import annotations

from sqlalchemy import select

from annotation import security
from annotation.db import make_engine, make_session_factory
from annotation.migrate import upgrade
from annotation.models import User


class AdminError(ValueError):
    """The admin cannot be created as asked (bad password, name taken)."""


def create_admin(database_url: str, username: str, password: str, *, display_name: str = "", update: bool = False) -> int:
    """Create a site admin (or, with update, reset an existing user's password and make it admin)."""
    if len(password) < security.MIN_PASSWORD_LENGTH:
        raise AdminError(f"password must be at least {security.MIN_PASSWORD_LENGTH} characters")
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as db, db.begin():
            user = db.scalar(select(User).where(User.username == username))
            if user is not None and not update:
                raise AdminError(f"user '{username}' exists (use --update to reset it)")
            if user is None:
                user = User(username=username, display_name=display_name or username)
                db.add(user)
            user.password_hash = security.hash_password(password)
            user.is_admin = True
            user.is_active = True
            db.flush()
            return user.id
    finally:
        engine.dispose()
