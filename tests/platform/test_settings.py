"""One settings source: CURATE_* variables are read by curation/settings.py only, every variable the
production compose file sets is read by something, and the settings parse as documented.

How a variable of docker-compose.yaml counts as read (services built from the platform's image only;
postgres, redis, s3 and orthanc run third-party images that read their own variables):
- CURATE_*: setting it to its compose value changes `curation.settings.settings()`;
- ANNOTATION_*: setting it changes `annotation.config.Settings.from_env()`;
- AIRFLOW__<SECTION>__<KEY>: an option of Airflow's configuration (its config.yml or the provider
  fallback defaults it ships), or of a provider in `PROVIDER_OPTIONS`;
- AWS_*: a variable botocore reads (its credential provider, its session variables, or the
  service endpoint variable AWS_ENDPOINT_URL);
- AIRFLOW_CONN_<ID>: a connection whose id the platform's code uses (`CONNECTION_IDS`);
- anything else: listed in `EXTERNAL` with who reads it, and named in the code that relies on it.
"""
from __future__ import annotations

import ast
import configparser
import dataclasses
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from curation.settings import (
    CONNECTION_EXTRA,
    DEFAULT_SITE,
    DELEGATED,
    Settings,
    settings,
    variables,
)

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yaml"

#: Packages whose modules may not read CURATE_* variables (tests and benchmarks set them for the
#: processes they start; they are harnesses, not the platform).
SCANNED = ("curation", "curate", "operators", "dags", "plugins", "annotation", "deid", "qc_models", "synth",
           "training")

#: Modules that may name CURATE_* variables, with the names and why.
ALLOWED = {
    "curation/settings.py": set(variables()),  # the one reader
    # the deid library does not import curation; it reads its own secret (curation.settings.DELEGATED)
    "deid/vault.py": set(DELEGATED),
    # `curate demo` sets the home (default: the checkout's var/) for the Airflow processes it starts
    "curate/demo.py": {"CURATE_HOME"},
}

#: Options of Airflow providers the compose file configures that Airflow's own config files do not list.
PROVIDER_OPTIONS = {("celery", "result_backend"): "apache-airflow-providers-celery (CeleryExecutor)"}

#: Airflow connections the platform's code reads, by id (AIRFLOW_CONN_<ID> in the compose file).
CONNECTION_IDS = {"curate_alerts": "operators/alerts.py"}

#: Variables read by neither the platform nor Airflow/boto3, with the reader and a file naming it.
EXTERNAL = {"OMP_THREAD_LIMIT": ("the OpenMP runtime of tesseract (OCR of burnt-in text)", "deid/ocr.py")}

_VAR = re.compile(r"CURATE_[A-Z][A-Z0-9_]*\Z")
_ENV_CALLS = {"get", "getenv", "setdefault", "pop", "setenv", "delenv"}


# -- who reads CURATE_* -----------------------------------------------------------------------------

def curate_reads(source: str, known: set[str]) -> set[str]:
    """CURATE_* names a module reads or names: any string literal equal to a known variable, and any
    literal starting with CURATE_ used as an environment key (``x.get("CURATE_…")``, ``getenv(…)``,
    ``env["CURATE_…"]``, ``"CURATE_…" in env``). Docstrings and other text that merely mention a
    variable are not literals equal to its name."""
    found: set[str] = set()

    def env_key(node: ast.AST | None) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and _VAR.match(node.value):
            found.add(node.value)

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in known:
            found.add(node.value)
        elif isinstance(node, ast.Call) and node.args:
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in _ENV_CALLS:
                env_key(node.args[0])
        elif isinstance(node, ast.Subscript):
            env_key(node.slice)
        elif isinstance(node, ast.Compare) and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
            env_key(node.left)
    return found


def test_the_scanner_finds_planted_reads():
    planted = '''
"""Mentions CURATE_HOME in a docstring, which is not a read."""
import os
VERSION = "CURATE_DEID_1"
a = os.environ.get("CURATE_PLANTED_GET")
b = os.getenv("CURATE_PLANTED_GETENV")
c = os.environ["CURATE_PLANTED_ITEM"]
d = "CURATE_PLANTED_IN" in os.environ
e = os.environ.setdefault("CURATE_PLANTED_DEFAULT", "x")
NAME = "CURATE_SITE"
'''
    assert curate_reads(planted, set(variables())) == {
        "CURATE_PLANTED_GET", "CURATE_PLANTED_GETENV", "CURATE_PLANTED_ITEM", "CURATE_PLANTED_IN",
        "CURATE_PLANTED_DEFAULT", "CURATE_SITE"}


