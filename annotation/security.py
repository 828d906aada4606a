"""Password hashing (argon2id), bearer tokens and the login rate limit."""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from annotation.models import LoginAttempt, LoginSession, User, utcnow

# Lighter than argon2-cffi's default (64 MiB) so 50 annotators logging in at once do not exhaust memory.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
_DUMMY_HASH = _hasher.hash("not-a-password")
MIN_PASSWORD_LENGTH = 10


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def burn_verify() -> None:
    """Spend the same time as a real check, so unknown usernames are not told apart by timing."""
    verify_password(_DUMMY_HASH, "x")


def new_token() -> tuple[str, str]:
    """A fresh bearer token and the hash that is stored."""
    token = secrets.token_urlsafe(32)
    return token, token_hash(token)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def open_session(db: Session, user: User, hours: float) -> str:
    token, digest = new_token()
    db.add(LoginSession(token_hash=digest, user_id=user.id, expires_at=utcnow() + timedelta(hours=hours)))
    return token


def session_user(db: Session, token: str) -> User | None:
    """The active user behind a token, or None when unknown, expired or deactivated."""
    row = db.execute(
        select(LoginSession, User)
        .join(User, User.id == LoginSession.user_id)
        .where(LoginSession.token_hash == token_hash(token))
    ).first()
    if row is None:
        return None
    sess, user = row
    if sess.expires_at <= utcnow() or not user.is_active:
        return None
    return user


def close_session(db: Session, token: str) -> None:
    db.execute(delete(LoginSession).where(LoginSession.token_hash == token_hash(token)))


def login_blocked(db: Session, keys: list[str], window_s: int, max_failures: int) -> bool:
    """True when any key (username, client address) has too many recent failures."""
    since = utcnow() - timedelta(seconds=window_s)
    for key in keys:
        n = db.scalar(select(func.count()).select_from(LoginAttempt).where(LoginAttempt.key == key, LoginAttempt.at >= since))
        if (n or 0) >= max_failures:
            return True
    return False


def record_failure(db: Session, keys: list[str]) -> None:
    for key in keys:
        db.add(LoginAttempt(key=key[:160]))


def clear_failures(db: Session, key: str) -> None:
    db.execute(delete(LoginAttempt).where(LoginAttempt.key == key))
