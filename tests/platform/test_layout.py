"""The repository keeps the promised shape: layout, the two commands, CI entry, compose file."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]

# The libraries, and what they must never load: the platform around them (Airflow and what runs on
# it, the annotation service, the CLI, the synthetic hospital, model training).
LIBRARIES = ("curation", "deid", "qc_models")
FORBIDDEN = ("airflow", "annotation", "dags", "synth", "training", "curate", "operators", "plugins")

# Run in a fresh interpreter: imports every module named (and, with --walk, every module under each
# package), then says which forbidden top-level packages are in sys.modules, each with the first
# module whose import brought it in, and which modules failed to import.
PROBE = r"""
import importlib, json, pkgutil, sys

walk, names, forbidden = sys.argv[1] == "--walk", sys.argv[2].split(","), set(sys.argv[3].split(","))
loaded, failed, imported = {}, {}, []

def note(module):
    for name in list(sys.modules):
        root = name.partition(".")[0]
        if root in forbidden and root not in loaded:
            loaded[root] = module

def load(name):
    try:
        module = importlib.import_module(name)
    except BaseException as exc:  # noqa: BLE001 - report every failure, keep walking
        failed[name] = f"{type(exc).__name__}: {exc}"
        return None
    imported.append(name)
    note(name)
    return module

for name in names:
    module = load(name)
    if walk and module is not None and hasattr(module, "__path__"):
        for info in pkgutil.walk_packages(module.__path__, name + ".",
                                          onerror=lambda n: failed.setdefault(n, "import failed")):
            if info.name not in imported:
                load(info.name)
print(json.dumps({"forbidden": loaded, "failed": failed, "imported": imported}))
"""


def probe(names: list[str], walk: bool = True) -> dict:
    res = subprocess.run([sys.executable, "-c", PROBE, "--walk" if walk else "--only", ",".join(names),
                          ",".join(FORBIDDEN)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_layout_folders_exist():
    for name in ["dags", "plugins", "operators", "curation", "deid", "qc_models", "annotation", "curate", "synth",
                 "training", "include", "tests", "benchmarks", "docs"]:
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


def test_libraries_load_nothing_of_the_platform():
    """Every module of every library, imported in a fresh interpreter, leaves no forbidden package in
    sys.modules (a lazy import inside a function is fine: it is not loaded by importing the module)."""
    for library in LIBRARIES:
        report = probe([library])
        assert report["failed"] == {}, (library, report["failed"])
        assert report["forbidden"] == {}, (library, report["forbidden"])
        assert len(report["imported"]) > 1, report  # the walk reached the modules under the package


def test_the_probe_sees_a_forbidden_import():
    """The same probe on a module known to import Airflow reports it, so the test above can fail."""
    report = probe(["operators.ingest"], walk=False)
    assert report["failed"] == {}
    assert report["forbidden"].get("airflow") == "operators.ingest"
    assert "curation" not in report["forbidden"]