def test_only_the_settings_module_reads_curate_variables():
    known = set(variables())
    offenders = {}
    for package in SCANNED:
        for path in sorted((REPO / package).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if "node_modules" in path.parts:
                continue
            extra = curate_reads(path.read_text(encoding="utf-8"), known) - ALLOWED.get(rel, set())
            if extra:
                offenders[rel] = sorted(extra)
    assert offenders == {}, "read these through curation.settings.settings() instead"


def test_every_variable_the_settings_module_reads_is_documented():
    source = (REPO / "curation" / "settings.py").read_text(encoding="utf-8")
    assert curate_reads(source, set()) <= set(variables())  # no stray literal read beside the fields
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    missing = [name for name in variables() if f"`{name}`" not in readme]
    assert missing == [], "add them to the settings table of README.md"


# -- every compose variable is read -----------------------------------------------------------------

def _platform_environment() -> dict[str, str]:
    """The environment of every compose service built from the platform's image, merged."""
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    image = compose["x-curate-image"]["image"]
    merged: dict[str, str] = {}
    for name, service in compose["services"].items():
        if service.get("image") != image:
            continue
        env = service.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) for item in env)
        merged.update({k: str(v) for k, v in env.items()})
    return merged


def _as_deployed(value: str) -> str:
    """A compose value with its ${...} interpolations filled by a placeholder."""
    return re.sub(r"\$\{[^}]*\}", "x", value)


def _airflow_options() -> set[tuple[str, str]]:
    """(section, option) of Airflow's configuration, read from the files it ships (no import)."""
    root = Path(importlib.util.find_spec("airflow").submodule_search_locations[0]) / "config_templates"
    spec = yaml.safe_load((root / "config.yml").read_text(encoding="utf-8"))
    options = {(section, key) for section, body in spec.items() for key in (body.get("options") or {})}
    fallback = configparser.ConfigParser(interpolation=None)
    fallback.read(root / "provider_config_fallback_defaults.cfg")
    options |= {(section, key) for section in fallback.sections() for key in fallback[section]}
    return options


def _botocore_variables() -> set[str]:
    from botocore.configprovider import BOTOCORE_DEFAUT_SESSION_VARIABLES
    from botocore.credentials import EnvProvider

    # AWS_ENDPOINT_URL: botocore's endpoint provider (configprovider.EnvironmentProvider) reads it
    names = {EnvProvider.ACCESS_KEY, EnvProvider.SECRET_KEY, *EnvProvider.TOKENS, "AWS_ENDPOINT_URL"}
    for entry in BOTOCORE_DEFAUT_SESSION_VARIABLES.values():
        env = entry[1]
        names.update([env] if isinstance(env, str) else (env or ()))
    return names


def test_the_compose_file_names_the_annotation_database_variable_the_service_reads():
    env = _platform_environment()
    assert "ANNOTATION_DATABASE_URL" in env and "ANNOTATION_DB_URL" not in env


def test_every_variable_of_the_compose_file_is_read(monkeypatch):
    from annotation.config import Settings as AnnotationSettings

    env = _platform_environment()
    assert env, "no service of docker-compose.yaml runs the platform's image"
    airflow_options = _airflow_options() | set(PROVIDER_OPTIONS)
    boto = _botocore_variables()
    unread = []
    for name, value in sorted(env.items()):
        value = _as_deployed(value)
        if name.startswith("CURATE_"):
            read = settings({name: value}) != settings({})
        elif name.startswith("ANNOTATION_"):
            monkeypatch.setenv(name, value)
            read = AnnotationSettings.from_env() != AnnotationSettings()
            monkeypatch.delenv(name)
        elif name.startswith("AIRFLOW__"):
            _, section, option = name.split("__", 2)
            read = (section.lower(), option.lower()) in airflow_options
        elif name.startswith("AWS_"):
            read = name in boto
        elif name.startswith("AIRFLOW_CONN_"):
            conn_id = name.removeprefix("AIRFLOW_CONN_").lower()
            read = conn_id in CONNECTION_IDS and f'"{conn_id}"' in (REPO / CONNECTION_IDS[conn_id]).read_text()
        else:
            reader = EXTERNAL.get(name)
            read = reader is not None and name in (REPO / reader[1]).read_text(encoding="utf-8")
        if not read:
            unread.append(name)
    assert unread == []


