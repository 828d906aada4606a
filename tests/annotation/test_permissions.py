"""Authorization: every endpoint against every role, anonymous and a member of another project.

The table below is written by hand from the issue's rules (not derived from the server's matrix),
and the test fails when the app has a route the table does not list.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute

from annotation.models import Membership, Task, TaskStatus, utcnow
from tests.annotation.conftest import make_client, series_uris
from tests.annotation.world import PASSWORD, World, build_world, ok, reading

CALLERS = ["anonymous", "outsider", "junior", "senior", "reviewer", "data_owner", "manager", "owner", "admin", "pipeline"]
PUBLIC = frozenset(CALLERS)
ANY_USER = PUBLIC - {"anonymous"}
ADMIN = frozenset({"admin"})
MANAGEMENT = frozenset({"owner", "manager", "admin"})
MEMBERS = frozenset({"junior", "senior", "reviewer", "data_owner", "manager", "owner", "admin"})
# The pipeline's service account: register items, run rounds, completion and progress, export; nothing else.
PIPELINE = frozenset({"pipeline"})
EXPORT = MANAGEMENT | {"data_owner"} | PIPELINE
PROGRESS = MANAGEMENT | {"data_owner"} | PIPELINE
REGISTER = MANAGEMENT | {"data_owner"} | PIPELINE
ROUNDS = MANAGEMENT | {"data_owner"} | PIPELINE
STATISTICS = MANAGEMENT | {"reviewer"}
REVIEW = MANAGEMENT | {"reviewer"}
STAFF = MANAGEMENT | {"data_owner", "reviewer"}
READERS = frozenset({"junior", "senior", "reviewer", "admin"})
_counter = itertools.count()


@dataclass
class Call:
    """How to call one endpoint as one role: path params, body and query come from the world."""

    allowed: frozenset[str]
    path: Callable[[World, str], str]
    body: Callable[[World, str], Any] | None = None
    fresh_session: bool = False  # logout: use a throwaway session so the role's token survives


def _uniq(prefix: str) -> str:
    return f"{prefix}x{next(_counter):03d}"


def _task_for_junior(w: World) -> int:
    """A fresh task assigned to the junior on the item the junior already holds."""
    with w.client.app.state.factories.writer() as db, db.begin():
        t = Task(project_id=w.project_id, item_id=w.items[0], round=1, kind="annotate", status=TaskStatus.ASSIGNED.value,
                 assignee_id=w.users["junior"], assigned_at=utcnow())
        db.add(t)
        db.flush()
        return t.id


def _submitted_task_for_junior(w: World) -> int:
    """A fresh reading the junior submitted (one to reopen per call)."""
    with w.client.app.state.factories.writer() as db, db.begin():
        t = Task(project_id=w.project_id, item_id=w.items[0], round=1, kind="annotate", status=TaskStatus.SUBMITTED.value,
                 assignee_id=w.users["junior"], assigned_at=utcnow(), submitted_at=utcnow())
        db.add(t)
        db.flush()
        return t.id


def _fresh_membership(w: World) -> int:
    user = w.client.post("/api/users", headers=w.h("admin"), json={"username": _uniq("m"), "password": PASSWORD}).json()
    with w.client.app.state.factories.writer() as db, db.begin():
        m = Membership(project_id=w.project_id, user_id=user["id"], role="annotator", level="junior", competences=[])
        db.add(m)
        db.flush()
        return m.id


def _fresh_token(w: World) -> int:
    r = w.client.post("/api/service-tokens", headers=w.h("admin"), json={"name": _uniq("t"), "projects": [w.project_id]})
    return r.json()["id"]


def _fresh_round(w: World) -> int:
    r = w.client.post(f"/api/projects/{w.project_id}/rounds", headers=w.h("admin"), json={"name": _uniq("r")})
    return r.json()["round"]["number"]


def _fresh_user(w: World) -> int:
    return w.client.post("/api/users", headers=w.h("admin"), json={"username": _uniq("r"), "password": PASSWORD}).json()["id"]


def _fresh_invite(w: World) -> str:
    r = w.client.post(f"/api/projects/{w.project_id}/invites", headers=w.h("manager"), json={"role": "annotator"})
    return r.json()["token"]


PREDICTION = {"model": {"name": "chest", "version": "1.0.0"}, "probabilities": {"nodule": 0.8},
              "boxes": [{"label": "nodule", "x0": 2, "y0": 2, "x1": 20, "y1": 20, "score": 0.6}]}


def _predicted(w: World) -> str:
    """The junior's item, with suggestions stored (so GET answers with them, not an empty answer)."""
    w.client.put(f"/api/items/{w.items[0]}/predictions", headers=w.h("admin"), json=PREDICTION)
    return f"/api/items/{w.items[0]}"


