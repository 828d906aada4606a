"""The AI panel in headless Chromium (issue 18): blind first hides the model until every label is
answered, then shows probabilities, a heatmap whose opacity changes the overlay's pixels, and a
suggested box the reader edits by dragging a corner; the submitted reading records both answers.
Where the schema has a box label for the finding, accepted and edited boxes are the reading's regions."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import httpx
import numpy as np
import pytest

from annotation.admin import create_admin
from tests.annotation import dicomgen
from tests.annotation.test_ai_predictions import png_b64
from tests.annotation.test_browser import ARTIFACTS, PASSWORD, _login, _require_browser_stack, launch, watched_page

pytestmark = [pytest.mark.server, pytest.mark.slow]
SCHEMA = {"labels": [{"id": "nodule", "name": "Lung nodule", "kind": "boolean", "color": "#ff0000"},
                     {"id": "effusion", "name": "Pleural effusion", "kind": "boolean", "color": "#00aaff"}]}
OUTLINED = {"labels": [*SCHEMA["labels"], {"id": "nodule_box", "name": "Nodule region", "kind": "box", "color": "#ff0000"}]}


def _project_with_predictions(live_server_factory, tmp_path: Path, settings: dict,
                              schema: dict = SCHEMA) -> tuple[httpx.Client, dict, int, int]:
    """A live service with one project (`settings`), its reader and one 256x256 image with the model's
    suggestions: a heatmap hot at image rows/cols 64-128 and two nodule boxes."""
    server = live_server_factory()
    create_admin(server.database_url, "admin", PASSWORD)
    c = httpx.Client(base_url=server.url, timeout=30)
    admin = {"Authorization": f"Bearer {c.post('/api/auth/login', json={'username': 'admin', 'password': PASSWORD}).json()['token']}"}
    pid = c.post("/api/projects", headers=admin, json={"name": "chest-ai", "schema": schema, **settings}).json()["id"]
    uid = c.post("/api/users", headers=admin, json={"username": "reader", "password": PASSWORD}).json()["id"]
    assert c.post(f"/api/projects/{pid}/members", headers=admin, json={"user_id": uid, "role": "annotator"}).status_code == 201
    paths = dicomgen.write_series(tmp_path / "store" / "deid" / "cxr", 1, rows=256, cols=256, seed=3)
    item = c.post(f"/api/projects/{pid}/items", headers=admin, json={"items": [
        {"external_id": "cxr-1", "uris": [p.as_uri() for p in paths], "modality": "CT"}]}).json()["created"][0]
    heat = np.zeros((64, 64))
    heat[16:32, 16:32] = 1.0  # image rows/cols 64-128 of 256: the top-left quarter's centre
    r = c.put(f"/api/items/{item}/predictions", headers=admin, json={
        "model": {"name": "chest", "version": "1.0.0"}, "probabilities": {"nodule": 0.83, "effusion": 0.04},
        "heatmaps": [{"label": "nodule", "png_base64": png_b64(heat), "rows": 256, "cols": 256}],
        "boxes": [{"label": "nodule", "x0": 150, "y0": 150, "x1": 200, "y1": 200, "score": 0.7},
                  {"label": "nodule", "x0": 20, "y0": 180, "x1": 60, "y1": 220, "score": 0.3}]})
    assert r.status_code == 200, r.text
    return c, admin, pid, item


def _reader_on_first_task(browser, c: httpx.Client):
    """The reader logged in, on the first case with its image loaded; and the page's error list."""
    page, errors = watched_page(browser)
    _login(page, str(c.base_url).rstrip("/"), "reader")
    page.get_by_test_id("next-task").click()
    page.wait_for_selector("[data-testid=viewport][data-loaded=true]", timeout=60000)
    return page, errors


