"""The hook maps the Airflow connection curate_default onto the platform's settings: its URI (without
the extra's query) is the catalog URL, its extra names the store and the site; without the
connection the environment's settings apply."""
from __future__ import annotations

import json
import subprocess
import sys

PROBE = r"""
import json
from operators.hooks.curation import CurationHook
out = {}
for conn_id in ("curate_default", "absent"):
    s = CurationHook(conn_id).settings
    out[conn_id] = {"db_url": s.db_url, "store_uri": s.store_uri, "site": s.site}
store = CurationHook().get_store()
out["store"] = store.uri
print("HOOK" + json.dumps(out))
"""


def test_connection_maps_onto_settings(tmp_path, airflow_env):
    env = dict(airflow_env)
    env["CURATE_SITE"] = "from-env"
    env["AIRFLOW_CONN_CURATE_DEFAULT"] = json.dumps({
        "conn_type": "postgresql+psycopg", "host": "db.example.org", "schema": "catalog", "login": "curator",
        "extra": {"store_uri": str(tmp_path / "store"), "site": "north"}})
    res = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(next(l for l in res.stdout.splitlines() if l.startswith("HOOK"))[4:])
    assert out["curate_default"] == {"db_url": "postgresql+psycopg://curator@db.example.org/catalog",
                                     "store_uri": str(tmp_path / "store"), "site": "north"}
    assert out["absent"]["site"] == "from-env" and out["absent"]["db_url"] is None
    assert out["store"].endswith("store") and str(tmp_path) in out["store"]