P = lambda w, r: f"/api/projects/{w.project_id}"  # noqa: E731
ITEM = lambda w, r: f"/api/items/{w.items[0]}"  # noqa: E731

TABLE: dict[tuple[str, str], Call] = {
    ("GET", "/"): Call(PUBLIC, lambda w, r: "/"),
    ("GET", "/api/health"): Call(PUBLIC, lambda w, r: "/api/health"),
    ("GET", "/api/openapi.json"): Call(PUBLIC, lambda w, r: "/api/openapi.json"),
    ("GET", "/api/docs"): Call(PUBLIC, lambda w, r: "/api/docs"),
    ("POST", "/api/auth/login"): Call(PUBLIC, lambda w, r: "/api/auth/login",
                                      lambda w, r: {"username": "senior", "password": PASSWORD}),
    ("POST", "/api/auth/logout"): Call(ANY_USER, lambda w, r: "/api/auth/logout", fresh_session=True),
    ("GET", "/api/auth/me"): Call(ANY_USER, lambda w, r: "/api/auth/me"),
    ("GET", "/api/users"): Call(ADMIN, lambda w, r: "/api/users"),
    ("POST", "/api/users"): Call(ADMIN, lambda w, r: "/api/users",
                                 lambda w, r: {"username": _uniq("u"), "password": PASSWORD}),
    ("PATCH", "/api/users/{user_id}"): Call(ADMIN, lambda w, r: f"/api/users/{w.users['outsider']}",
                                            lambda w, r: {"display_name": "Dr Outside"}),
    ("POST", "/api/service-tokens"): Call(ADMIN, lambda w, r: "/api/service-tokens",
                                          lambda w, r: {"name": _uniq("t"), "projects": [w.project_id]}),
    ("GET", "/api/service-tokens"): Call(ADMIN, lambda w, r: "/api/service-tokens"),
    ("DELETE", "/api/service-tokens/{token_id}"): Call(ADMIN, lambda w, r: f"/api/service-tokens/{_fresh_token(w)}"),
    ("POST", "/api/projects/{project_id}/rounds"): Call(
        ROUNDS, lambda w, r: P(w, r) + "/rounds",
        lambda w, r: {"name": _uniq("r"), "readers_per_item": 2, "gold_share": 0.1,
                      "items": [{"external_id": _uniq("s"), "uris": w.extra_uris, "modality": "CT"}]}),
    ("GET", "/api/projects/{project_id}/rounds"): Call(PROGRESS, lambda w, r: P(w, r) + "/rounds"),
    ("GET", "/api/projects/{project_id}/rounds/{number}"): Call(PROGRESS, lambda w, r: P(w, r) + f"/rounds/{w.round}"),
    ("POST", "/api/projects/{project_id}/rounds/{number}/close"): Call(
        ROUNDS, lambda w, r: P(w, r) + f"/rounds/{_fresh_round(w)}/close"),
    ("GET", "/api/projects/{project_id}/export/quality"): Call(EXPORT, lambda w, r: P(w, r) + "/export/quality"),
    ("GET", "/api/projects"): Call(ANY_USER, lambda w, r: "/api/projects"),
    ("POST", "/api/projects"): Call(ADMIN, lambda w, r: "/api/projects", lambda w, r: {"name": _uniq("p")}),
    ("GET", "/api/projects/{project_id}"): Call(MEMBERS, P),
    ("PATCH", "/api/projects/{project_id}"): Call(MANAGEMENT, P, lambda w, r: {"description": "chest CT round"}),
    ("GET", "/api/projects/{project_id}/schema"): Call(MEMBERS, lambda w, r: P(w, r) + "/schema"),
    ("GET", "/api/projects/{project_id}/schema/versions"): Call(MEMBERS, lambda w, r: P(w, r) + "/schema/versions"),
    ("POST", "/api/projects/{project_id}/schema"): Call(
        MANAGEMENT, lambda w, r: P(w, r) + "/schema",
        lambda w, r: {"labels": [{"id": "nodule", "name": "Lung nodule", "kind": "boolean"},
                                 {"id": "lesion_box", "name": "Lesion box", "kind": "box"},
                                 {"id": "lesion_outline", "name": "Lesion outline", "kind": "freehand"},
                                 {"id": "effusion", "name": "Pleural effusion", "kind": "boolean"}]}),
    ("GET", "/api/projects/{project_id}/members"): Call(MANAGEMENT, lambda w, r: P(w, r) + "/members"),
    ("POST", "/api/projects/{project_id}/members"): Call(
        MANAGEMENT, lambda w, r: P(w, r) + "/members",
        lambda w, r: {"user_id": w.client.post("/api/users", headers=w.h("admin"),
                                               json={"username": _uniq("n"), "password": PASSWORD}).json()["id"],
                      "role": "annotator", "level": "junior"}),
    ("PATCH", "/api/projects/{project_id}/members/{member_id}"): Call(
        MANAGEMENT, lambda w, r: P(w, r) + f"/members/{_fresh_membership(w)}", lambda w, r: {"level": "senior"}),
    ("DELETE", "/api/projects/{project_id}/members/{member_id}"): Call(
        MANAGEMENT, lambda w, r: P(w, r) + f"/members/{_fresh_membership(w)}"),
    ("POST", "/api/projects/{project_id}/invites"): Call(MANAGEMENT, lambda w, r: P(w, r) + "/invites",
                                                         lambda w, r: {"role": "annotator", "level": "junior"}),
    ("GET", "/api/projects/{project_id}/invites"): Call(MANAGEMENT, lambda w, r: P(w, r) + "/invites"),
    ("GET", "/api/invites/{token}"): Call(PUBLIC, lambda w, r: f"/api/invites/{_fresh_invite(w)}"),
    ("POST", "/api/invites/{token}/accept"): Call(
        PUBLIC, lambda w, r: f"/api/invites/{_fresh_invite(w)}/accept",
        lambda w, r: {"username": _uniq("expert"), "password": PASSWORD}),
    ("POST", "/api/projects/{project_id}/items"): Call(
        REGISTER, lambda w, r: P(w, r) + "/items",
        lambda w, r: {"items": [{"external_id": _uniq("s"), "uris": w.extra_uris, "modality": "CT"}]}),
    ("GET", "/api/projects/{project_id}/items"): Call(STAFF, lambda w, r: P(w, r) + "/items"),
    ("GET", "/api/items/{item_id}"): Call(STAFF | {"junior"}, ITEM),
    ("GET", "/api/items/{item_id}/instances/{position}/file"): Call(STAFF | {"junior"}, lambda w, r: ITEM(w, r) + "/instances/0/file"),
    ("GET", "/api/items/{item_id}/instances/{position}/frames/{frame}"): Call(
        STAFF | {"junior"}, lambda w, r: ITEM(w, r) + "/instances/0/frames/0"),
    ("PUT", "/api/items/{item_id}/gold"): Call(MANAGEMENT, lambda w, r: f"/api/items/{w.items[3]}/gold",
                                               lambda w, r: {"is_gold": True}),
    ("POST", "/api/tasks/next"): Call(READERS, lambda w, r: f"/api/tasks/next?project_id={w.project_id}"),
    ("GET", "/api/tasks"): Call(ANY_USER, lambda w, r: "/api/tasks"),
    ("GET", "/api/tasks/{task_id}"): Call(REVIEW | {"junior"}, lambda w, r: f"/api/tasks/{w.junior_task}"),
    ("POST", "/api/tasks/{task_id}/loaded"): Call(frozenset({"junior"}), lambda w, r: f"/api/tasks/{_task_for_junior(w)}/loaded"),
    ("POST", "/api/tasks/{task_id}/submit"): Call(frozenset({"junior"}), lambda w, r: f"/api/tasks/{_task_for_junior(w)}/submit",
                                                  lambda w, r: reading()),
    ("POST", "/api/tasks/{task_id}/skip"): Call(frozenset({"junior"}), lambda w, r: f"/api/tasks/{_task_for_junior(w)}/skip",
                                                lambda w, r: {"reason": "not diagnostic"}),
    # only the task's own reader, not its project's management nor a site admin
    ("POST", "/api/tasks/{task_id}/reopen"): Call(frozenset({"junior"}),
                                                  lambda w, r: f"/api/tasks/{_submitted_task_for_junior(w)}/reopen"),
    ("GET", "/api/items/{item_id}/review"): Call(REVIEW, lambda w, r: ITEM(w, r) + "/review"),
    ("GET", "/api/projects/{project_id}/statistics"): Call(STATISTICS, lambda w, r: P(w, r) + "/statistics"),
    ("GET", "/api/projects/{project_id}/progress"): Call(PROGRESS, lambda w, r: P(w, r) + "/progress"),
    ("GET", "/api/projects/{project_id}/completion"): Call(PROGRESS, lambda w, r: P(w, r) + "/completion"),
    ("GET", "/api/projects/{project_id}/export/csv"): Call(EXPORT, lambda w, r: P(w, r) + "/export/csv"),
    ("GET", "/api/projects/{project_id}/export/json"): Call(EXPORT, lambda w, r: P(w, r) + "/export/json"),
    ("GET", "/api/projects/{project_id}/export/sr"): Call(EXPORT, lambda w, r: P(w, r) + "/export/sr"),
    ("GET", "/api/projects/{project_id}/export/seg"): Call(EXPORT, lambda w, r: P(w, r) + "/export/seg"),
    # the manager's and the site admin's pages (issue 17)
    ("GET", "/api/project-templates"): Call(ANY_USER, lambda w, r: "/api/project-templates"),
    ("POST", "/api/project-templates/{template_id}/projects"): Call(
        ADMIN, lambda w, r: "/api/project-templates/ct_nodule_boxes/projects", lambda w, r: {"name": _uniq("p")}),
    ("GET", "/api/projects/{project_id}/coverage"): Call(PROGRESS, lambda w, r: P(w, r) + "/coverage"),
    ("GET", "/api/admin/users"): Call(ADMIN, lambda w, r: "/api/admin/users"),
    ("POST", "/api/admin/users/{user_id}/reset-password"): Call(
        ADMIN, lambda w, r: f"/api/admin/users/{_fresh_user(w)}/reset-password"),
    ("GET", "/api/admin/logins"): Call(ADMIN, lambda w, r: "/api/admin/logins"),
    # model suggestions (issue 18): stored by the pipeline or a manager, read by whoever may see the item
    ("PUT", "/api/items/{item_id}/predictions"): Call(MANAGEMENT | PIPELINE, lambda w, r: ITEM(w, r) + "/predictions",
                                                      lambda w, r: PREDICTION),
    ("GET", "/api/items/{item_id}/predictions"): Call(STAFF | {"junior"} | PIPELINE, lambda w, r: _predicted(w) + "/predictions"),
    ("POST", "/api/tasks/{task_id}/unaided"): Call(  # 409 for its reader: the project is not blind first
        frozenset({"junior"}), lambda w, r: f"/api/tasks/{_task_for_junior(w)}/unaided",
        lambda w, r: {"labels": [{"label": "nodule", "value": True, "confidence": 80}]}),
}