def _overlay_alpha(page, fx: float, fy: float) -> int:
    """Alpha of the overlay canvas at a fraction (fx, fy) of the image's displayed extent."""
    return page.evaluate("""([fx, fy]) => {
        const c = document.querySelector('[data-testid=ai-overlay]');
        const v = document.querySelector('[data-testid=viewport] canvas');
        const cr = c.getBoundingClientRect(), vr = v.getBoundingClientRect();
        const side = Math.min(vr.width, vr.height);  // square image, fitted and centred
        const x = vr.left - cr.left + (vr.width - side) / 2 + fx * side;
        const y = vr.top - cr.top + (vr.height - side) / 2 + fy * side;
        const d = window.devicePixelRatio || 1;
        return c.getContext('2d').getImageData(Math.round(x * d), Math.round(y * d), 1, 1).data[3];
    }""", [fx, fy])


def _submit_case(page, errors: list, screenshot: str) -> None:
    """Screenshot, Submit, and the reader's queue is empty without a page error."""
    page.screenshot(path=ARTIFACTS / screenshot)
    page.get_by_test_id("submit").click()
    page.get_by_test_id("no-task").wait_for(timeout=30000)
    assert not errors, errors


def _drag_corner(page, start: tuple[float, float], end: tuple[float, float]) -> None:
    """Drags with the mouse from one image pixel to another (256x256 image, fitted and centred)."""
    vr = page.get_by_test_id("viewport").locator("canvas").first.bounding_box()
    side = min(vr["width"], vr["height"])
    left, top = vr["x"] + (vr["width"] - side) / 2, vr["y"] + (vr["height"] - side) / 2
    px = lambda ix, iy: (left + ix * side / 256, top + iy * side / 256)  # noqa: E731
    page.mouse.move(*px(*start))
    page.mouse.down()
    page.mouse.move(*px(*end), steps=8)
    page.mouse.up()


def test_blind_first_reveal_heatmap_opacity_and_box_edit(live_server_factory, tmp_path: Path) -> None:
    _require_browser_stack()
    from playwright.sync_api import expect, sync_playwright

    c, admin, pid, item = _project_with_predictions(live_server_factory, tmp_path, {"blind_first": True})
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page, errors = _reader_on_first_task(browser, c)
            # blind first: nothing of the model until every label is answered
            expect(page.get_by_test_id("ai-hidden")).to_be_visible()
            expect(page.get_by_test_id("ai-prob-nodule")).to_have_count(0)
            expect(page.get_by_test_id("ai-reveal")).to_be_disabled()
            page.get_by_test_id("label-nodule-no").click()
            page.get_by_test_id("label-nodule-conf-60").click()
            expect(page.get_by_test_id("ai-reveal")).to_be_disabled()
            page.get_by_test_id("label-effusion-no").click()
            page.get_by_test_id("label-effusion-conf-80").click()
            page.screenshot(path=ARTIFACTS / "ai-01-blind-first-hidden.png")
            page.get_by_test_id("ai-reveal").click()
            expect(page.get_by_test_id("ai-prob-nodule")).to_have_text("83%")
            expect(page.get_by_test_id("ai-prob-effusion")).to_have_text("4%")
            expect(page.get_by_test_id("ai-model")).to_contain_text("chest 1.0.0")
            page.screenshot(path=ARTIFACTS / "ai-02-panel-revealed.png")

            # heatmap: off -> nothing drawn; on at two opacities -> more alpha at the higher one, none where cold
            assert _overlay_alpha(page, 0.375, 0.375) == 0
            page.get_by_test_id("ai-heat-nodule").check()
            page.get_by_test_id("ai-opacity-nodule").fill("30")
            low = _overlay_alpha(page, 0.375, 0.375)
            page.screenshot(path=ARTIFACTS / "ai-03-heatmap-30.png")
            page.get_by_test_id("ai-opacity-nodule").fill("90")
            high = _overlay_alpha(page, 0.375, 0.375)
            page.screenshot(path=ARTIFACTS / "ai-04-heatmap-90.png")
            assert 60 < low < 100 and 210 < high <= 235, (low, high)  # 255 * 0.3 and 255 * 0.9
            assert _overlay_alpha(page, 0.9, 0.1) == 0  # cold corner: transparent at any opacity
            page.get_by_test_id("ai-heat-nodule").uncheck()

            # boxes: accept the first, edit the second by dragging its top-left corner
            page.get_by_test_id("ai-box-0-accept").click()
            page.get_by_test_id("ai-box-1-edit").click()
            _drag_corner(page, (20, 180), (10, 170))
            # this schema outlines no nodule: the boxes stay in the assist record, and the panel says so
            expect(page.get_by_test_id("ai-box-note-0")).to_have_text("suggestion noted, no box label in this project")
            expect(page.get_by_test_id("roi-item")).to_have_count(0)
            _submit_case(page, errors, "ai-05-box-accepted-and-edited.png")
        finally:
            browser.close()
    export = c.get(f"/api/projects/{pid}/export/json", headers=admin).json()
    (reading,) = export["readings"]
    a = reading["assist"]
    assert a["shown"] is True and a["unaided"] == [{"label": "nodule", "value": False, "confidence": 60},
                                                   {"label": "effusion", "value": False, "confidence": 80}]
    accepted, edited = a["suggestions"]
    assert (accepted["box_index"], accepted["action"], accepted["box"]) == (0, "accept", [150, 150, 200, 200])
    assert (edited["box_index"], edited["action"]) == (1, "edit")
    x0, y0, x1, y1 = edited["box"]
    assert abs(x0 - 10) < 2.5 and abs(y0 - 170) < 2.5 and (x1, y1) == (60, 220), edited["box"]


