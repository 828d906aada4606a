"""Readings mean something: required labels are required (an empty or half-answered reading is refused
with an error naming each missing label, in the API and in the viewer), and "N left" counts the
reader's own open readings, not the project's open slots. Browser steps in headless Chromium with
screenshots in test-artifacts/annotation/readings/."""
from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from annotation.admin import create_admin
from tests.annotation import dicomgen
from tests.annotation.conftest import ROOT
from tests.annotation.test_browser import _login, _require_browser_stack, launch, watched_page

ARTIFACTS = ROOT / "test-artifacts" / "annotation" / "readings"
PASSWORD = "correct-horse-battery"
SCHEMA = {
    "instructions": "Chest CT.",
    "labels": [
        {"id": "nodule", "name": "Lung nodule", "kind": "boolean", "required": True},
        {"id": "effusion", "name": "Pleural effusion", "kind": "boolean"},
        {"id": "lesion_box", "name": "Lesion box", "kind": "box", "color": "#ff3333", "required": True},
        {"id": "outline", "name": "Lesion outline", "kind": "freehand", "color": "#33ff66"},
    ],
}
BOX = {"label": "lesion_box", "kind": "box", "instance": 0, "frame": 0, "points": [[4, 4], [20, 20]]}

pytestmark = [pytest.mark.server, pytest.mark.slow]


def _world(server, store: Path, schema: dict, n_ct: int = 6, n_mr: int = 2, k: int = 3) -> dict:
    """A project with n_ct CT and n_mr MR items read by k readers each; 'ann' reads CT only."""
    create_admin(server.database_url, "admin", PASSWORD)
    c = httpx.Client(base_url=server.url, timeout=60)
    tok = lambda u: c.post("/api/auth/login", json={"username": u, "password": PASSWORD}).json()["token"]  # noqa: E731
    admin = {"Authorization": f"Bearer {tok('admin')}"}
    pid = c.post("/api/projects", headers=admin, json={"name": "readings", "readers_per_item": k, "schema": schema}).json()["id"]
    users = {}
    for name, competences in [("ann", [{"modality": "CT"}]), ("bob", [])]:
        users[name] = c.post("/api/users", headers=admin, json={"username": name, "password": PASSWORD}).json()["id"]
        r = c.post(f"/api/projects/{pid}/members", headers=admin,
                   json={"user_id": users[name], "role": "annotator", "level": "junior", "competences": competences})
        assert r.status_code == 201, r.text
    items = []
    for n in range(n_ct + n_mr):
        paths = dicomgen.write_series(store / "deid" / f"r{n}", 1, rows=32, cols=32, seed=n)
        items.append({"external_id": f"case-{n}", "uris": [p.as_uri() for p in paths],
                      "modality": "CT" if n < n_ct else "MR", "body_part": "CHEST"})
    if items:
        r = c.post(f"/api/projects/{pid}/items", headers=admin, json={"items": items})
        assert r.status_code == 201, r.text
    return {"c": c, "pid": pid, "h": {u: {"Authorization": f"Bearer {tok(u)}"} for u in ("ann", "bob")}}


def test_required_labels_are_required_and_named(live_server_factory, tmp_path: Path) -> None:
    server = live_server_factory()
    w = _world(server, tmp_path / "store", SCHEMA)
    c, pid, ann = w["c"], w["pid"], w["h"]["ann"]
    task = c.post(f"/api/tasks/next?project_id={pid}", headers=ann).json()["task"]
    submit = lambda body: c.post(f"/api/tasks/{task['id']}/submit", headers=ann, json=body)  # noqa: E731
    r = submit({})
    assert r.status_code == 422 and "'Lung nodule' (nodule)" in r.text and "'Lesion box' (lesion_box)" in r.text, r.text
    r = submit({"labels": [{"label": "effusion", "value": True, "confidence": 80}]})  # half answered
    assert r.status_code == 422 and "nodule" in r.text and "lesion_box" in r.text and "effusion" not in r.text, r.text
    r = submit({"labels": [{"label": "nodule", "value": False, "confidence": 60}]})
    assert r.status_code == 422 and "lesion_box" in r.text and "'Lung nodule'" not in r.text, r.text
    assert c.get(f"/api/tasks/{task['id']}", headers=ann).json()["status"] == "assigned"  # nothing recorded
    r = submit({"labels": [{"label": "nodule", "value": False, "confidence": 60}], "rois": [BOX]})
    assert r.status_code == 200, r.text

    # a schema without required labels still refuses a reading that answers nothing
    schema = {"labels": [lab | {"required": False} for lab in SCHEMA["labels"]]}
    server2 = live_server_factory()
    w2 = _world(server2, tmp_path / "store2", schema)
    t2 = w2["c"].post(f"/api/tasks/next?project_id={w2['pid']}", headers=w2["h"]["ann"]).json()["task"]
    r = w2["c"].post(f"/api/tasks/{t2['id']}/submit", headers=w2["h"]["ann"], json={"labels": [], "rois": []})
    assert r.status_code == 422 and "empty reading" in r.text and "Lung nodule" in r.text, r.text
    r = w2["c"].post(f"/api/tasks/{t2['id']}/submit", headers=w2["h"]["ann"], json={"rois": [BOX]})  # a region is an answer
    assert r.status_code == 200, r.text


