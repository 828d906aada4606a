"""Site-admin management of service-account tokens (the pipeline's API credentials)."""
from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, HTTPException, status

from annotation import service_accounts
from annotation.deps import AdminUser, DB, IdPath
from annotation.schemas import ServiceTokenIn, ServiceTokenOut
from annotation.service_accounts import ServiceAccountError, TokenInfo

router = APIRouter(prefix="/api/service-tokens", tags=["service accounts"])


def _out(info: TokenInfo) -> ServiceTokenOut:
    return ServiceTokenOut.model_validate(asdict(info))


@router.post("", response_model=ServiceTokenOut, status_code=status.HTTP_201_CREATED)
def create_token(body: ServiceTokenIn, db: DB, admin: AdminUser) -> ServiceTokenOut:
    """The answer holds the secret (`token`) once; only its SHA-256 is stored."""
    try:
        info = service_accounts.create_token(db, body.name, list(body.projects), list(body.roles), admin.username)
    except ServiceAccountError as exc:
        code = status.HTTP_409_CONFLICT if "exists" in str(exc) else status.HTTP_422_UNPROCESSABLE_CONTENT
        raise HTTPException(code, str(exc)) from None
    return _out(info)


@router.get("", response_model=list[ServiceTokenOut])
def list_tokens(db: DB, admin: AdminUser) -> list[ServiceTokenOut]:
    """Every token with its scope, never the secret."""
    return [_out(i) for i in service_accounts.list_tokens(db)]


@router.delete("/{token_id}", response_model=ServiceTokenOut)
def revoke_token(token_id: IdPath, db: DB, admin: AdminUser) -> ServiceTokenOut:
    """Revoke (idempotent): the token stops working at once; the record stays for the audit."""
    try:
        return _out(service_accounts.revoke_token(db, token_id))
    except ServiceAccountError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