def test_validation_project_rates_every_output_with_a_reason(live_server_factory, tmp_path: Path) -> None:
    """A validation reader cannot submit before rating every model output, nor reject without a reason."""
    _require_browser_stack()
    from playwright.sync_api import expect, sync_playwright

    c, admin, pid, _ = _project_with_predictions(live_server_factory, tmp_path, {"kind": "validation"})
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page, errors = _reader_on_first_task(browser, c)
            expect(page.get_by_test_id("ai-prob-nodule")).to_have_text("83%")  # not blind first: shown at once
            for label, answer in (("nodule", "yes"), ("effusion", "no")):
                page.get_by_test_id(f"label-{label}-{answer}").click()
                page.get_by_test_id(f"label-{label}-conf-80").click()
            task_id = page.get_by_test_id("task-id").text_content()
            page.get_by_test_id("submit").click()
            expect(page.locator("#toast")).to_contain_text("rate suggested region 1")
            page.get_by_test_id("ai-call-nodule-accept").click()
            page.get_by_test_id("ai-call-effusion-accept").click()
            page.get_by_test_id("ai-box-0-accept").click()
            page.get_by_test_id("ai-box-1-reject").click()
            page.get_by_test_id("submit").click()
            expect(page.locator("#toast")).to_contain_text("give a reason for region 2")
            expect(page.get_by_test_id("task-id")).to_have_text(task_id)  # not submitted
            page.get_by_test_id("ai-box-reason-1").fill("vessel seen end-on")
            _submit_case(page, errors, "ai-06-validation-rated.png")
        finally:
            browser.close()
    (reading,) = c.get(f"/api/projects/{pid}/export/json", headers=admin).json()["readings"]
    rated = [(s["label"], s.get("box_index"), s["action"], s["reason"]) for s in reading["assist"]["suggestions"]]
    assert rated == [("nodule", None, "accept", ""), ("effusion", None, "accept", ""), ("nodule", 0, "accept", ""),
                     ("nodule", 1, "reject", "vessel seen end-on")]


