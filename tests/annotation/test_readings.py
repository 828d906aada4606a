"""Readings mean something: required labels are required (an empty or half-answered reading is refused
with an error naming each missing label, in the API and in the viewer), and "N left" counts the
reader's own open readings, not the project's open slots. Browser steps in headless Chromium with
screenshots in test-artifacts/annotation/readings/."""
from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss_kappa

from annotation.admin import create_admin
from annotation.routers.review import fleiss_kappa, iou, kappa_with_ci, roi_disagreements
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


def _world(server, store: Path, schema: dict, n_ct: int = 6, n_mr: int = 2, k: int = 3,
           readers: tuple[str, ...] = ("ann", "bob")) -> dict:
    """A project with n_ct CT and n_mr MR items read by k readers each; 'ann' reads CT only."""
    create_admin(server.database_url, "admin", PASSWORD)
    c = httpx.Client(base_url=server.url, timeout=60)
    tok = lambda u: c.post("/api/auth/login", json={"username": u, "password": PASSWORD}).json()["token"]  # noqa: E731
    admin = {"Authorization": f"Bearer {tok('admin')}"}
    pid = c.post("/api/projects", headers=admin, json={"name": "readings", "readers_per_item": k, "schema": schema}).json()["id"]
    users = {}
    for name in readers:
        competences = [{"modality": "CT"}] if name == "ann" else []
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
    return {"c": c, "pid": pid, "items": r.json()["created"] if items else [],
            "h": {u: {"Authorization": f"Bearer {tok(u)}"} for u in readers}}


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


def _box(x0: float, y0: float, x1: float, y1: float, instance: int = 0) -> dict:
    return {"label": "lesion_box", "kind": "box", "instance": instance, "frame": 0, "points": [[x0, y0], [x1, y1]]}


