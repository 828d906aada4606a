"""The brush and polygon tools in real headless Chromium (issue 17 point 8): a reader paints a brush
stroke (radius set on the slider), erases part of it, draws a polygon on the next CT slice, submits,
and the stored masks equal the expected capsule-minus-disk and polygon within one pixel at their
edges. Screenshots go to test-artifacts/annotation-segmentation/."""
from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from scipy import ndimage

from annotation import masks
from annotation.admin import create_admin
from tests.annotation import dicomgen
from tests.annotation.conftest import ROOT
from tests.annotation.test_browser import PASSWORD, _login, _require_browser_stack, launch

ARTIFACTS = ROOT / "test-artifacts" / "annotation-segmentation"
SIZE = 256
SCHEMA = {"instructions": "Paint the lesion.", "labels": [
    {"id": "lesion_mask", "name": "Lesion mask", "kind": "mask", "color": "#3399ff", "required": True}]}

pytestmark = [pytest.mark.server, pytest.mark.slow]


def _seed(base: str, db_url: str, store: Path) -> int:
    create_admin(db_url, "admin", PASSWORD)
    c = httpx.Client(base_url=base, timeout=30)
    admin = {"Authorization": "Bearer " + c.post("/api/auth/login", json={"username": "admin", "password": PASSWORD}).json()["token"]}
    pid = c.post("/api/projects", headers=admin, json={"name": "ct-masks", "schema": SCHEMA}).json()["id"]
    uid = c.post("/api/users", headers=admin, json={"username": "painter", "password": PASSWORD}).json()["id"]
    r = c.post(f"/api/projects/{pid}/members", headers=admin, json={"user_id": uid, "role": "annotator", "level": "senior"})
    assert r.status_code == 201, r.text
    paths = dicomgen.write_series(store / "deid" / "ct", 3, rows=SIZE, cols=SIZE, seed=7)
    r = c.post(f"/api/projects/{pid}/items", headers=admin, json={"items": [
        {"external_id": "ct-1", "uris": [p.as_uri() for p in paths], "modality": "CT", "body_part": "CHEST"}]})
    assert r.status_code == 201, r.text
    return pid


def _centres() -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    return xs, ys


def capsule(a: tuple[float, float], b: tuple[float, float], r: float) -> np.ndarray:
    """Pixels whose centre lies within r of the segment a-b: what a brush stroke paints."""
    xs, ys = _centres()
    (ax, ay), (bx, by) = a, b
    t = np.clip(((xs - ax) * (bx - ax) + (ys - ay) * (by - ay)) / max((bx - ax) ** 2 + (by - ay) ** 2, 1e-12), 0, 1)
    return (xs - ax - t * (bx - ax)) ** 2 + (ys - ay - t * (by - ay)) ** 2 <= r * r


def polygon(points: list[tuple[float, float]]) -> np.ndarray:
    """Pixels whose centre is inside the polygon (even-odd rule)."""
    xs, ys = _centres()
    inside = np.zeros(xs.shape, dtype=bool)
    for (ax, ay), (bx, by) in zip(points, points[1:] + points[:1]):
        crosses = (ay > ys) != (by > ys)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = ax + (ys - ay) * (bx - ax) / (by - ay)
        inside ^= crosses & (xs < at)
    return inside


def assert_within_one_pixel(stored: np.ndarray, expected: np.ndarray, what: str) -> None:
    """Equal but for pixels on the expected edge: nothing beyond one pixel outside, nothing missing
    more than one pixel inside."""
    ring = np.ones((3, 3), dtype=bool)
    outside = stored & ~ndimage.binary_dilation(expected, ring)
    missing = ndimage.binary_erosion(expected, ring) & ~stored
    assert not outside.any() and not missing.any(), (
        f"{what}: {int(outside.sum())} pixels painted beyond the edge, {int(missing.sum())} missing inside "
        f"(stored {int(stored.sum())}, expected {int(expected.sum())})")
    assert abs(int(stored.sum()) - int(expected.sum())) <= 0.1 * expected.sum(), what