def test_the_airflow_check_would_catch_a_misspelt_option():
    options = _airflow_options()
    assert ("core", "executor") in options and ("core", "executer") not in options
    assert "AWS_ACCESS_KEY_ID" in _botocore_variables() and "AWS_ACCESS_KEY" not in _botocore_variables()


# -- parsing, defaults, the Airflow connection ------------------------------------------------------

def test_defaults_are_the_embedded_platform(tmp_path):
    s = Settings.from_environ({}, cwd=tmp_path)
    assert s.home == (tmp_path / "var").resolve()
    assert s.catalog_url == f"sqlite:///{tmp_path.resolve() / 'var' / 'catalog.sqlite'}"
    assert s.store_location == str(tmp_path.resolve() / "var" / "store") and s.embedded_store
    assert s.site == DEFAULT_SITE == "default"
    assert (s.max_source_bytes, s.max_source_files, s.max_file_bytes) == (200 * 1024**3, 2_000_000, 4 * 1024**3)
    assert s.stage_tasks_per_run == 2
    assert s.series_model is s.quality_model is s.registration_config is s.s3_endpoint_url is None


def test_each_variable_sets_its_field(tmp_path):
    env = {"CURATE_HOME": "state", "CURATE_DB_URL": "postgresql+psycopg://u@db/catalog", "CURATE_STORE_URI":
           "s3://bucket/site", "CURATE_SITE": "north", "CURATE_S3_ENDPOINT_URL": "http://s3:8333",
           "CURATE_DICOMWEB_USERNAME": "u", "CURATE_DICOMWEB_PASSWORD": "p", "CURATE_SERIES_MODEL": "/m/s.pt",
           "CURATE_QUALITY_MODEL": "/m/q.pt", "CURATE_REGISTRATION_CONFIG": "/c/r.yaml",
           "CURATE_RELEASE_CACHE": "/cache/releases", "CURATE_MAX_SOURCE_BYTES": "1_000", "CURATE_MAX_SOURCE_FILES": "10", "CURATE_MAX_FILE_BYTES": "7",
           "CURATE_STAGE_TASKS_PER_RUN": "6"}
    s = Settings.from_environ(env, cwd=tmp_path)
    assert s.home == (tmp_path / "state").resolve()  # relative to the working directory, like before
    assert s.catalog_url == env["CURATE_DB_URL"] and s.store_location == "s3://bucket/site" and not s.embedded_store
    assert (s.site, s.s3_endpoint_url, s.dicomweb_username, s.dicomweb_password) == ("north", "http://s3:8333", "u", "p")
    assert (s.series_model, s.quality_model, s.registration_config) == (
        Path("/m/s.pt"), Path("/m/q.pt"), Path("/c/r.yaml"))
    assert s.release_cache == Path("/cache/releases")
    assert (s.max_source_bytes, s.max_source_files, s.max_file_bytes) == (1000, 10, 7)
    assert s.stage_tasks_per_run == 6
    assert "'p'" not in repr(s)  # the password stays out of logs
    assert {f.metadata["env"] for f in dataclasses.fields(Settings)} == set(env)  # the test covers every field


def test_empty_variables_keep_the_default_and_aws_endpoint_is_the_fallback(tmp_path):
    s = Settings.from_environ({"CURATE_SITE": "", "CURATE_DB_URL": "", "AWS_ENDPOINT_URL": "http://aws"}, cwd=tmp_path)
    assert s.site == DEFAULT_SITE and s.db_url is None and s.s3_endpoint_url == "http://aws"
    both = {"CURATE_S3_ENDPOINT_URL": "http://ours", "AWS_ENDPOINT_URL": "http://aws"}
    assert Settings.from_environ(both, cwd=tmp_path).s3_endpoint_url == "http://ours"


