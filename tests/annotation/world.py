"""A project with one user per role, built through the REST API (what the pipeline and a manager do)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from annotation.admin import create_admin
from tests.annotation.conftest import series_uris

PASSWORD = "correct-horse-battery"
SCHEMA = {
    "instructions": "Read the chest CT.",
    "labels": [
        {"id": "nodule", "name": "Lung nodule", "kind": "boolean", "instructions": "Any nodule over 4 mm."},
        {"id": "effusion", "name": "Pleural effusion", "kind": "boolean"},
        {"id": "lesion_box", "name": "Lesion box", "kind": "box", "color": "#ff0000"},
        {"id": "lesion_outline", "name": "Lesion outline", "kind": "freehand", "color": "#00ff00"},
    ],
}
ROLES = ["owner", "manager", "data_owner", "junior", "senior", "reviewer"]


@dataclass
class World:
    client: Any
    database_url: str
    project_id: int
    other_project_id: int
    users: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    items: list[int] = field(default_factory=list)

    def h(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"} if who in self.tokens else {}

    def login(self, who: str) -> str:
        r = self.client.post("/api/auth/login", json={"username": who, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return r.json()["token"]


def ok(r: httpx.Response, code: int = 200) -> Any:
    assert r.status_code == code, f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:500]}"
    return r.json() if r.content and r.headers.get("content-type", "").startswith("application/json") else r


def build_world(client: Any, database_url: str, store_root: Path, *, readers: int = 2, verification: int = 1,
                n_items: int = 4) -> World:
    create_admin(database_url, "admin", PASSWORD)
    w = World(client=client, database_url=database_url, project_id=0, other_project_id=0)
    w.tokens["admin"] = w.login("admin")
    admin = w.h("admin")
    p = ok(client.post("/api/projects", headers=admin, json={
        "name": "chest-ct", "readers_per_item": readers, "verification_levels": verification, "schema": SCHEMA}), 201)
    q = ok(client.post("/api/projects", headers=admin, json={"name": "other", "schema": SCHEMA}), 201)
    w.project_id, w.other_project_id = p["id"], q["id"]
    for name in ROLES + ["outsider"]:
        u = ok(client.post("/api/users", headers=admin, json={"username": name, "password": PASSWORD}), 201)
        w.users[name] = u["id"]
    members = [("owner", "owner", None), ("manager", "manager", None), ("data_owner", "data_owner", None),
               ("junior", "annotator", "junior"), ("senior", "annotator", "senior"), ("reviewer", "reviewer", None)]
    for name, role, level in members:
        ok(client.post(f"/api/projects/{w.project_id}/members", headers=admin,
                       json={"user_id": w.users[name], "role": role, "level": level}), 201)
    ok(client.post(f"/api/projects/{w.other_project_id}/members", headers=admin,
                   json={"user_id": w.users["outsider"], "role": "owner"}), 201)
    for name in ROLES + ["outsider"]:
        w.tokens[name] = w.login(name)
    items = [{"external_id": f"series-{n}", "uris": series_uris(store_root, n), "modality": "CT", "body_part": "CHEST",
              "context": {"age_bracket": "60-69", "sex": "F", "comorbidities": ["COPD"],
                          "report_text": "Small nodule right upper lobe."}} for n in range(n_items)]
    reg = ok(client.post(f"/api/projects/{w.project_id}/items", headers=w.h("data_owner"), json={"items": items}), 201)
    w.items = reg["created"]
    return w


def reading(label_values: dict[str, tuple[bool, int]] | None = None, box: bool = True) -> dict[str, Any]:
    labels = [{"label": k, "value": v, "confidence": c} for k, (v, c) in (label_values or {"nodule": (True, 80)}).items()]
    rois = [{"label": "lesion_box", "kind": "box", "instance": 0, "frame": 0, "points": [[10, 12], [30, 28]]},
            {"label": "lesion_outline", "kind": "freehand", "instance": 1, "frame": 0,
             "points": [[20, 20], [40, 22], [38, 40], [22, 38]]}] if box else []
    return {"labels": labels, "rois": rois, "active_ms": 4000, "idle_ms": 500, "label_ms": {"nodule": 1200}}