def test_brush_and_polygon_masks_are_stored_as_drawn(live_server_factory, tmp_path: Path) -> None:
    _require_browser_stack()
    from playwright.sync_api import expect, sync_playwright

    server = live_server_factory()
    pid = _seed(server.url, server.database_url, tmp_path / "store")
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    ARTIFACTS.mkdir(parents=True)
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            _login(page, server.url, "painter")
            page.goto(f"{server.url}/#/task?project={pid}")
            page.wait_for_selector("[data-testid=viewport][data-loaded=true]", timeout=60000)
            task_id = int(page.get_by_test_id("task-id").text_content().strip().lstrip("Task #"))
            page.get_by_test_id("zoom-1to1").click()  # image pixels on screen pixels: edges are sharp
            zoom = page.get_by_test_id("zoom")
            expect(zoom).to_have_text("zoom 100%")
            vp = page.get_by_test_id("viewport").bounding_box()
            scale = float(zoom.get_attribute("data-zoom"))
            ox, oy = (float(v) for v in zoom.get_attribute("data-origin").split(","))

            def screen(x: float, y: float) -> tuple[float, float]:
                return vp["x"] + ox + x * scale, vp["y"] + oy + y * scale

            def image(sx: float, sy: float) -> tuple[float, float]:
                return (sx - vp["x"] - ox) / scale, (sy - vp["y"] - oy) / scale

            # Submit is refused while the required mask label is unpainted
            page.get_by_test_id("submit").click()
            expect(page.locator("#toast")).to_contain_text("Lesion mask")

            # --- brush: radius 10 image pixels, one stroke, then an erased bite out of it
            page.get_by_test_id("roi-lesion_mask").click()
            expect(page.get_by_test_id("seg-brush")).to_have_class("on")
            page.get_by_test_id("seg-radius").fill("10")
            expect(page.get_by_test_id("seg-radius-text")).to_have_text("10 px")
            a, b = screen(80.3, 100.6), screen(150.2, 120.4)
            page.mouse.move(*a)
            page.mouse.down()
            page.mouse.move(*b, steps=12)
            page.mouse.up()
            page.get_by_test_id("seg-erase").click()
            page.get_by_test_id("seg-radius").fill("6")
            bite = screen(150.2, 120.4)
            page.mouse.click(*bite)
            page.get_by_test_id("seg-erase").click()
            expect(page.get_by_test_id("mask-item")).to_have_count(1)
            page.screenshot(path=ARTIFACTS / "01-brush-stroke-and-erase.png")

            # --- polygon on the next slice: four clicks, then a click on the first vertex closes it
            page.get_by_test_id("slice-next").click()
            expect(page.get_by_test_id("slice")).to_have_attribute("data-index", "1")
            page.get_by_test_id("seg-polygon").click()
            corners = [screen(60.4, 60.2), screen(140.7, 70.5), screen(120.1, 150.8), screen(70.6, 130.3)]
            for point in corners:
                page.mouse.click(*point)
            page.mouse.click(*corners[0])
            expect(page.get_by_test_id("mask-item")).to_have_count(2)
            page.screenshot(path=ARTIFACTS / "02-polygon.png")
            page.get_by_test_id("mask-goto-0").click()  # the list jumps to the stroke's slice
            expect(page.get_by_test_id("slice")).to_have_attribute("data-index", "0")
            page.screenshot(path=ARTIFACTS / "03-back-to-stroke.png")

            page.get_by_test_id("submit").click()
            expect(page.get_by_test_id("no-task")).to_be_visible(timeout=30000)

            c = httpx.Client(base_url=server.url, timeout=30)
            token = c.post("/api/auth/login", json={"username": "painter", "password": PASSWORD}).json()["token"]
            task = c.get(f"/api/tasks/{task_id}", headers={"Authorization": f"Bearer {token}"}).json()
            assert task["status"] == "submitted"
            rois = {r["instance"]: r for r in task["annotation"]["rois"]}
            assert sorted(rois) == [0, 1] and {r["kind"] for r in rois.values()} == {"mask"}
            positions = [inst["position"] for inst in task["item"]["instances"]]  # display order
            stroke = capsule(image(*a), image(*b), 10) & ~capsule(image(*bite), image(*bite), 6)
            assert_within_one_pixel(masks.roi_mask(rois[positions[0]]), stroke, "brush stroke minus the erased disk")
            drawn = polygon([image(*p) for p in corners])
            assert_within_one_pixel(masks.roi_mask(rois[positions[1]]), drawn, "polygon")

            # the review view paints the mask in the label's colour (#3399ff: blue well above red)
            admin = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            admin.on("pageerror", lambda e: errors.append(str(e)))
            _login(admin, server.url, "admin")
            admin.goto(f"{server.url}/#/review/{pid}/item/{task['item']['id']}")
            canvas = admin.locator("canvas.review-canvas").first
            expect(admin.get_by_test_id("review-slice")).to_have_text("image 1/3")
            admin.wait_for_function("document.querySelector('canvas.review-canvas').width > 0")
            pixel = "([x, y]) => Array.from(document.querySelector('canvas.review-canvas').getContext('2d').getImageData(x, y, 1, 1).data)"
            inside = admin.evaluate(pixel, [int((image(*a)[0] + image(*b)[0]) / 2), int((image(*a)[1] + image(*b)[1]) / 2)])
            outside = admin.evaluate(pixel, [5, 5])
            assert inside[2] - inside[0] > 60 and abs(outside[2] - outside[0]) < 10, (inside, outside)
            canvas.screenshot(path=ARTIFACTS / "04-review-view.png")

            # reopened by its reader, the case shows both masks again (Submit would keep them)
            page.goto(f"{server.url}/#/tasks")
            page.get_by_test_id(f"reopen-{task_id}").click()
            page.wait_for_selector("[data-testid=viewport][data-loaded=true][data-reopened=true]", timeout=60000)
            expect(page.get_by_test_id("mask-item")).to_have_count(2)
            page.screenshot(path=ARTIFACTS / "05-reopened.png")
        finally:
            browser.close()
    assert not errors, errors