def test_fleiss_kappa_equals_statsmodels() -> None:
    rng = np.random.default_rng(7)
    for raters, categories, items in [(3, 2, 40), (5, 2, 12), (4, 3, 25), (2, 2, 9)]:
        ratings = rng.integers(0, categories, size=(items, raters))
        ratings[: items // 2] = ratings[: items // 2, :1]  # half the items unanimous: kappa well above 0
        table, _ = aggregate_raters(ratings, n_cat=categories)
        kappa, raw = fleiss_kappa(table)
        assert kappa == pytest.approx(statsmodels_fleiss_kappa(table, method="fleiss"), abs=1e-12)
        pairs = [np.mean([a == b for i, a in enumerate(row) for b in row[i + 1:]]) for row in ratings]
        assert raw == pytest.approx(np.mean(pairs))
        k, _, lo, hi = kappa_with_ci(table)
        assert lo <= k <= hi and -1 <= lo < hi <= 1
    assert fleiss_kappa(np.array([[3, 0], [3, 0]]))[0] is None  # all answers equal: undefined, not 100 %


def test_region_overlap_and_disagreement() -> None:
    assert iou(_box(0, 0, 10, 10), _box(5, 0, 15, 10)) == pytest.approx(1 / 3)
    square = {"label": "lesion_box", "kind": "freehand", "instance": 0, "frame": 0, "points": [[0, 0], [10, 0], [10, 10], [0, 10]]}
    assert iou(square, _box(0, 0, 10, 10)) == 1.0
    assert iou(_box(0, 0, 10, 10), _box(0, 0, 10, 10, instance=1)) == 0.0  # another slice never overlaps
    found = roi_disagreements({"a": [_box(0, 0, 10, 10)], "b": [_box(6, 0, 16, 10), _box(50, 50, 60, 60)],
                               "c": [_box(0, 0, 10, 9)]}, 0.5)
    kinds = sorted((d.kind, tuple(d.readers), d.drawn_by or "") for d in found)
    assert kinds == [("misplaced", ("a", "b"), ""), ("misplaced", ("b", "c"), ""), ("missing", ("a", "b"), "b"),
                     ("missing", ("b", "c"), "b")], kinds  # a and c agree (IoU 0.9)


def test_review_screens_count_region_disagreement_and_show_kappa(live_server_factory, tmp_path: Path) -> None:
    """Three readers, four cases: one label disagreement, one case with a misplaced and a missing box.
    The review page shows Fleiss' kappa (equal to statsmodels') with its interval beside the raw
    agreement, heatmaps in viridis with a legend (100 % bright yellow), a disagreement column that
    filters and sorts; the discrepancy view names the region disagreements."""
    _require_browser_stack()
    from playwright.sync_api import expect, sync_playwright

    schema = {"labels": [lab | {"required": False} for lab in SCHEMA["labels"]]}
    server = live_server_factory()
    w = _world(server, tmp_path / "store", schema, n_ct=4, n_mr=0, k=3, readers=("ann", "bob", "cat"))
    c, pid = w["c"], w["pid"]
    plan = {  # case -> reader -> (nodule answer, boxes)
        0: {"ann": (True, [_box(4, 4, 20, 20)]), "bob": (True, [_box(4, 4, 20, 20)]), "cat": (True, [_box(5, 4, 20, 20)])},
        1: {"ann": (True, []), "bob": (False, []), "cat": (True, [])},
        2: {"ann": (False, [_box(2, 2, 12, 12)]), "bob": (False, [_box(9, 9, 19, 19)]), "cat": (False, [])},
        3: {"ann": (False, []), "bob": (False, []), "cat": (False, [])},
    }
    for reader in ("ann", "bob", "cat"):
        for _ in plan:
            t = c.post(f"/api/tasks/next?project_id={pid}", headers=w["h"][reader]).json()["task"]
            case = w["items"].index(t["item"]["id"])
            value, boxes = plan[case][reader]
            r = c.post(f"/api/tasks/{t['id']}/submit", headers=w["h"][reader], json={
                "labels": [{"label": "nodule", "value": value, "confidence": 80}], "rois": boxes})
            assert r.status_code == 200, r.text
    table, _ = aggregate_raters(np.array([[int(plan[i][r][0]) for r in ("ann", "bob", "cat")] for i in plan]), n_cat=2)
    expected_kappa = statsmodels_fleiss_kappa(table, method="fleiss")
    admin = {"Authorization": "Bearer " + c.post("/api/auth/login", json={"username": "admin", "password": PASSWORD}).json()["token"]}
    stats = c.get(f"/api/projects/{pid}/statistics", headers=admin).json()
    nodule = next(k for k in stats["kappa"] if k["label"] == "nodule")
    assert nodule["kappa"] == pytest.approx(expected_kappa, abs=1e-4) and nodule["items"] == 4 and nodule["readers"] == 3
    assert nodule["ci_low"] <= nodule["kappa"] <= nodule["ci_high"]
    per_item = {d["item_id"]: d for d in stats["items"]}
    assert per_item[w["items"][0]]["disagreement"] == 0  # boxes overlapping at IoU > 0.5 agree
    assert per_item[w["items"][1]]["label_disagreements"] == ["nodule"]
    assert per_item[w["items"][2]]["roi_misplaced"] == 1 and per_item[w["items"][2]]["roi_missing"] == 2

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page, errors = watched_page(browser, 1400, 1000)
            _login(page, server.url, "admin")
            page.goto(f"{server.url}/#/review/{pid}")
            page.get_by_test_id("kappa").wait_for()
            expect(page.get_by_test_id("kappa-nodule-value")).to_have_text(f"{expected_kappa:.2f}")
            expect(page.get_by_test_id("kappa-nodule")).to_contain_text("%")  # raw agreement beside it
            diagonal = page.get_by_test_id("heatmap-agreement").locator("td[data-value='1']").first
            expect(diagonal).to_have_css("background-color", "rgb(253, 231, 37)")
            expect(page.get_by_test_id("legend-agreement")).to_be_visible()
            expect(page.get_by_test_id(f"disagreement-{w['items'][2]}")).to_contain_text("missing")
            expect(page.get_by_test_id(f"disagreement-{w['items'][2]}")).to_contain_text("misplaced")
            page.screenshot(path=ARTIFACTS / "07-review-kappa-heatmap.png", full_page=True)
            page.get_by_test_id("disagreement-filter").select_option("any")
            expect(page.get_by_test_id("review-item-row")).to_have_count(2)
            page.get_by_test_id("disagreement-filter").select_option("all")
            page.get_by_test_id("disagreement-sort").select_option("disagreement")
            expect(page.get_by_test_id("review-item-row").first).to_have_attribute("data-item", str(w["items"][2]))
            page.screenshot(path=ARTIFACTS / "08-review-sorted.png", full_page=True)
            page.get_by_test_id(f"review-item-{w['items'][2]}").click()
            expect(page.get_by_test_id("roi-disagreements")).to_contain_text("missing for cat")
            expect(page.get_by_test_id("roi-disagreements")).to_contain_text("IoU < 0.5")
            page.screenshot(path=ARTIFACTS / "09-discrepancy-regions.png", full_page=True)
            assert not errors, errors
        finally:
            browser.close()


# The first ancestor whose overflow hides part of the element (a scroll area it must be scrolled into), if any.
CLIPPED_BY = """(testid) => {
  const el = document.querySelector(`[data-testid="${testid}"]`);
  const r = el.getBoundingClientRect();
  for (let a = el.parentElement; a; a = a.parentElement) {
    if (getComputedStyle(a).overflowY === 'visible' && getComputedStyle(a).overflowX === 'visible') continue;
    const c = a.getBoundingClientRect();
    if (r.top < c.top - 0.5 || r.bottom > c.bottom + 0.5 || r.left < c.left - 0.5 || r.right > c.right + 0.5) {
      return `${a.className || a.tagName} ${JSON.stringify([c.top, c.bottom])} holds ${JSON.stringify([r.top, r.bottom])}`;
    }
  }
  return null;
}"""


@pytest.mark.parametrize("width,height", [(1280, 720), (1920, 1080)])
def test_image_labels_and_submit_visible_together(live_server_factory, tmp_path: Path, width: int, height: int) -> None:
    """On a 1280x720 laptop and a 1920x1080 reading monitor the image, every label, the region
    buttons, the case context and Submit lie inside the window without scrolling."""
    _require_browser_stack()
    from playwright.sync_api import sync_playwright

    server = live_server_factory()
    w = _world(server, tmp_path / "store", SCHEMA, n_ct=0, n_mr=0, k=1)
    paths = dicomgen.write_series(tmp_path / "store" / "deid" / "ctx", 2, rows=256, cols=256, seed=2)
    admin = {"Authorization": "Bearer " + w["c"].post("/api/auth/login", json={"username": "admin", "password": PASSWORD}).json()["token"]}
    report = "CT chest: 9 mm solid nodule in the right upper lobe.\nNo effusion.\nCompared with the prior study, unchanged.\nImpression: follow-up in 3 months."
    r = w["c"].post(f"/api/projects/{w['pid']}/items", headers=admin, json={"items": [
        {"external_id": "layout", "uris": [p.as_uri() for p in paths], "modality": "CT", "body_part": "CHEST",
         "context": {"age_bracket": "60-69", "sex": "F", "comorbidities": ["COPD", "diabetes"], "report_text": report}}]})
    assert r.status_code == 201, r.text
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page, errors = watched_page(browser, width, height)
            _login(page, server.url, "ann")
            page.goto(f"{server.url}/#/task?project={w['pid']}")
            page.wait_for_selector("[data-testid=viewport][data-loaded=true]", timeout=60000)
            page.screenshot(path=ARTIFACTS / f"10-layout-{width}x{height}.png")
            must_show = ["viewport", "label-nodule", "label-effusion", "roi-lesion_box", "roi-outline", "submit", "skip",
                         "context", "report", "task-id"]
            for testid in must_show:
                box = page.get_by_test_id(testid).bounding_box()
                assert box is not None, testid
                inside = box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= width and box["y"] + box["height"] <= height
                assert inside, f"{testid} at {box} is outside the {width}x{height} window"
                clipped = page.evaluate(CLIPPED_BY, testid)
                assert not clipped, f"{testid} is cut off by a scrolling box: {clipped}"
            vp = page.get_by_test_id("viewport").bounding_box()
            assert vp["height"] >= 0.7 * height and vp["width"] >= 0.6 * width, vp  # the image keeps most of the screen
            assert page.evaluate("() => document.scrollingElement.scrollHeight <= window.innerHeight"), "the page scrolls"
            assert not errors, errors
        finally:
            browser.close()
