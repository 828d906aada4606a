"""The platform's settings: every ``CURATE_*`` environment variable is read here and nowhere else.

One frozen `Settings` object answers "where is the catalog, the store, the models, which site, which
limits" for the CLI, the stage glue and the Airflow hook alike, so the embedded default (no variable
set: everything under ``CURATE_HOME``) and production (docker-compose.yaml) differ only in values.
The Airflow connection ``curate_default`` is mapped onto the same object by `Settings.with_connection`
(pure Python: the library never imports Airflow).

Reading order per setting: the variable when set to a non-empty value, else the documented default.
The environment is read on each `settings()` call (cached per content), never at import, so a test
that sets a variable with monkeypatch sees it.

The pseudonym secret (``CURATE_PSEUDONYM_SECRET``, ``CURATE_PSEUDONYM_SECRET_CONN``) is read by the
de-identification library itself (`deid.vault.secret_from_environment`), which does not depend on
this package; `DELEGATED` names those variables so that they are documented beside the others.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

#: The site name used when none is configured (sources, patient keys, DAG parameter default).
DEFAULT_SITE = "default"

#: The Airflow connection the platform's hook reads (URI = catalog URL, extra = `CONNECTION_EXTRA`).
DEFAULT_CONNECTION_ID = "curate_default"

#: Keys the extra of the ``curate_default`` connection may hold, and the setting each one sets.
CONNECTION_EXTRA = {"store_uri": "store_uri", "site": "site"}

#: CURATE_* variables read by the deid library (it does not import curation), with their meaning.
DELEGATED = {
    "CURATE_PSEUDONYM_SECRET": "the HMAC pseudonym secret (read by deid.vault.secret_from_environment)",
    "CURATE_PSEUDONYM_SECRET_CONN": "id of the Airflow connection whose password holds the pseudonym secret "
                                    "(read by deid.vault.secret_from_environment)",
}

_STORE_SCHEMES = ("file://", "s3://")


def _text(name: str, raw: str) -> str:
    return raw


def _path(name: str, raw: str) -> Path:
    return Path(raw)


def _count(name: str, raw: str) -> int:
    """A non-negative integer (``_`` separators allowed, as in Python literals)."""
    try:
        value = int(raw.strip())
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None
    if value < 0:
        raise ValueError(f"{name}={raw!r} must not be negative")
    return value


def _positive(name: str, raw: str) -> int:
    """An integer of at least 1."""
    value = _count(name, raw)
    if value < 1:
        raise ValueError(f"{name}={raw!r} must be at least 1")
    return value


def _store_uri(name: str, raw: str) -> str:
    """A folder, ``file:///path`` or ``s3://bucket/prefix`` (what `curation.store.open_store` opens)."""
    if "://" in raw and not raw.startswith(_STORE_SCHEMES):
        raise ValueError(f"{name}={raw!r} has an unsupported scheme (use a folder, file:// or s3://)")
    return raw


def _var(env: str, doc: str, parse: Callable[[str, str], Any], default: Any = None, *,
         fallback: str | None = None, secret: bool = False) -> Any:
    """A dataclass field bound to environment variable `env` (then `fallback`), parsed by `parse`."""
    return field(default=default, repr=not secret,
                 metadata={"env": env, "doc": doc, "parse": parse, "fallback": fallback})


