"""The web viewer in real headless Debian Chromium (Playwright driving /usr/bin/chromium):
an external expert joins by invite link, reads a case with window/level, zoom, a box and a
freehand ROI and two labels with confidence, submits and gets the next task; a reviewer opens
the discrepancy view; a manager exports CSV. Screenshots go to test-artifacts/annotation/."""
from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import httpx
import pytest

from annotation.admin import create_admin
from annotation.config import WEB_DIST
from tests.annotation import dicomgen
from tests.annotation.conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts" / "annotation"
PASSWORD = "correct-horse-battery"
SCHEMA = {
    "instructions": "Chest CT: mark the lesion.",
    "labels": [
        {"id": "nodule", "name": "Lung nodule", "kind": "boolean"},
        {"id": "effusion", "name": "Pleural effusion", "kind": "boolean"},
        {"id": "lesion_box", "name": "Lesion box", "kind": "box", "color": "#ff3333"},
        {"id": "lesion_outline", "name": "Lesion outline", "kind": "freehand", "color": "#33ff66"},
    ],
}

pytestmark = [pytest.mark.server, pytest.mark.slow]


def _require_browser_stack() -> None:
    missing = [what for what, ok in [(CHROMIUM, Path(CHROMIUM).exists()), ("annotation/web/dist (run annotation/install.sh)",
                                                                          (WEB_DIST / "index.html").exists())] if not ok]
    if missing:
        pytest.fail(f"browser test needs: {', '.join(missing)}")


def _seed(base: str, db_url: str, store: Path) -> dict:
    create_admin(db_url, "admin", PASSWORD)
    c = httpx.Client(base_url=base, timeout=30)
    tok = lambda u: c.post("/api/auth/login", json={"username": u, "password": PASSWORD}).json()["token"]  # noqa: E731
    admin = {"Authorization": f"Bearer {tok('admin')}"}
    pid = c.post("/api/projects", headers=admin, json={"name": "chest-ct-browser", "readers_per_item": 2, "schema": SCHEMA}).json()["id"]
    ids = {}
    for name, role, level in [("manager", "manager", None), ("reviewer", "reviewer", None), ("senior", "annotator", "senior")]:
        ids[name] = c.post("/api/users", headers=admin, json={"username": name, "password": PASSWORD}).json()["id"]
        r = c.post(f"/api/projects/{pid}/members", headers=admin, json={"user_id": ids[name], "role": role, "level": level})
        assert r.status_code == 201, r.text
    items = []
    for n in range(3):
        if n == 1:  # the expert's second case is one multi-frame object: frames scroll like slices
            paths = [dicomgen.write_multiframe(store / "deid" / "mf" / "0000.dcm", frames=3, rows=256, cols=256, seed=20)]
        else:
            paths = dicomgen.write_series(store / "deid" / f"b{n}", 3, rows=256, cols=256, seed=10 + n)
        items.append({"external_id": f"case-{n}", "uris": [p.as_uri() for p in paths], "modality": "CT", "body_part": "CHEST",
                      "context": {"age_bracket": "50-59", "sex": "M", "comorbidities": ["diabetes"],
                                  "report_text": "CT chest: 9 mm nodule in the right upper lobe."}})
    data_owner = admin
    created = c.post(f"/api/projects/{pid}/items", headers=data_owner, json={"items": items}).json()["created"]
    # a senior reads the first case so the reviewer has two readers to compare
    senior = {"Authorization": f"Bearer {tok('senior')}"}
    t = c.post(f"/api/tasks/next?project_id={pid}", headers=senior).json()["task"]
    assert t["item"]["id"] == created[0]
    r = c.post(f"/api/tasks/{t['id']}/submit", headers=senior, json={
        "labels": [{"label": "nodule", "value": False, "confidence": 60}, {"label": "effusion", "value": False, "confidence": 80}],
        "rois": [{"label": "lesion_box", "kind": "box", "instance": 0, "frame": 0, "points": [[100, 90], [150, 140]]}],
        "active_ms": 30000, "idle_ms": 0})
    assert r.status_code == 200, r.text
    return {"project_id": pid, "items": created}


def _login(page, base: str, user: str) -> None:
    page.goto(f"{base}/#/login")
    page.get_by_test_id("login-username").fill(user)
    page.get_by_test_id("login-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    page.get_by_test_id("task-list").wait_for()


def launch(pw):
    """Debian's Chromium, headless, as every browser test here runs it."""
    return pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])


def watched_page(browser, width: int = 1400, height: int = 900):
    """A page in a fresh context and the list its uncaught page errors go to."""
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page, errors


