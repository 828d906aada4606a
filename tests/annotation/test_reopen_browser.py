"""Issue 17, point 7 in the browser: the reader reopens a submitted case from their task list, the
viewer shows what was submitted (labels, comment, regions where they were drawn), the reader changes
it and submits; the manager's review then holds the new reading and the replaced one. Screenshots in
test-artifacts/annotation-manager/reopen/."""
from __future__ import annotations

from pathlib import Path

import pytest

from annotation.admin import create_admin
from tests.annotation import dicomgen
from tests.annotation.test_manager import PASSWORD, Api, artifacts, launch, require_browser_stack, sign_in
from tests.annotation.world import SCHEMA

pytestmark = [pytest.mark.server, pytest.mark.slow]
BOX = [[100.0, 90.0], [150.0, 140.0]]


def test_reader_reopens_changes_and_the_manager_sees_both(live_server_factory, tmp_path: Path) -> None:
    require_browser_stack()
    from playwright.sync_api import expect, sync_playwright

    store = tmp_path / "store"
    cases = [dicomgen.write_series(store / "deid" / f"r{n}", 2, rows=256, cols=256, seed=40 + n) for n in range(2)]
    server = live_server_factory(env={"ANNOTATION_STORE_URI": str(store)})
    create_admin(server.database_url, "admin", PASSWORD)
    api = Api(server.url)
    admin = api.auth("admin")
    pid = api.client.post("/api/projects", headers=admin, json={"name": "reopen", "readers_per_item": 1, "schema": SCHEMA}).json()["id"]
    uid = api.user(admin, "expert")
    assert api.client.post(f"/api/projects/{pid}/members", headers=admin, json={"user_id": uid, "role": "annotator"}).status_code == 201
    r = api.client.post(f"/api/projects/{pid}/items", headers=admin, json={"items": [
        {"external_id": f"case-{n}", "uris": [p.as_uri() for p in paths], "modality": "CT"} for n, paths in enumerate(cases)]})
    assert r.status_code == 201, r.text
    expert = api.auth("expert")
    task = api.client.post(f"/api/tasks/next?project_id={pid}", headers=expert).json()["task"]
    r = api.client.post(f"/api/tasks/{task['id']}/submit", headers=expert, json={
        "labels": [{"label": "nodule", "value": True, "confidence": 80}, {"label": "effusion", "value": False, "confidence": 60}],
        "rois": [{"label": "lesion_box", "kind": "box", "instance": 1, "frame": 0, "points": BOX}],
        "comment": "first look", "active_ms": 9000, "idle_ms": 0})
    assert r.status_code == 200, r.text
    shots = artifacts("reopen")
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 720}).new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: m.type == "error" and "Failed to load resource" not in m.text and errors.append(m.text))
            sign_in(page, server.url, "expert")
            button = page.get_by_test_id(f"reopen-{task['id']}")
            expect(button).to_be_visible()
            page.screenshot(path=str(shots / "1-task-list-with-reopen.png"))
            button.click()
            try:
                page.wait_for_selector("[data-testid=viewport][data-loaded=true][data-reopened=true]", timeout=60_000)
            except Exception:
                page.screenshot(path=str(shots / "failed-reopen.png"))
                raise AssertionError(f"reopened case not shown: {errors}") from None
            # what was submitted is back: labels, comment, the box on the second slice
            expect(page.get_by_test_id("label-nodule-yes")).to_have_class("yn on")
            expect(page.get_by_test_id("label-effusion-conf-60")).to_have_class("conf on")
            expect(page.get_by_test_id("comment")).to_have_value("first look")
            expect(page.get_by_test_id("roi-item")).to_have_count(1)
            expect(page.get_by_test_id("roi-goto-0")).to_contain_text("image 2")
            page.get_by_test_id("roi-goto-0").click()
            page.screenshot(path=str(shots / "2-reopened-reading.png"))
            page.get_by_test_id("label-nodule-no").click()
            page.get_by_test_id("label-nodule-conf-100").click()
            page.get_by_test_id("comment").fill("second look: no nodule")
            page.get_by_test_id("submit").click()
            # on to the next case, which no longer offers the reopened one again
            page.wait_for_selector("[data-testid=viewport][data-loaded=true]:not([data-reopened])", timeout=60_000)
            page.screenshot(path=str(shots / "3-next-case-after-resubmit.png"))
            page.evaluate("location.hash = '#/tasks'")
            expect(page.get_by_test_id(f"reopen-{task['id']}")).to_be_visible()  # still reopenable: the round is open
            page.screenshot(path=str(shots / "4-task-list-after.png"))
        finally:
            browser.close()
    assert not errors, errors
    review = api.client.get(f"/api/items/{task['item']['id']}/review", headers=admin).json()
    reading = next(x for x in review["readings"] if x["task_id"] == task["id"])
    assert {lv["label"]: (lv["value"], lv["confidence"]) for lv in reading["labels"]} == {"nodule": (False, 100), "effusion": (False, 60)}
    assert reading["rois"] and reading["rois"][0]["instance"] == 1  # the restored box went in again, where it was drawn
    for got, want in zip(sum(reading["rois"][0]["points"], []), sum(BOX, [])):
        assert abs(got - want) < 0.01, reading["rois"][0]["points"]
    [old] = reading["revisions"]
    assert old["comment"] == "first look" and old["labels"][0] == {"label": "nodule", "value": True, "confidence": 80}
