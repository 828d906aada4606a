"""Settings of the service, read from the environment (prefix ANNOTATION_) so one binary serves
SQLite on a laptop and PostgreSQL in production."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from annotation.zones import UriPolicy

WEB_DIST = Path(__file__).resolve().parent / "web" / "dist"


def _env_list(name: str) -> list[str]:
    raw = os.environ.get(name, "")
    return [p for p in (s.strip() for s in raw.split(os.pathsep)) if p]


@dataclass
class Settings:
    """Everything tunable; defaults suit a single machine."""

    database_url: str = "sqlite:///var/annotation/annotation.db"
    session_hours: float = 12.0
    invite_hours: float = 72.0
    login_window_s: int = 300
    login_max_failures: int = 10
    lease_minutes: int = 120
    # The platform's store(s): folders, file:// or s3://bucket/prefix (space-separated). Set: item
    # URIs must lie in its deid/derived zones (annotation/zones.py); unset: a zone segment suffices.
    store_uris: list[str] = field(default_factory=list)
    # Folders opened explicitly beyond the store's zones (os.pathsep-separated); raw/vault never.
    allowed_roots: list[str] = field(default_factory=list)
    # s3:// and DICOMweb prefixes opened explicitly (space-separated); DICOMweb is read from nothing else.
    allowed_prefixes: list[str] = field(default_factory=list)
    # Store zones an item's file:// or s3:// URI must lie in (annotation/zones.py); raw and vault never.
    item_zones: list[str] = field(default_factory=lambda: ["deid", "derived"])
    # Airflow 3 REST API for round-complete asset events (POST /api/v2/assets/events); empty: off.
    airflow_url: str = ""
    airflow_token: str = ""
    airflow_username: str = ""
    airflow_password: str = ""
    airflow_retries: int = 3
    cache_mb: int = 256
    web_dist: Path = WEB_DIST
    # gzip: the viewer's assets (precompressed, immutable) and API answers incl. DICOM objects and frames.
    compress: bool = True
    cookie_secure: bool = False
    log_requests: bool = False

    def uri_policy(self) -> UriPolicy:
        return UriPolicy(tuple(self.store_uris), tuple(self.item_zones), tuple(self.allowed_roots),
                         tuple(self.allowed_prefixes))

    @classmethod
    def from_env(cls) -> "Settings":
        env = os.environ
        s = cls()
        s.database_url = env.get("ANNOTATION_DATABASE_URL", s.database_url)
        s.session_hours = float(env.get("ANNOTATION_SESSION_HOURS", s.session_hours))
        s.invite_hours = float(env.get("ANNOTATION_INVITE_HOURS", s.invite_hours))
        s.login_window_s = int(env.get("ANNOTATION_LOGIN_WINDOW_S", s.login_window_s))
        s.login_max_failures = int(env.get("ANNOTATION_LOGIN_MAX_FAILURES", s.login_max_failures))
        s.lease_minutes = int(env.get("ANNOTATION_LEASE_MINUTES", s.lease_minutes))
        s.store_uris = env.get("ANNOTATION_STORE_URI", "").split()
        s.allowed_roots = _env_list("ANNOTATION_ALLOWED_ROOTS")
        s.allowed_prefixes = env.get("ANNOTATION_ALLOWED_URL_PREFIXES", "").split()
        if env.get("ANNOTATION_ITEM_ZONES"):
            s.item_zones = env["ANNOTATION_ITEM_ZONES"].split()
        s.airflow_url = env.get("ANNOTATION_AIRFLOW_URL", s.airflow_url).rstrip("/")
        s.airflow_token = env.get("ANNOTATION_AIRFLOW_TOKEN", s.airflow_token)
        s.airflow_username = env.get("ANNOTATION_AIRFLOW_USERNAME", s.airflow_username)
        s.airflow_password = env.get("ANNOTATION_AIRFLOW_PASSWORD", s.airflow_password)
        s.airflow_retries = int(env.get("ANNOTATION_AIRFLOW_RETRIES", s.airflow_retries))
        s.cache_mb = int(env.get("ANNOTATION_CACHE_MB", s.cache_mb))
        if env.get("ANNOTATION_WEB_DIST"):
            s.web_dist = Path(env["ANNOTATION_WEB_DIST"])
        s.cookie_secure = env.get("ANNOTATION_COOKIE_SECURE", "0") == "1"
        s.compress = env.get("ANNOTATION_COMPRESS", "1") == "1"
        s.log_requests = env.get("ANNOTATION_LOG_REQUESTS", "0") == "1"
        return s
