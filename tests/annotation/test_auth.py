"""Accounts and access: hashing, expiring sessions, login rate limit, single-use expiring invites."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import update

from annotation.admin import create_admin
from annotation.models import Invite, LoginSession, User, utcnow
from annotation.security import hash_password, verify_password
from tests.annotation.conftest import make_client
from tests.annotation.world import PASSWORD, ok


def test_passwords_are_argon2_and_verify() -> None:
    h = hash_password("correct-horse-battery")
    assert h.startswith("$argon2id$") and "correct-horse" not in h
    assert verify_password(h, "correct-horse-battery") and not verify_password(h, "wrong-horse-battery")


def test_session_expires_and_logout_ends_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    create_admin(url, "admin", PASSWORD)
    with make_client(url) as client:
        token = ok(client.post("/api/auth/login", json={"username": "admin", "password": PASSWORD}))["token"]
        client.cookies.clear()
        h = {"Authorization": f"Bearer {token}"}
        assert ok(client.get("/api/auth/me", headers=h))["username"] == "admin"
        with client.app.state.factories.writer() as db, db.begin():
            db.execute(update(LoginSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        assert client.get("/api/auth/me", headers=h).status_code == 401
        token = ok(client.post("/api/auth/login", json={"username": "admin", "password": PASSWORD}))["token"]
        client.cookies.clear()
        h = {"Authorization": f"Bearer {token}"}
        assert client.post("/api/auth/logout", headers=h).status_code == 204
        assert client.get("/api/auth/me", headers=h).status_code == 401


def test_login_is_rate_limited(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    create_admin(url, "admin", PASSWORD)
    with make_client(url, login_max_failures=3) as client:
        for _ in range(3):
            assert client.post("/api/auth/login", json={"username": "admin", "password": "nope-nope-nope"}).status_code == 401
        r = client.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
        assert r.status_code == 429 and "Retry-After" in r.headers
        # unknown usernames count too, and say nothing about whether the user exists
        r = client.post("/api/auth/login", json={"username": "ghost", "password": "nope-nope-nope"})
        assert r.status_code in (401, 429) and "ghost" not in r.text


def test_invite_single_use_and_expiry(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    create_admin(url, "admin", PASSWORD)
    with make_client(url) as client:
        h = {"Authorization": f"Bearer {ok(client.post('/api/auth/login', json={'username': 'admin', 'password': PASSWORD}))['token']}"}
        client.cookies.clear()
        pid = ok(client.post("/api/projects", headers=h, json={"name": "p1"}), 201)["id"]
        inv = ok(client.post(f"/api/projects/{pid}/invites", headers=h, json={"role": "annotator", "level": "senior"}), 201)
        assert inv["path"] == f"/#/invite/{inv['token']}"
        info = ok(client.get(f"/api/invites/{inv['token']}"))
        assert info["project_name"] == "p1" and info["role"] == "annotator"
        assert client.post(f"/api/invites/{inv['token']}/accept", json={"username": "expert1", "password": "short"}).status_code == 422
        s = ok(client.post(f"/api/invites/{inv['token']}/accept", json={"username": "expert1", "password": PASSWORD}), 201)
        client.cookies.clear()
        me = ok(client.get("/api/auth/me", headers={"Authorization": f"Bearer {s['token']}"}))
        assert me["memberships"] == [{"project_id": pid, "project_name": "p1", "role": "annotator", "level": "senior"}]
        again = client.post(f"/api/invites/{inv['token']}/accept", json={"username": "expert2", "password": PASSWORD})
        assert again.status_code == 410
        # expired invites are refused
        inv2 = ok(client.post(f"/api/projects/{pid}/invites", headers=h, json={"role": "annotator"}), 201)
        with client.app.state.factories.writer() as db, db.begin():
            db.execute(update(Invite).where(Invite.used_at.is_(None)).values(expires_at=utcnow() - timedelta(seconds=1)))
        assert client.get(f"/api/invites/{inv2['token']}").status_code == 410
        assert client.get("/api/invites/not-a-token").status_code == 404
        # tokens are stored hashed
        with client.app.state.factories.reader() as db:
            assert all(inv["token"] not in (i.token_hash or "") for i in db.query(Invite))


def test_deactivated_user_loses_access(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    create_admin(url, "admin", PASSWORD)
    with make_client(url) as client:
        h = {"Authorization": f"Bearer {ok(client.post('/api/auth/login', json={'username': 'admin', 'password': PASSWORD}))['token']}"}
        u = ok(client.post("/api/users", headers=h, json={"username": "temp-reader", "password": PASSWORD}), 201)
        t = ok(client.post("/api/auth/login", json={"username": "temp-reader", "password": PASSWORD}))["token"]
        client.cookies.clear()
        ok(client.patch(f"/api/users/{u['id']}", headers=h, json={"is_active": False}))
        assert client.get("/api/auth/me", headers={"Authorization": f"Bearer {t}"}).status_code == 401
        assert client.post("/api/auth/login", json={"username": "temp-reader", "password": PASSWORD}).status_code == 401
        with client.app.state.factories.reader() as db:
            assert db.get(User, u["id"]).is_active is False