@dataclass(frozen=True)
class Settings:
    """Every tunable of the platform; each field names its variable in ``metadata["env"]``."""

    home: Path = _var("CURATE_HOME", "state folder of the embedded default (catalog, store, demo)", _path,
                      Path("var"))
    db_url: str | None = _var("CURATE_DB_URL", "catalog database URL, e.g. postgresql+psycopg://user:pw@db/catalog;"
                              " unset: sqlite:///$CURATE_HOME/catalog.sqlite", _text)
    store_uri: str | None = _var("CURATE_STORE_URI", "store root, a folder or s3://bucket/prefix;"
                                 " unset: $CURATE_HOME/store", _store_uri)
    site: str = _var("CURATE_SITE", "site name recorded with sources and used in patient keys", _text, DEFAULT_SITE)
    s3_endpoint_url: str | None = _var("CURATE_S3_ENDPOINT_URL", "S3 endpoint of non-AWS storage (then "
                                       "AWS_ENDPOINT_URL; unset: AWS itself)", _text, fallback="AWS_ENDPOINT_URL")
    dicomweb_username: str | None = _var("CURATE_DICOMWEB_USERNAME", "basic-auth user of DICOMweb sources "
                                         "(credentials in the URI win)", _text)
    dicomweb_password: str | None = _var("CURATE_DICOMWEB_PASSWORD", "basic-auth password of DICOMweb sources",
                                         _text, secret=True)
    series_model: Path | None = _var("CURATE_SERIES_MODEL", "weights of the series-kind model; unset: the "
                                     "shipped file", _path)
    quality_model: Path | None = _var("CURATE_QUALITY_MODEL", "weights of the quality model; unset: the "
                                      "shipped file", _path)
    registration_config: Path | None = _var("CURATE_REGISTRATION_CONFIG", "registration defaults file; unset: "
                                            "include/registration/default.yaml", _path)
    release_cache: Path | None = _var("CURATE_RELEASE_CACHE", "where open_release keeps verified copies of a "
                                      "remote release's files; unset: ~/.cache/curate/releases", _path)
    max_source_bytes: int = _var("CURATE_MAX_SOURCE_BYTES", "most bytes one source may unpack", _count,
                                 200 * 1024**3)
    max_source_files: int = _var("CURATE_MAX_SOURCE_FILES", "most files one source may hold", _count, 2_000_000)
    max_file_bytes: int = _var("CURATE_MAX_FILE_BYTES", "largest single file a source may hold", _count,
                               4 * 1024**3)
    stage_tasks_per_run: int = _var("CURATE_STAGE_TASKS_PER_RUN", "most tasks of a heavy stage (deid, quality, "
                                    "register) one curate_source run runs at once: about the cores of the "
                                    "workers that run it (read when the DAG is parsed)", _positive, 2)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], cwd: Path | None = None) -> Settings:
        """Parse `environ`; an unset or empty variable keeps the default. `cwd` anchors the default
        CURATE_HOME (./var) and a relative one; it is resolved so later chdirs do not move it."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            meta = f.metadata
            raw = environ.get(meta["env"]) or (environ.get(meta["fallback"]) if meta["fallback"] else None)
            if raw:
                values[f.name] = meta["parse"](meta["env"], raw)
        home = values.get("home", cls.home)
        values["home"] = ((cwd or Path.cwd()) / home).resolve()
        return cls(**values)

    def with_connection(self, uri: str | None, extra: Mapping[str, Any] | None = None,
                        conn_id: str = DEFAULT_CONNECTION_ID) -> Settings:
        """These settings overridden by an Airflow connection: its URI is the catalog URL, its extra
        may name ``store_uri`` and ``site``. Empty values keep the environment's; an unknown extra key
        fails (a typo would otherwise run silently on the defaults)."""
        extra = dict(extra or {})
        unknown = sorted(set(extra) - set(CONNECTION_EXTRA))
        if unknown:
            raise ValueError(f"Airflow connection {conn_id}: unknown extra {unknown}; known: {sorted(CONNECTION_EXTRA)}")
        changes: dict[str, Any] = {}
        if uri:
            changes["db_url"] = uri
        if extra.get("store_uri"):
            changes["store_uri"] = _store_uri(f"Airflow connection {conn_id} extra store_uri", str(extra["store_uri"]))
        if extra.get("site"):
            changes["site"] = str(extra["site"])
        return dataclasses.replace(self, **changes)

    @property
    def catalog_url(self) -> str:
        """The catalog to open: CURATE_DB_URL, else a SQLite file under home."""
        return self.db_url or f"sqlite:///{self.home / 'catalog.sqlite'}"

    @property
    def embedded_store(self) -> bool:
        """True when the store is the embedded default one (no store URI configured)."""
        return not self.store_uri

    @property
    def store_location(self) -> str:
        """The store to open: CURATE_STORE_URI, else the folder home/store."""
        return self.store_uri or str(self.home / "store")


def variables() -> dict[str, str]:
    """Every CURATE_* variable the platform reads, with its meaning (for docs and tests)."""
    found = {f.metadata["env"]: f.metadata["doc"] for f in dataclasses.fields(Settings)}
    return {**found, **DELEGATED}


@lru_cache(maxsize=16)
def _cached(items: tuple[tuple[str, str], ...], cwd: str) -> Settings:
    return Settings.from_environ(dict(items), Path(cwd))


_NAMES = tuple(n for f in dataclasses.fields(Settings) for n in (f.metadata["env"], f.metadata["fallback"]) if n)


def settings(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings of `environ` (default: the process environment, read now), cached per content."""
    env = os.environ if environ is None else environ
    items = tuple((n, env[n]) for n in _NAMES if n in env)
    return _cached(items, os.getcwd())