def app_endpoints(app) -> set[tuple[str, str]]:
    out = set()
    for route in app.routes:
        methods = getattr(route, "methods", None) or set()
        path = getattr(route, "path", "")
        if not isinstance(route, APIRoute) and path.startswith("/assets"):
            continue
        for m in methods - {"HEAD"}:
            out.add((m, path))
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, store_root: Path):
    url = f"sqlite:///{tmp_path_factory.mktemp('perm') / 'perm.db'}"
    with make_client(url) as client:
        w = build_world(client, url, store_root, readers=2, verification=0, n_items=4)
        w.extra_uris = series_uris(store_root, 5)
        junior = client.post(f"/api/tasks/next?project_id={w.project_id}", headers=w.h("junior")).json()["task"]
        assert junior["item"]["id"] == w.items[0]
        client.post(f"/api/tasks/{junior['id']}/submit", headers=w.h("junior"), json=reading())
        w.junior_task = junior["id"]
        w.round = ok(client.post(f"/api/projects/{w.project_id}/rounds", headers=w.h("admin"),
                                 json={"name": "round-a"}), 201)["round"]["number"]
        token = ok(client.post("/api/service-tokens", headers=w.h("admin"),
                               json={"name": "pipeline", "projects": [w.project_id], "roles": ["pipeline"]}), 201)
        w.tokens["pipeline"] = token["token"]
        yield w