def test_accepted_and_edited_boxes_become_the_readers_regions(live_server_factory, tmp_path: Path) -> None:
    """With a 'Nodule region' box label: accepting a suggestion adds it as a region (listed, in the label's
    colour), rejecting it again removes it, an edited one becomes a region where its corner was dragged; the
    export lists both as the reading's regions, equal to the boxes in the assist record."""
    _require_browser_stack()
    from playwright.sync_api import expect, sync_playwright

    c, admin, pid, _ = _project_with_predictions(live_server_factory, tmp_path, {}, OUTLINED)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page, errors = _reader_on_first_task(browser, c)
            for label, answer in (("nodule", "yes"), ("effusion", "no")):
                page.get_by_test_id(f"label-{label}-{answer}").click()
                page.get_by_test_id(f"label-{label}-conf-80").click()
            items = page.get_by_test_id("roi-item")
            page.get_by_test_id("ai-box-0-accept").click()
            expect(items).to_have_count(1)
            expect(items.first).to_contain_text("Nodule region")
            expect(page.get_by_test_id("ai-box-note-0")).to_have_text("→ your region: Nodule region")
            page.get_by_test_id("ai-box-0-reject").click()  # rejecting an accepted box removes its region
            expect(items).to_have_count(0)
            page.get_by_test_id("ai-box-0-accept").click()
            page.get_by_test_id("roi-delete-0").click()  # deleting its region rejects the suggestion
            expect(page.get_by_test_id("ai-box-0-reject")).to_have_class("on")
            expect(page.get_by_test_id("ai-box-note-0")).to_have_text("region deleted: suggestion rejected")
            page.get_by_test_id("ai-box-0-accept").click()
            page.get_by_test_id("ai-box-1-edit").click()
            expect(items).to_have_count(2)
            _drag_corner(page, (20, 180), (10, 170))
            page.wait_for_timeout(300)  # the region is placed again where the corner was let go
            expect(items).to_have_count(2)
            _submit_case(page, errors, "ai-07-suggestions-as-regions.png")
            (reading,) = c.get(f"/api/projects/{pid}/export/json", headers=admin).json()["readings"]
            # reopened: the two suggestions are shown accepted / edited and linked to the two restored regions
            page.goto(str(c.base_url))
            page.get_by_test_id(f"reopen-{reading['task_id']}").click()
            page.wait_for_selector("[data-testid=viewport][data-loaded=true][data-reopened=true]", timeout=60000)
            expect(page.get_by_test_id("ai-box-0-accept")).to_have_class("on")
            expect(page.get_by_test_id("ai-box-1-edit")).to_have_class("on")
            expect(page.get_by_test_id("ai-box-note-1")).to_have_text("→ your region: Nodule region")
            expect(items).to_have_count(2)
            _submit_case(page, errors, "ai-08-reopened-suggestions.png")
        finally:
            browser.close()
    (again,) = c.get(f"/api/projects/{pid}/export/json", headers=admin).json()["readings"]
    assert again["rois"] == reading["rois"] and again["assist"]["suggestions"] == reading["assist"]["suggestions"]
    accepted, edited = reading["assist"]["suggestions"]
    assert (accepted["action"], edited["action"]) == ("accept", "edit")
    regions = sorted(reading["rois"], key=lambda r: r["points"][0][0], reverse=True)
    assert [r["label"] for r in regions] == ["nodule_box", "nodule_box"]
    for roi, s in zip(regions, (accepted, edited)):
        assert all(abs(a - b) <= 0.5 for a, b in zip(roi["points"][0] + roi["points"][1], s["box"])), (roi, s)
    assert all(abs(a - b) < 1 for a, b in zip(accepted["box"], [150, 150, 200, 200])), accepted["box"]
    x0, y0, x1, y1 = edited["box"]
    assert abs(x0 - 10) < 2.5 and abs(y0 - 170) < 2.5 and abs(x1 - 60) < 1 and abs(y1 - 220) < 1, edited["box"]
    rows = csv.DictReader(io.StringIO(c.get(f"/api/projects/{pid}/export/csv", headers=admin).text))
    assert [(r["label"], r["roi_kind"]) for r in rows if r["record"] == "roi"] == [("nodule_box", "box")] * 2
