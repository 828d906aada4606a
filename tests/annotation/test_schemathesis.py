"""schemathesis against the served OpenAPI spec: no request, valid or not, gets a 5xx."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.annotation.conftest import ROOT
from tests.annotation.world import build_world, reading

pytestmark = [pytest.mark.server, pytest.mark.slow]
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def _run(url: str, token: str | None, examples: int, out: Path, extra: list[str]) -> subprocess.CompletedProcess:
    cmd = [str(SCHEMATHESIS), "run", f"{url}/api/openapi.json", "--checks", "not_a_server_error",
           "--max-examples", str(examples), "--seed", "6", "--request-timeout", "30", "--no-color",
           "--report", "junit", "--report-dir", str(out), *extra]
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=540, cwd=ROOT)


def test_no_server_errors(live_server_factory, database_url: str, store_root: Path, tmp_path: Path) -> None:
    """On SQLite and on PostgreSQL (which, unlike SQLite, refuses NUL characters in text)."""
    server = live_server_factory(database_url)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        w = build_world(client, server.database_url, store_root, readers=2, verification=1, n_items=3)
        t = client.post(f"/api/tasks/next?project_id={w.project_id}", headers=w.h("junior")).json()["task"]
        client.post(f"/api/tasks/{t['id']}/submit", headers=w.h("junior"), json=reading())
    # As a site admin every handler is reachable; logout would end the session mid-run.
    admin = _run(server.url, w.tokens["admin"], 20, tmp_path / "admin",
                 ["--exclude-path", "/api/auth/logout", "--exclude-path", "/api/users/{user_id}"])
    anonymous = _run(server.url, None, 5, tmp_path / "anon", [])
    log = server.log_path.read_text()
    for run in (admin, anonymous):
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "Traceback" not in log, log[-4000:]
