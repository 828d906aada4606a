"""Round completion as an Airflow asset event, so the `annotation_round` DAG resumes without polling.

Airflow 3's public REST API: `POST {base}/api/v2/assets/events` with `{"asset_id": <int>, "extra": {...}}`
(airflow/api_fastapi/core_api/routes/public/assets.py, body `CreateAssetEventsBody`), authorised by a
bearer JWT. Configured by `ANNOTATION_AIRFLOW_URL` and either `ANNOTATION_AIRFLOW_TOKEN` (a JWT) or
`ANNOTATION_AIRFLOW_USERNAME` + `ANNOTATION_AIRFLOW_PASSWORD`, with which a fresh JWT is asked from
Airflow's `POST /auth/token` (simple auth manager; Airflow's JWTs expire after a day by default,
rounds may last longer). The asset id is given per round by whoever creates it.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import httpx

log = logging.getLogger("annotation.airflow")
ASSET_EVENTS_PATH = "/api/v2/assets/events"
TOKEN_PATH = "/auth/token"


class AirflowAuthError(RuntimeError):
    """Airflow gave no token for the configured user."""


def bearer_token(base_url: str, token: str, username: str = "", password: str = "", timeout_s: float = 10.0) -> str:
    """The JWT to send: a fresh one from Airflow when a user is configured, else the static one."""
    if not username:
        return token
    try:
        resp = httpx.post(base_url.rstrip("/") + TOKEN_PATH, json={"username": username, "password": password},
                          timeout=timeout_s)
        resp.raise_for_status()
        return str(resp.json()["access_token"])
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise AirflowAuthError(f"no Airflow token for '{username}': {type(exc).__name__}") from None


def post_asset_event(base_url: str, token: str, asset_id: int, extra: dict[str, Any], *, retries: int = 3,
                     backoff_s: float = 0.5, timeout_s: float = 10.0) -> bool:
    """POST one asset event; retries on connection errors, 429 and 5xx with exponential backoff.

    Returns True once Airflow accepted it; False when it refused (4xx: wrong id or token, not worth
    retrying) or every try failed. Failures are logged with ids only: the pipeline can still poll
    the round's status."""
    url = base_url.rstrip("/") + ASSET_EVENTS_PATH
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"asset_id": asset_id, "extra": extra}
    for attempt in range(1, max(1, retries) + 1):
        try:
            resp = httpx.post(url, json=body, headers=headers, timeout=timeout_s)
        except httpx.HTTPError as exc:
            outcome = type(exc).__name__
        else:
            if resp.status_code < 300:
                return True
            outcome = f"HTTP {resp.status_code}"
            if resp.status_code < 500 and resp.status_code != 429:
                log.warning("airflow asset event for asset %s refused: %s", asset_id, outcome)
                return False
        if attempt < retries:
            time.sleep(backoff_s * 2 ** (attempt - 1))
    log.warning("airflow asset event for asset %s failed after %s tries: %s", asset_id, retries, outcome)
    return False