def _drag(page, box: dict, start: tuple[float, float], points: list[tuple[float, float]], button: str = "left") -> None:
    x0, y0 = box["x"], box["y"]
    page.mouse.move(x0 + start[0], y0 + start[1])
    page.mouse.down(button=button)
    for x, y in points:
        page.mouse.move(x0 + x, y0 + y, steps=6)
    page.mouse.up(button=button)


def test_invite_read_submit_review_export(live_server_factory, tmp_path: Path) -> None:
    _require_browser_stack()
    from playwright.sync_api import expect, sync_playwright

    server = live_server_factory()
    seeded = _seed(server.url, server.database_url, tmp_path / "store")
    pid = seeded["project_id"]
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    ARTIFACTS.mkdir(parents=True)
    console_errors: list[str] = []
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            # --- a manager creates an invite link in the management page
            manager = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
            mpage = manager.new_page()
            _login(mpage, server.url, "manager")
            mpage.goto(f"{server.url}/#/manage/{pid}")
            mpage.get_by_test_id("invite-level").select_option("junior")
            mpage.get_by_test_id("invite-note").fill("external thoracic radiologist")
            mpage.get_by_test_id("invite-create").click()
            link = mpage.get_by_test_id("invite-link")
            link.wait_for()
            expect(link).to_contain_text("#/invite/")
            invite_url = link.text_content()
            assert invite_url.startswith(server.url + "/#/invite/")

            # --- the external expert opens the link, sets a password, sees the first task
            expert = browser.new_context(viewport={"width": 1400, "height": 900})
            page = expert.new_page()
            # "Failed to load resource" console lines duplicate the response log below
            page.on("console", lambda m: console_errors.append(m.text)
                    if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
            page.on("pageerror", lambda e: console_errors.append(str(e)))
            page.on("response", lambda r: console_errors.append(
                f"HTTP {r.status} {r.request.method} {r.url} at {page.url} cookie={'cookie' in r.request.all_headers()}")
                if r.status >= 400 and not (r.status == 401 and r.url.endswith("/api/auth/me")) else None)
            page.goto(invite_url)
            page.get_by_test_id("invite-username").fill("dr-external")
            page.get_by_test_id("invite-password").fill(PASSWORD)
            page.get_by_test_id("invite-password2").fill(PASSWORD)
            page.screenshot(path=ARTIFACTS / "01-invite.png")
            page.get_by_test_id("invite-submit").click()
            page.get_by_test_id("next-task").click()
            page.wait_for_selector("[data-testid=viewport][data-loaded=true]", timeout=60000)
            first_task = page.get_by_test_id("task-id").text_content()
            assert "report" in page.get_by_test_id("context").text_content().lower() or page.get_by_test_id("report").is_visible()
            page.screenshot(path=ARTIFACTS / "02-first-task.png")

            voi = page.get_by_test_id("voi")
            zoom = page.get_by_test_id("zoom")
            ww0, wc0 = float(voi.get_attribute("data-ww")), float(voi.get_attribute("data-wc"))
            assert (round(ww0), round(wc0)) == (400, 40), "the DICOM's own window is the starting point"
            vp = page.get_by_test_id("viewport").bounding_box()
            # window/level: left drag with the W/L tool acts on the original values
            page.get_by_test_id("tool-W/L").click()
            _drag(page, vp, (vp["width"] / 2, vp["height"] / 2), [(vp["width"] / 2 + 80, vp["height"] / 2 + 60)])
            page.wait_for_timeout(200)
            ww1, wc1 = float(voi.get_attribute("data-ww")), float(voi.get_attribute("data-wc"))
            assert (ww1, wc1) != (ww0, wc0)
            # presets are in modality units (HU): the lung window is exact
            page.get_by_test_id("preset").select_option(label="Lung 1500/-600")
            assert (round(float(voi.get_attribute("data-ww"))), round(float(voi.get_attribute("data-wc")))) == (1500, -600)
            # zoom: right-drag, then full resolution
            z0 = float(zoom.get_attribute("data-zoom"))
            _drag(page, vp, (vp["width"] / 2, vp["height"] / 2), [(vp["width"] / 2, vp["height"] / 2 - 120)], button="right")
            page.wait_for_timeout(200)
            z1 = float(zoom.get_attribute("data-zoom"))
            assert z1 != z0
            page.get_by_test_id("reset").click()
            expect(page.get_by_test_id("zoom")).to_have_attribute("data-fit-zoom", "1")  # fitted again
            expect(page.get_by_test_id("preset")).to_have_value("0")  # the menu says Default again
            fitted = float(zoom.get_attribute("data-zoom"))  # screen pixels per image pixel when fitted
            assert abs(fitted - vp["height"] / 256) < 0.05, (fitted, vp)
            page.get_by_test_id("zoom-1to1").click()  # one image pixel per screen pixel
            expect(zoom).to_have_text("zoom 100%")
            assert float(zoom.get_attribute("data-zoom")) == pytest.approx(1)
            page.keyboard.press("r")  # shortcut: reset
            expect(page.get_by_test_id("zoom")).to_have_attribute("data-fit-zoom", "1")
            page.get_by_test_id("slice-next").click()
            expect(page.get_by_test_id("slice")).to_have_attribute("data-index", "1")
            page.get_by_test_id("slice-prev").click()
            expect(page.get_by_test_id("slice")).to_have_attribute("data-index", "0")
            page.screenshot(path=ARTIFACTS / "03-window-zoom.png")

            # a box and a freehand ROI
            page.get_by_test_id("roi-lesion_box").click()
            cx, cy = vp["width"] / 2, vp["height"] / 2
            _drag(page, vp, (cx - 80, cy - 60), [(cx - 20, cy - 10)])
            page.get_by_test_id("roi-lesion_outline").click()
            _drag(page, vp, (cx + 20, cy + 20), [(cx + 90, cy + 25), (cx + 95, cy + 80), (cx + 40, cy + 95), (cx + 18, cy + 40), (cx + 21, cy + 21)])
            expect(page.get_by_test_id("roi-item")).to_have_count(2, timeout=10000)
            # a third box, then deleted again
            page.get_by_test_id("roi-lesion_box").click()
            _drag(page, vp, (cx + 120, cy - 150), [(cx + 170, cy - 110)])
            expect(page.get_by_test_id("roi-item")).to_have_count(3)
            page.get_by_test_id("roi-item").filter(has_text="Lesion box").nth(1).get_by_role("button", name="delete").click()
            expect(page.get_by_test_id("roi-item")).to_have_count(2)
            # two labels with confidence
            page.get_by_test_id("label-nodule-yes").click()
            page.get_by_test_id("label-nodule-conf-80").click()
            page.get_by_test_id("label-effusion-no").click()
            page.get_by_test_id("label-effusion-conf-40").click()
            page.screenshot(path=ARTIFACTS / "04-annotated.png")
            page.get_by_test_id("submit").click()
            expect(page.get_by_test_id("task-id")).not_to_have_text(first_task, timeout=30000)
            page.wait_for_selector("[data-testid=viewport][data-loaded=true]", timeout=60000)
            assert page.get_by_test_id("roi-list").locator("li").count() == 0
            expect(page.get_by_test_id("slice")).to_have_text("image 1/3")  # 3 frames of one object
            page.get_by_test_id("slice-next").click()
            expect(page.get_by_test_id("slice")).to_have_attribute("data-index", "1")
            page.screenshot(path=ARTIFACTS / "05-next-task.png")

            # --- a reviewer opens the discrepancy view
            reviewer = browser.new_context(viewport={"width": 1400, "height": 900})
            rpage = reviewer.new_page()
            _login(rpage, server.url, "reviewer")
            rpage.get_by_test_id(f"review-{pid}").click()
            rpage.get_by_test_id("heatmap-labels").wait_for()
            rpage.get_by_test_id(f"review-item-{seeded['items'][0]}").click()
            rpage.get_by_test_id("discrepancy").wait_for()
            expect(rpage.get_by_test_id("reader-panel")).to_have_count(2)
            assert "Lung nodule" in rpage.get_by_test_id("disagreements").text_content()
            rpage.screenshot(path=ARTIFACTS / "06-discrepancy.png", full_page=True)

            # --- the manager exports CSV
            mpage.goto(f"{server.url}/#/manage/{pid}")
            with mpage.expect_download() as dl:
                mpage.get_by_test_id("export-csv").click()
            csv_path = ARTIFACTS / "export.csv"
            dl.value.save_as(csv_path)
            mpage.screenshot(path=ARTIFACTS / "07-manage.png", full_page=True)
        finally:
            browser.close()

    rows = list(csv.DictReader(io.StringIO(csv_path.read_text())))
    mine = [r for r in rows if r["annotator"] == "dr-external"]
    assert {(r["record"], r["label"]) for r in mine} == {("label", "nodule"), ("label", "effusion"),
                                                         ("roi", "lesion_box"), ("roi", "lesion_outline")}
    nodule = next(r for r in mine if r["label"] == "nodule")
    assert (nodule["value"], nodule["confidence"]) == ("1", "80")
    box = next(r for r in mine if r["label"] == "lesion_box")
    assert 0 <= float(box["x_min"]) < float(box["x_max"]) <= 256 and 0 <= float(box["y_min"]) < float(box["y_max"]) <= 256
    assert float(box["time_total_s"]) > 0 and box["loaded_at"]
    # a 401 from /api/auth/me is the app's "am I logged in?" probe, not an error
    assert not [e for e in console_errors if "favicon" not in e], console_errors


def test_quality_review_shows_the_model_and_needs_a_reason(live_server_factory, tmp_path: Path) -> None:
    """A quality reviewer sees the whole series with the model's decision, reason and metrics, and
    cannot exclude without a reason; the decision with who and when reaches the export; the admin
    sees the round complete on the management page and closes it."""
    _require_browser_stack()
    from playwright.sync_api import expect, sync_playwright

    server = live_server_factory()
    create_admin(server.database_url, "admin", PASSWORD)
    c = httpx.Client(base_url=server.url, timeout=30)
    admin = {"Authorization": f"Bearer {c.post('/api/auth/login', json={'username': 'admin', 'password': PASSWORD}).json()['token']}"}
    pid = c.post("/api/projects", headers=admin, json={"name": "quality-review", "kind": "quality_review"}).json()["id"]
    uid = c.post("/api/users", headers=admin, json={"username": "qreader", "password": PASSWORD}).json()["id"]
    assert c.post(f"/api/projects/{pid}/members", headers=admin, json={"user_id": uid, "role": "annotator"}).status_code == 201
    token = c.post("/api/service-tokens", headers=admin, json={"name": "airflow", "projects": [pid]}).json()["token"]
    pipeline = {"Authorization": f"Bearer {token}"}
    paths = dicomgen.write_series(tmp_path / "store" / "derived" / "mc", 3, rows=128, cols=128, seed=4)
    model = {"decision": "review", "score": 0.41, "reason": "ghosting along the phase-encoding axis", "model": "quality-v1",
             "metrics": {"efc": 0.612, "snr": 8.2}}
    r = c.post(f"/api/projects/{pid}/rounds", headers=pipeline, json={"name": "review-1", "items": [
        {"external_id": "series-9", "uris": [p.as_uri() for p in paths], "modality": "MR", "context": {"quality": model}}]})
    assert r.status_code == 201, r.text
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page, errors = watched_page(browser)
            _login(page, server.url, "qreader")
            page.get_by_test_id("next-task").click()
            page.wait_for_selector("[data-testid=viewport][data-loaded=true]", timeout=60000)
            expect(page.get_by_test_id("slice")).to_have_text("image 1/3")  # the whole series
            expect(page.get_by_test_id("model-reason")).to_have_text(model["reason"])
            expect(page.get_by_test_id("model-decision")).to_contain_text("review")
            expect(page.get_by_test_id("quality-metrics")).to_contain_text("efc")
            for choice in ("approve", "exclude", "quarantine"):
                expect(page.get_by_test_id(f"quality-{choice}")).to_be_visible()
            task_id = page.get_by_test_id("task-id").text_content()
            page.get_by_test_id("quality-exclude").click()
            page.get_by_test_id("submit").click()
            expect(page.locator("#toast")).to_contain_text("reason")
            expect(page.get_by_test_id("task-id")).to_have_text(task_id)  # not submitted
            page.get_by_test_id("quality-reason").fill("ghosting over the whole brain, not diagnostic")
            page.screenshot(path=ARTIFACTS / "08-quality-review.png")
            page.get_by_test_id("submit").click()
            page.get_by_test_id("no-task").wait_for(timeout=30000)
            # the admin sees the round complete on the management page and closes it
            apage = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            apage.on("pageerror", lambda e: errors.append(str(e)))
            apage.on("dialog", lambda d: d.accept())
            _login(apage, server.url, "admin")
            apage.goto(f"{server.url}/#/manage/{pid}")
            expect(apage.get_by_test_id("round-1-state")).to_have_text("complete")
            expect(apage.get_by_test_id("export-quality")).to_be_visible()
            apage.get_by_test_id("round-1-close").click()
            expect(apage.get_by_test_id("round-1-state")).to_have_text("closed")
            apage.screenshot(path=ARTIFACTS / "09-rounds.png", full_page=True)
            assert not errors, errors
        finally:
            browser.close()
    decisions = c.get(f"/api/projects/{pid}/export/quality", headers=pipeline).json()["decisions"]
    assert [(d["reader"], d["decision"], d["reason"]) for d in decisions] == [
        ("qreader", "exclude", "ghosting over the whole brain, not diagnostic")]
    assert decisions[0]["decided_at"]
