"""The repository keeps the promised shape: layout, the two commands, CI entry, compose file."""
from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_layout_folders_exist():
    for name in ["dags", "plugins", "operators", "curation", "deid", "qc_models", "annotation", "include",
                 "tests", "benchmarks", "docs"]:
        assert (REPO / name).is_dir(), name


def test_readme_starts_with_the_two_commands():
    lines = [l for l in (REPO / "README.md").read_text().splitlines() if l.strip()]
    assert lines[0] == "```"
    assert lines[1].startswith("make demo") and lines[2].startswith("make test")


def test_ci_runs_make_test_only():
    body = [l for l in (REPO / ".ci" / "run").read_text().splitlines() if l.strip() and not l.startswith("#")]
    assert body[-1].strip() == "exec make test"


def test_compose_file_describes_the_production_services():
    compose = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
    services = set(compose["services"])
    assert {"postgres", "redis", "s3", "orthanc", "airflow-scheduler", "airflow-worker", "airflow-api",
            "annotation"} <= services
    env = compose["x-airflow-env"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["CURATE_DB_URL"].startswith("postgresql")


def test_libraries_never_import_airflow():
    offenders = []
    for pkg in ("curation", "deid", "qc_models"):
        for path in (REPO / pkg).rglob("*.py"):
            text = path.read_text()
            if "import airflow" in text or "from airflow" in text:
                offenders.append(str(path.relative_to(REPO)))
    assert offenders == []
