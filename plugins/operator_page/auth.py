"""Airflow's own login in front of the page: a FastAPI app a plugin mounts is NOT protected by the API
server, so every route depends on Airflow's `get_user` (the JWT from `Authorization: Bearer` or the
UI's `_token` cookie, validated by the configured auth manager: 401 without one, 403 for a bad one)
and on the auth manager's DAG-run permission for `curate_source` (read to see, create to re-admit).
"""
from __future__ import annotations

from fastapi import Depends, HTTPException, Request, status

from plugins.operator_page.runs import CURATE_SOURCE

#: A re-admission is a POST that starts a DAG run: a browser sends the UI's cookie with any form post,
#: even from another site, so a cookie-authenticated POST must also carry this header, which a page
#: elsewhere cannot add without a CORS preflight this app never grants.
READMIT_HEADER = "X-Curate-Ops"


def _dag_run_access(method: str):  # noqa: ANN202 - a FastAPI dependency
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    return Depends(requires_access_dag(method, DagAccessEntity.RUN, param_dag_id=CURATE_SOURCE))


def can_read():  # noqa: ANN201 - a FastAPI dependency
    """The caller is logged in to Airflow and may read curate_source's runs."""
    return _dag_run_access("GET")


def can_trigger():  # noqa: ANN201 - a FastAPI dependency
    """The caller is logged in to Airflow and may start curate_source runs."""
    return _dag_run_access("POST")


def caller_token(request: Request) -> str:
    """The caller's JWT (already validated by the dependencies above), to act for them on Airflow's API.
    A cookie-only caller must send READMIT_HEADER (see above)."""
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN

    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header.split(" ", 1)[1].strip()
    if not request.headers.get(READMIT_HEADER):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"a cookie-authenticated POST needs the {READMIT_HEADER} header")
    token = request.cookies.get(COOKIE_NAME_JWT_TOKEN)
    if not token:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Not authenticated")
    return token


__all__ = ["READMIT_HEADER", "caller_token", "can_read", "can_trigger"]