def test_every_endpoint_is_in_the_table(world: World) -> None:
    missing = app_endpoints(world.client.app) - set(TABLE)
    assert not missing, f"endpoints without an authorization entry: {sorted(missing)}"
    stale = set(TABLE) - app_endpoints(world.client.app)
    assert not stale, f"table entries for endpoints that no longer exist: {sorted(stale)}"


@pytest.mark.parametrize("endpoint", sorted(TABLE), ids=lambda e: f"{e[0]} {e[1]}")
def test_endpoint_against_every_role(world: World, endpoint: tuple[str, str]) -> None:
    method, _ = endpoint
    call = TABLE[endpoint]
    wrong = []
    for caller in CALLERS:
        headers = world.h(caller)
        if call.fresh_session and caller not in ("anonymous", "pipeline"):  # a service token has no session to end
            headers = {"Authorization": f"Bearer {world.login(caller)}"}
        body = call.body(world, caller) if call.body else None
        world.client.cookies.clear()  # the test client keeps login cookies; each call shows only its own token
        r = world.client.request(method, call.path(world, caller), headers=headers, json=body)
        if r.status_code >= 500:
            wrong.append(f"{caller}: server error {r.status_code}")
        elif caller in call.allowed and r.status_code in (401, 403):
            wrong.append(f"{caller}: refused ({r.status_code}) but the table allows it")
        elif caller not in call.allowed:
            expected = 401 if caller == "anonymous" else 403
            if r.status_code != expected:
                wrong.append(f"{caller}: got {r.status_code}, expected {expected}")
        elif r.status_code >= 400 and r.status_code not in (409,):
            wrong.append(f"{caller}: allowed but failed {r.status_code} {r.text[:200]}")
    assert not wrong, f"{method} {endpoint[1]}:\n  " + "\n  ".join(wrong)
