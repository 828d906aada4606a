"""Service accounts: API tokens for the pipeline, scoped to projects and roles.

A token belongs to its own account (a user without a password); the account's memberships are the
token's scope, so every endpoint checks a token through the same permissions matrix as a person.
The secret is shown once and stored only as SHA-256, like session tokens (security.token_hash).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from annotation import security
from annotation.models import Membership, Project, Role, ServiceToken, User, utcnow

# Roles a token may act in: the pipeline's, and a data owner's (register, list, see, export).
SERVICE_ROLES = frozenset({Role.PIPELINE, Role.DATA_OWNER})
# Never a valid argon2 hash: a service account cannot log in with a password.
NO_PASSWORD = "!service-account"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,58}$")


class ServiceAccountError(ValueError):
    """The token cannot be made or changed as asked (unknown project, bad role, name taken)."""


@dataclass
class Scope:
    project_id: int
    project_name: str
    role: str


@dataclass
class TokenInfo:
    id: int
    name: str
    account: str
    scopes: list[Scope]
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    token: str | None = None  # the secret: only in the answer to its creation


def _by_name_or_id(db: Session, model: type[Project] | type[ServiceToken], ref: int | str, what: str):
    """A row named `ref`, else the row with id `ref` (the CLI takes either)."""
    row = db.get(model, ref) if isinstance(ref, int) else db.scalar(select(model).where(model.name == ref))
    if row is None and isinstance(ref, str) and ref.isdigit():
        row = db.get(model, int(ref))
    if row is None:
        raise ServiceAccountError(f"no {what} {ref!r}")
    return row


def create_token(db: Session, name: str, projects: list[int | str], roles: list[str], created_by: str) -> TokenInfo:
    """A new account with one membership per (project, role) and its token; the secret is returned once."""
    if not _NAME.match(name):
        raise ServiceAccountError("token name: letters, digits, '_', '.', '-' (at most 59)")
    if not projects:
        raise ServiceAccountError("a token is scoped to at least one project")
    try:
        wanted = sorted({Role(r) for r in roles or [Role.PIPELINE.value]}, key=lambda r: r.value)
    except ValueError:
        raise ServiceAccountError(f"roles of a token: {', '.join(sorted(r.value for r in SERVICE_ROLES))}") from None
    if any(r not in SERVICE_ROLES for r in wanted):
        raise ServiceAccountError(f"roles of a token: {', '.join(sorted(r.value for r in SERVICE_ROLES))}")
    username = f"svc-{name}"
    if db.scalar(select(ServiceToken.id).where(ServiceToken.name == name)) is not None or \
            db.scalar(select(User.id).where(User.username == username)) is not None:
        raise ServiceAccountError(f"a token named {name!r} exists")
    targets = [_by_name_or_id(db, Project, p, "project") for p in projects]
    account = User(username=username, display_name=f"service account {name}", password_hash=NO_PASSWORD,
                   is_admin=False, is_active=True, is_service=True)
    db.add(account)
    db.flush()
    for project in {p.id: p for p in targets}.values():
        for role in wanted:
            db.add(Membership(project_id=project.id, user_id=account.id, role=role.value, competences=[]))
    secret, digest = security.new_token()
    row = ServiceToken(name=name, token_hash=digest, user_id=account.id, created_by=created_by[:64])
    db.add(row)
    db.flush()
    info = token_info(db, row)
    info.token = secret
    return info


def token_info(db: Session, row: ServiceToken) -> TokenInfo:
    scopes = [Scope(project_id=m.project_id, project_name=name, role=m.role) for m, name in db.execute(
        select(Membership, Project.name).join(Project, Project.id == Membership.project_id)
        .where(Membership.user_id == row.user_id).order_by(Membership.project_id, Membership.role)).all()]
    return TokenInfo(id=row.id, name=row.name, account=row.user.username, scopes=scopes, created_at=row.created_at,
                     created_by=row.created_by, revoked_at=row.revoked_at)


def list_tokens(db: Session) -> list[TokenInfo]:
    return [token_info(db, row) for row in db.scalars(select(ServiceToken).order_by(ServiceToken.id))]


def revoke_token(db: Session, ref: int | str) -> TokenInfo:
    """Revoke by id or name; revoking twice is a no-op. The account is deactivated with it."""
    row = _by_name_or_id(db, ServiceToken, ref, "token")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        row.user.is_active = False
    db.flush()
    return token_info(db, row)


def token_user(db: Session, token: str) -> User | None:
    """The active account behind an unrevoked service token, or None."""
    row = db.execute(
        select(ServiceToken, User).join(User, User.id == ServiceToken.user_id)
        .where(ServiceToken.token_hash == security.token_hash(token))
    ).first()
    if row is None:
        return None
    tok, user = row
    if tok.revoked_at is not None or not user.is_active:
        return None
    return user