def test_n_left_counts_the_readers_own_open_readings(live_server_factory, tmp_path: Path) -> None:
    """6 CT and 2 MR items, 3 readers each (24 open slots): 'ann' reads CT only, so with one case in
    hand 5 are left for her; after a submission 4; 'bob' (any modality) has 7 left with one in hand."""
    server = live_server_factory()
    w = _world(server, tmp_path / "store", SCHEMA)
    c, pid = w["c"], w["pid"]
    first = c.post(f"/api/tasks/next?project_id={pid}", headers=w["h"]["ann"]).json()
    assert first["remaining"] == 5, first["remaining"]
    assert c.post(f"/api/tasks/next?project_id={pid}", headers=w["h"]["bob"]).json()["remaining"] == 7
    r = c.post(f"/api/tasks/{first['task']['id']}/submit", headers=w["h"]["ann"],
               json={"labels": [{"label": "nodule", "value": True, "confidence": 80}], "rois": [BOX]})
    assert r.status_code == 200, r.text
    second = c.post(f"/api/tasks/next?project_id={pid}", headers=w["h"]["ann"]).json()
    assert second["remaining"] == 4
    mine = {p["project_id"]: p for p in c.get("/api/tasks", headers=w["h"]["ann"]).json()["progress"]}
    assert mine[pid]["open_for_me"] == 4


def test_viewer_names_missing_labels_and_shows_own_count(live_server_factory, tmp_path: Path) -> None:
    _require_browser_stack()
    from playwright.sync_api import expect, sync_playwright

    server = live_server_factory()
    w = _world(server, tmp_path / "store", SCHEMA)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page, errors = watched_page(browser)
            _login(page, server.url, "ann")
            page.goto(f"{server.url}/#/task?project={w['pid']}")
            page.wait_for_selector("[data-testid=viewport][data-loaded=true]", timeout=60000)
            expect(page.get_by_test_id("remaining")).to_have_text(" · 5 left")
            task_id = page.get_by_test_id("task-id").text_content()
            page.get_by_test_id("submit").click()  # nothing answered
            toast = page.locator("#toast")
            expect(toast).to_contain_text("Required: Lung nodule, Lesion box")
            expect(page.get_by_test_id("label-nodule")).to_have_class("label-row missing")
            page.screenshot(path=ARTIFACTS / "01-empty-refused.png")
            page.get_by_test_id("label-effusion-yes").click()  # half answered: no confidence
            page.get_by_test_id("submit").click()
            expect(toast).to_contain_text("Pleural effusion (confidence missing)")
            expect(page.get_by_test_id("task-id")).to_have_text(task_id)
            page.get_by_test_id("label-effusion-conf-60").click()
            page.get_by_test_id("label-nodule-no").click()
            page.get_by_test_id("label-nodule-conf-80").click()
            page.get_by_test_id("submit").click()
            expect(toast).to_contain_text("Required: Lesion box")
            page.screenshot(path=ARTIFACTS / "02-half-refused.png")
            vp = page.get_by_test_id("viewport").bounding_box()
            page.get_by_test_id("roi-lesion_box").click()
            x, y = vp["x"] + vp["width"] / 2, vp["y"] + vp["height"] / 2
            page.mouse.move(x - 40, y - 40)
            page.mouse.down()
            page.mouse.move(x + 20, y + 20, steps=6)
            page.mouse.up()
            expect(page.get_by_test_id("roi-item")).to_have_count(1)
            page.get_by_test_id("submit").click()
            expect(page.get_by_test_id("task-id")).not_to_have_text(task_id, timeout=30000)
            page.wait_for_selector("[data-testid=viewport][data-loaded=true]", timeout=60000)
            expect(page.get_by_test_id("remaining")).to_have_text(" · 4 left")
            page.screenshot(path=ARTIFACTS / "03-next-case.png")
            assert not errors, errors
        finally:
            browser.close()


