"""docker-compose.yaml is a valid Compose file (the Compose specification's own JSON schema, vendored from
compose-spec/compose-spec, Apache-2.0) whose every environment variable has a reader: an Airflow option
(core or an installed provider), the platform's settings, the annotation service's config, boto3, or an
image documented below; and every `${VAR}` it takes from `.env` is in README's table. (There is no Docker
daemon on these machines to start it.)"""
from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "tests" / "fixtures" / "compose" / "compose-spec.json"

#: Variables read by the third-party images and tools, not by our code (with where it is documented).
IMAGE_VARIABLES = {
    "POSTGRES_USER": "postgres image (docs: hub.docker.com/_/postgres)",
    "POSTGRES_PASSWORD": "postgres image",
    "POSTGRES_DB": "postgres image",
    "ORTHANC__AUTHENTICATION_ENABLED": "orthancteam/orthanc image: ORTHANC__<setting> sets orthanc.json",
    "ORTHANC__REGISTERED_USERS": "orthancteam/orthanc image",
    "ORTHANC__DICOM_WEB__ENABLE": "orthancteam/orthanc image",
    "OMP_THREAD_LIMIT": "tesseract (OpenMP): one thread per OCR call, parallelism comes from tasks",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


def _environments(compose: dict) -> dict[str, set[str]]:
    """variable -> services that set it (anchors already merged by the YAML loader)."""
    found: dict[str, set[str]] = {}
    for name, service in compose["services"].items():
        env = service.get("environment") or {}
        keys = env if isinstance(env, dict) else [e.split("=", 1)[0] for e in env]
        for key in keys:
            found.setdefault(key, set()).add(name)
    return found


def test_the_file_is_valid_against_the_compose_specification(compose):
    schema = json.loads(SCHEMA.read_text())
    jsonschema.validate(compose, schema, cls=jsonschema.Draft7Validator)


def test_the_specification_check_can_fail():
    schema = json.loads(SCHEMA.read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"services": {"web": {"image": "x", "depends_on": {"db": {"condition": "soon"}}}}},
                            schema, cls=jsonschema.Draft7Validator)


def _airflow_option(name: str) -> bool:
    from airflow.configuration import conf

    section, _, key = name.removeprefix("AIRFLOW__").partition("__")
    return key.lower() in conf.configuration_description.get(section.lower(), {}).get("options", {})


def _reader(name: str) -> str | None:
    """Who reads `name`, or None."""
    from botocore.credentials import EnvProvider

    from curation.settings import DELEGATED, variables
    from operators.alerts import ALERTS_CONN_ID

    if name.startswith("AIRFLOW_CONN_"):
        return "an Airflow connection" if name.removeprefix("AIRFLOW_CONN_").lower() in {ALERTS_CONN_ID} else None
    if name.startswith("AIRFLOW__"):
        return "an Airflow option" if _airflow_option(name) else None
    if name.startswith("CURATE_"):
        return "curation.settings" if name in variables() or name in DELEGATED else None
    if name.startswith("ANNOTATION_"):
        sources = "".join(p.read_text() for p in (REPO / "annotation").glob("*.py"))
        return "annotation service" if re.search(rf"[\"']{name}[\"']", sources) else None
    if name in (EnvProvider.ACCESS_KEY, EnvProvider.SECRET_KEY, "AWS_ENDPOINT_URL"):
        return "boto3"
    return IMAGE_VARIABLES.get(name)


def test_every_variable_set_has_a_reader(compose):
    unread = {name: sorted(services) for name, services in _environments(compose).items() if not _reader(name)}
    assert unread == {}, f"set in docker-compose.yaml but read by nothing: {unread}"


def test_the_reader_check_can_fail():
    assert _reader("AIRFLOW__CORE__EXECUTOR") and _reader("AIRFLOW__CELERY__RESULT_BACKEND")
    assert _reader("AIRFLOW__CORE__EXECUTER") is None
    assert _reader("ANNOTATION_DATABSE_URL") is None
    assert _reader("CURATE_STORE_URL") is None


def test_every_dot_env_variable_is_documented(compose):
    text = (REPO / "docker-compose.yaml").read_text()
    wanted = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    readme = (REPO / "README.md").read_text()
    missing = sorted(v for v in wanted if f"`{v}`" not in readme)
    assert missing == [], f"docker-compose.yaml takes these from .env but README does not say so: {missing}"


def test_the_stack_has_its_services(compose):
    services = set(compose["services"])
    assert {"postgres", "redis", "s3", "s3-init", "orthanc", "airflow-init", "airflow-api", "airflow-scheduler",
            "airflow-dag-processor", "airflow-triggerer", "airflow-worker", "annotation"} <= services
    assert compose["x-airflow-env"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert "airflow pools import" in " ".join(compose["services"]["airflow-init"]["command"])
    assert compose["services"]["s3-init"]["command"] == ["curate", "store", "init"]
