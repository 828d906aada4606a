"""Command-line administration against the service's database (the CLI's `curate annotation admin
create` and `curate annotation token ...`), without a running service."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import select
from sqlalchemy.orm import Session

from annotation import security
from annotation.db import make_engine, make_session_factory
from annotation.migrate import upgrade
from annotation.models import User


class AdminError(ValueError):
    """The admin cannot be created as asked (bad password, name taken)."""


@contextmanager
def database(database_url: str) -> Iterator[Session]:
    """A migrated database and one transaction on it, committed on success."""
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as db, db.begin():
            yield db
    finally:
        engine.dispose()


def create_admin(database_url: str, username: str, password: str, *, display_name: str = "", update: bool = False) -> int:
    """Create a site admin (or, with update, reset an existing user's password and make it admin)."""
    if len(password) < security.MIN_PASSWORD_LENGTH:
        raise AdminError(f"password must be at least {security.MIN_PASSWORD_LENGTH} characters")
    with database(database_url) as db:
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