def test_regions_in_label_colour_with_name_stats_toggle_and_jump(live_server_factory, tmp_path: Path) -> None:
    """A box drawn on the second slice is stroked in its label's colour and named; its statistics
    show the area (compact, the default), all of them, or none; its region-list entry brings the
    viewer back to its slice."""
    _require_browser_stack()
    from playwright.sync_api import expect, sync_playwright

    server = live_server_factory()
    w = _world(server, tmp_path / "store", SCHEMA, n_ct=0, n_mr=0, k=1)
    paths = dicomgen.write_series(tmp_path / "store" / "deid" / "three", 3, rows=128, cols=128, seed=7)
    admin = {"Authorization": "Bearer " + w["c"].post("/api/auth/login", json={"username": "admin", "password": PASSWORD}).json()["token"]}
    r = w["c"].post(f"/api/projects/{w['pid']}/items", headers=admin, json={"items": [
        {"external_id": "three-slices", "uris": [p.as_uri() for p in paths], "modality": "CT"}]})
    assert r.status_code == 201, r.text
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page, errors = watched_page(browser)
            _login(page, server.url, "ann")
            page.goto(f"{server.url}/#/task?project={w['pid']}")
            page.wait_for_selector("[data-testid=viewport][data-loaded=true]", timeout=60000)
            page.get_by_test_id("slice-next").click()
            expect(page.get_by_test_id("slice")).to_have_attribute("data-index", "1")
            vp = page.get_by_test_id("viewport").bounding_box()
            page.get_by_test_id("roi-lesion_box").click()
            x, y = vp["x"] + vp["width"] / 2, vp["y"] + vp["height"] / 2
            page.mouse.move(x - 60, y - 60)
            page.mouse.down()
            page.mouse.move(x + 40, y + 30, steps=6)
            page.mouse.up()
            expect(page.get_by_test_id("roi-item")).to_have_count(1)
            svg = page.locator("[data-testid=viewport] svg")
            rect = svg.locator("rect[stroke]").first
            expect(rect).to_have_attribute("stroke", "#ff3333")
            text = lambda: " ".join(svg.locator("text").all_text_contents())  # noqa: E731
            page.get_by_test_id("tool-W/L").click()  # deselect drawing; the box stays
            expect(svg.locator("text").first).to_contain_text("Lesion box")
            assert "Area" in text() and "Mean" not in text(), text()  # compact by default
            page.screenshot(path=ARTIFACTS / "04-box-compact.png")
            page.get_by_test_id("stats-toggle").click()
            expect(page.get_by_test_id("stats-toggle")).to_have_attribute("data-mode", "full")
            page.wait_for_function("() => [...document.querySelectorAll('[data-testid=viewport] svg text')].some(t => t.textContent.includes('Mean'))")
            page.screenshot(path=ARTIFACTS / "05-box-full-stats.png")
            page.get_by_test_id("stats-toggle").click()
            page.wait_for_function("() => ![...document.querySelectorAll('[data-testid=viewport] svg text')].some(t => t.textContent.includes('Area'))")
            assert "Lesion box" in text(), text()
            page.screenshot(path=ARTIFACTS / "06-box-stats-off.png")
            page.get_by_test_id("slice-prev").click()
            expect(page.get_by_test_id("slice")).to_have_attribute("data-index", "0")
            expect(page.get_by_test_id("roi-item")).to_contain_text("image 2")
            page.get_by_test_id("roi-goto-0").click()
            expect(page.get_by_test_id("slice")).to_have_attribute("data-index", "1")
            assert not errors, errors
        finally:
            browser.close()
