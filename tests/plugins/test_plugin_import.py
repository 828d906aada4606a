"""Every task process imports the plugins folder (its template context loads plugins): the operator
page's plugin file must stay light there, loading neither the page nor Airflow's API server code."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = r"""
import importlib.util, json, sys
import airflow.sdk.execution_time.task_runner  # what a task process has loaded anyway
before = set(sys.modules)
spec = importlib.util.spec_from_file_location("curate_operator_page", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)  # as Airflow's plugin manager loads a plugins-folder file
plugin = module.CurateOperatorPagePlugin
print(json.dumps({"new": sorted(set(sys.modules) - before), "apps": [a["url_prefix"] for a in plugin.fastapi_apps]}))
"""


def test_the_plugin_file_loads_nothing_heavy_in_a_task_process():
    res = subprocess.run([sys.executable, "-c", PROBE, str(REPO / "plugins" / "operator_page" / "curate_operator_page.py")],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    found = json.loads(res.stdout.strip().splitlines()[-1])
    assert found["apps"] == ["/curate-ops"]
    heavy = [m for m in found["new"] if m.split(".")[0] in ("fastapi", "starlette", "jinja2", "curation", "sqlalchemy")
             or m.startswith(("airflow.api_fastapi", "airflow.models", "plugins.operator_page.app"))]
    assert heavy == [], heavy