@pytest.mark.parametrize("name,value,message", [
    ("CURATE_MAX_SOURCE_BYTES", "200GB", "CURATE_MAX_SOURCE_BYTES='200GB' is not an integer"),
    ("CURATE_MAX_SOURCE_FILES", "-1", "CURATE_MAX_SOURCE_FILES='-1' must not be negative"),
    ("CURATE_MAX_FILE_BYTES", "4.5", "CURATE_MAX_FILE_BYTES='4.5' is not an integer"),
    ("CURATE_STAGE_TASKS_PER_RUN", "0", "CURATE_STAGE_TASKS_PER_RUN='0' must be at least 1"),
    ("CURATE_STORE_URI", "gs://bucket/x", "CURATE_STORE_URI='gs://bucket/x' has an unsupported scheme"),
])
def test_bad_values_name_their_variable(name, value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        settings({name: value})


def test_settings_follow_the_process_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CURATE_SITE", "south")
    monkeypatch.setenv("CURATE_HOME", str(tmp_path))
    assert settings().site == "south" and settings().home == tmp_path.resolve()
    monkeypatch.setenv("CURATE_SITE", "east")
    assert settings().site == "east"  # read at each call, not frozen at import
    monkeypatch.delenv("CURATE_SITE")
    assert settings().site == DEFAULT_SITE


def test_readers_take_their_values_from_the_settings(monkeypatch, tmp_path):
    from curation.classify.classifier import weights_path as series_weights
    from curation.config import default_site, default_store_uri
    from curation.catalog.db import default_db_url
    from curation.ingest.sources import Limits
    from curation.quality.decision import weights_path as quality_weights
    from curation.store.s3 import s3_endpoint_from_env

    monkeypatch.setenv("CURATE_HOME", str(tmp_path / "home"))
    for name in ("CURATE_DB_URL", "CURATE_STORE_URI", "CURATE_SITE"):
        monkeypatch.delenv(name, raising=False)
    assert default_db_url() == f"sqlite:///{tmp_path.resolve() / 'home' / 'catalog.sqlite'}"
    assert default_store_uri() == str(tmp_path.resolve() / "home" / "store") and default_site() == DEFAULT_SITE
    monkeypatch.setenv("CURATE_MAX_FILE_BYTES", "123")
    monkeypatch.setenv("CURATE_SERIES_MODEL", str(tmp_path / "s.pt"))
    monkeypatch.setenv("CURATE_QUALITY_MODEL", str(tmp_path / "q.pt"))
    monkeypatch.setenv("CURATE_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    assert Limits().max_file_bytes == 123 and Limits(max_file_bytes=5).max_file_bytes == 5
    assert series_weights() == tmp_path / "s.pt" and quality_weights() == tmp_path / "q.pt"
    assert s3_endpoint_from_env() == "http://127.0.0.1:9"


def test_the_connection_overrides_catalog_store_and_site(tmp_path):
    base = Settings.from_environ({"CURATE_STORE_URI": "/data/store", "CURATE_SITE": "north"}, cwd=tmp_path)
    s = base.with_connection("postgresql+psycopg://u:pw@db/catalog", {"store_uri": "s3://b/p", "site": "west"})
    assert (s.catalog_url, s.store_location, s.site) == ("postgresql+psycopg://u:pw@db/catalog", "s3://b/p", "west")
    kept = base.with_connection(None, {"store_uri": "", "site": None})
    assert kept == base  # empty values keep the environment's
    assert base.with_connection("sqlite:///x.sqlite").store_location == "/data/store"
    assert set(CONNECTION_EXTRA) == {"store_uri", "site"}


def test_the_connection_refuses_unknown_extra_and_bad_store():
    with pytest.raises(ValueError, match=r"curate_default: unknown extra \['store'\]"):
        settings({}).with_connection(None, {"store": "s3://b"})
    with pytest.raises(ValueError, match="extra store_uri='ftp://x' has an unsupported scheme"):
        settings({}).with_connection(None, {"store_uri": "ftp://x"})
