"""docker-compose.yaml is a valid Compose file (the Compose specification's own JSON schema, vendored from
compose-spec/compose-spec, Apache-2.0), has the production services, and every `${VAR}` it takes from
`.env` is in README's table. That every variable it sets is read: tests/platform/test_settings.py. (There
is no Docker daemon on these machines to start it.)"""
from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "tests" / "fixtures" / "compose" / "compose-spec.json"

@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


def test_the_file_is_valid_against_the_compose_specification(compose):
    schema = json.loads(SCHEMA.read_text())
    jsonschema.validate(compose, schema, cls=jsonschema.Draft7Validator)


def test_the_specification_check_can_fail():
    schema = json.loads(SCHEMA.read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"services": {"web": {"image": "x", "depends_on": {"db": {"condition": "soon"}}}}},
                            schema, cls=jsonschema.Draft7Validator)


def test_every_dot_env_variable_is_documented(compose):
    text = (REPO / "docker-compose.yaml").read_text()
    wanted = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    readme = (REPO / "README.md").read_text()
    missing = sorted(v for v in wanted if f"`{v}`" not in readme)
    assert missing == [], f"docker-compose.yaml takes these from .env but README does not say so: {missing}"


def test_the_stack_has_its_services(compose):
    services = set(compose["services"])
    assert {"postgres", "redis", "s3", "s3-init", "orthanc", "receiver", "airflow-init", "airflow-api",
            "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker", "annotation"} <= services
    assert compose["x-airflow-env"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert "airflow pools import" in " ".join(compose["services"]["airflow-init"]["command"])
    assert compose["services"]["s3-init"]["command"] == ["curate", "store", "init"]
