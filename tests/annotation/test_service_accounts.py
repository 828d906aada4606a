"""Service-account tokens: `curate annotation token create|list|revoke`, shown once, stored as
SHA-256 only, scoped to their projects and to the pipeline's rights, revocable at once."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from sqlalchemy import text

from annotation.db import make_engine
from curate.main import main as curate
from tests.annotation.conftest import make_client, series_uris
from tests.annotation.world import build_world, ok


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = curate(["annotation", "token", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_token_cli_scope_hashing_and_revocation(tmp_path: Path, store_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 't.db'}"
    with make_client(url) as client:
        w = build_world(client, url, store_root, readers=1, verification=0, n_items=1)
        rc, out, _ = _cli(capsys, "create", "--project", "chest-ct", "--role", "pipeline", "--db", url, "--json")
        assert rc == 0
        created = json.loads(out)
        secret = created["token"]
        assert created["name"] == "pipeline-chest-ct"
        assert created["scopes"] == [{"project_id": w.project_id, "project": "chest-ct", "role": "pipeline"}]
        engine = make_engine(url)
        with engine.connect() as conn:
            dump = "\n".join(str(row) for table in ("service_token", "user_account", "login_session")
                             for row in conn.execute(text(f"SELECT * FROM {table}")))
        engine.dispose()
        assert secret not in dump and hashlib.sha256(secret.encode()).hexdigest() in dump

        h = {"Authorization": f"Bearer {secret}"}
        p = f"/api/projects/{w.project_id}"
        assert ok(client.get(p + "/completion", headers=h))["project_id"] == w.project_id
        reg = ok(client.post(p + "/items", headers=h, json={"items": [
            {"external_id": "from-airflow", "uris": series_uris(store_root, 2)}]}), 201)
        assert len(reg["created"]) == 1
        assert client.get(p + "/export/json", headers=h).status_code == 200
        # nothing else: not the project page, not another project, not the readers' queue, no password login
        assert client.get(p, headers=h).status_code == 403
        assert client.get(f"/api/projects/{w.other_project_id}/completion", headers=h).status_code == 403
        assert client.get(f"/api/items/{w.items[0]}", headers=h).status_code == 403
        assert client.post(f"/api/tasks/next?project_id={w.project_id}", headers=h).status_code == 403
        assert client.post("/api/auth/login", json={"username": "svc-pipeline-chest-ct", "password": "!service-account"}
                           ).status_code == 401

        rc, out, _ = _cli(capsys, "list", "--db", url, "--json")
        listed = json.loads(out)
        assert rc == 0 and [t["name"] for t in listed] == ["pipeline-chest-ct"] and "token" not in listed[0]
        assert secret not in out
        rc, _, err = _cli(capsys, "create", "--project", "chest-ct", "--db", url)
        assert rc != 0 and "exists" in err
        rc, _, err = _cli(capsys, "create", "--project", "no-such-project", "--name", "x", "--db", url)
        assert rc != 0 and "no project" in err

        rc, out, _ = _cli(capsys, "revoke", "pipeline-chest-ct", "--db", url, "--json")
        assert rc == 0 and json.loads(out)["revoked_at"]
        assert client.get(p + "/completion", headers=h).status_code == 401
        rc, out2, _ = _cli(capsys, "revoke", str(created["id"]), "--db", url, "--json")
        assert rc == 0 and json.loads(out2)["revoked_at"] == json.loads(out)["revoked_at"]


def test_token_rest_refuses_person_roles_and_people_get_no_pipeline_role(tmp_path: Path, store_root: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    with make_client(url) as client:
        w = build_world(client, url, store_root, readers=1, verification=0, n_items=1)
        admin = w.h("admin")
        r = client.post("/api/service-tokens", headers=admin, json={"name": "x", "projects": [w.project_id], "roles": ["owner"]})
        assert r.status_code == 422
        r = client.post("/api/service-tokens", headers=admin, json={"name": "x", "projects": [99999]})
        assert r.status_code == 422 and "no project" in r.text
        r = client.post(f"/api/projects/{w.project_id}/members", headers=admin,
                        json={"user_id": w.users["outsider"], "role": "pipeline"})
        assert r.status_code == 422
        made = ok(client.post("/api/service-tokens", headers=admin,
                              json={"name": "two", "projects": [w.project_id, w.other_project_id]}), 201)
        assert {s["project_id"] for s in made["scopes"]} == {w.project_id, w.other_project_id}
        assert all(t.get("token") is None for t in ok(client.get("/api/service-tokens", headers=admin)))
        h = {"Authorization": f"Bearer {made['token']}"}
        assert client.get(f"/api/projects/{w.other_project_id}/progress", headers=h).status_code == 200
        assert ok(client.delete(f"/api/service-tokens/{made['id']}", headers=admin))["revoked_at"]
        assert client.get(f"/api/projects/{w.other_project_id}/progress", headers=h).status_code == 401
