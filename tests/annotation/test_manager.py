"""Point 9 of issue 17: a project manager sets a project up in the browser (headless Debian Chromium):
a project from a template, invites (the table refreshes), competences, items added as a round from
de-identified URIs (a raw export refused on screen), gold, and coverage per item that says which items
nobody left can read. Screenshots go to test-artifacts/annotation-manager/."""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from annotation.admin import create_admin
from annotation.config import WEB_DIST
from tests.annotation import dicomgen
from tests.annotation.conftest import ROOT

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts" / "annotation-manager"
PASSWORD = "correct-horse-battery"

pytestmark = [pytest.mark.server, pytest.mark.slow]


def require_browser_stack() -> None:
    missing = [what for what, ok in [(CHROMIUM, Path(CHROMIUM).exists()),
                                     ("annotation/web/dist (run annotation/install.sh)", (WEB_DIST / "index.html").exists())]
               if not ok]
    if missing:
        pytest.fail(f"browser test needs: {', '.join(missing)}")


def launch(pw):
    return pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])


def sign_in(page, base: str, user: str, password: str = PASSWORD) -> None:
    page.goto(f"{base}/#/login")
    page.get_by_test_id("login-username").fill(user)
    page.get_by_test_id("login-password").fill(password)
    page.get_by_test_id("login-submit").click()
    page.get_by_test_id("task-list").wait_for()


@contextmanager
def signed_in(base: str, user: str, viewport: dict[str, int]) -> Iterator[tuple]:
    """(browser, page) of `user` signed in, in headless Chromium; closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_context(viewport=viewport).new_page()
            sign_in(page, base, user)
            yield browser, page
        finally:
            browser.close()


# Screenshots are of the viewport: after a full-page screenshot this Chromium misplaces the next click.
def artifacts(name: str) -> Path:
    folder = ARTIFACTS / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


class Api:
    """The REST calls a test makes besides the browser (readers taking and skipping tasks)."""

    def __init__(self, base: str) -> None:
        self.client = httpx.Client(base_url=base, timeout=30)

    def auth(self, user: str, password: str = PASSWORD) -> dict[str, str]:
        r = self.client.post("/api/auth/login", json={"username": user, "password": password})
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['token']}"}

    def user(self, admin: dict[str, str], name: str) -> int:
        r = self.client.post("/api/users", headers=admin, json={"username": name, "password": PASSWORD})
        assert r.status_code == 201, r.text
        return r.json()["id"]


def test_manager_sets_up_a_project_in_the_browser(live_server_factory, tmp_path: Path) -> None:
    require_browser_stack()
    from playwright.sync_api import expect

    store = tmp_path / "store"
    deid = [dicomgen.write_series(store / "deid" / f"ct{n}", 2, rows=128, cols=128, seed=40 + n) for n in range(3)]
    export = dicomgen.write_series(tmp_path / "pacs-export" / "deid" / "ct9", 1, rows=128, cols=128, seed=49)
    server = live_server_factory(env={"ANNOTATION_STORE_URI": str(store)})
    create_admin(server.database_url, "admin", PASSWORD)
    api = Api(server.url)
    admin = api.auth("admin")
    readers = {name: api.user(admin, name) for name in ("alice", "bob", "carol")}
    shots = artifacts("manager")
    with signed_in(server.url, "admin", {"width": 1400, "height": 1600}) as (_, page):
        # --- a project from the "CT lung nodule boxes" template
        page.goto(f"{server.url}/#/manage/new")
        page.get_by_test_id("template-ct_nodule_boxes").click()
        page.get_by_test_id("new-project-name").fill("nodules-2027")
        page.get_by_test_id("new-project-k").fill("2")
        page.screenshot(path=str(shots / "01-new-project-from-template.png"))
        page.get_by_test_id("new-project-create").click()
        page.get_by_test_id("schema").wait_for()
        pid = int(page.url.rsplit("/", 1)[1])
        project = api.client.get(f"/api/projects/{pid}", headers=admin).json()
        schema = api.client.get(f"/api/projects/{pid}/schema", headers=admin).json()["definition"]
        assert project["readers_per_item"] == 2 and project["verification_levels"] == 1
        assert [label["id"] for label in schema["labels"]] == ["nodule", "subsolid", "nodule_box"]
        api.client.patch(f"/api/projects/{pid}", headers=admin, json={"verification_levels": 0})
        for name, uid in readers.items():
            r = api.client.post(f"/api/projects/{pid}/members", headers=admin,
                                json={"user_id": uid, "role": "annotator", "level": "junior"})
            assert r.status_code == 201, r.text
        page.reload()
        # --- an invite: the table shows it at once, no reload
        rows = page.get_by_test_id("invite-rows").locator("tr")
        expect(rows).to_have_count(0)
        page.get_by_test_id("invite-note").fill("external thoracic radiologist")
        page.get_by_test_id("invite-create").click()
        expect(page.get_by_test_id("invite-link")).to_contain_text("#/invite/")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("external thoracic radiologist")
        # --- competences: carol reads MR only
        page.get_by_test_id("competences-carol").fill("mr")
        page.get_by_test_id("member-save-carol").click()
        expect(page.get_by_test_id("competences-carol")).to_have_value("MR")
        page.screenshot(path=str(shots / "02-members-invite-competences.png"))
        # --- items: a raw export (in a folder that happens to be called deid) is refused on screen
        page.get_by_test_id("items-uris").fill(f"export-1 {export[0].as_uri()}")
        page.get_by_test_id("items-modality").fill("CT")
        page.get_by_test_id("items-body-part").fill("CHEST")
        page.get_by_test_id("items-add").click()
        expect(page.get_by_test_id("add-items-error")).to_contain_text("not in the deid or derived zone of the configured store")
        page.screenshot(path=str(shots / "03-raw-export-refused.png"))
        lines = "\n".join(f"case-{n} " + " ".join(p.as_uri() for p in paths) for n, paths in enumerate(deid))
        page.get_by_test_id("items-uris").fill(lines)
        page.get_by_test_id("round-name").fill("first-round")
        page.get_by_test_id("round-deadline").fill("2027-01-15T18:00")
        page.get_by_test_id("items-add").click()
        page.get_by_test_id("coverage-case-2").wait_for()
        rounds = api.client.get(f"/api/projects/{pid}/rounds", headers=admin).json()
        assert [(r["name"], r["items"], r["readers_per_item"], r["deadline"]) for r in rounds] == \
            [("first-round", 3, 2, "2027-01-15T18:00:00")]
        # --- alice and bob skip case-0; carol reads MR only: nobody left can read case-0
        for name in ("alice", "bob"):
            h = api.auth(name)
            task = api.client.post(f"/api/tasks/next?project_id={pid}", headers=h).json()["task"]
            assert task["item"]["external_id"] == "case-0"
            r = api.client.post(f"/api/tasks/{task['id']}/skip", headers=h, json={"reason": "motion, not diagnostic"})
            assert r.status_code == 200, r.text
        page.get_by_test_id("gold-case-2").click()
        expect(page.get_by_test_id("state-case-2")).to_have_text("gold")
        expect(page.get_by_test_id("state-case-0")).to_have_text("no eligible reader left")
        expect(page.get_by_test_id("state-case-1")).to_have_text("waiting")
        expect(page.get_by_test_id("stuck-summary")).to_contain_text("1 item nobody left can read (case-0)")
        expect(page.get_by_test_id("coverage-case-0")).to_contain_text("2")  # skipped twice
        expect(page.get_by_test_id("progress")).to_contain_text("alice")
        page.screenshot(path=str(shots / "04-coverage-gold-stuck.png"))
    cov = api.client.get(f"/api/projects/{pid}/coverage", headers=admin).json()
    by_id = {c["external_id"]: c for c in cov["items"]}
    assert (by_id["case-0"]["skipped"], by_id["case-0"]["open"], by_id["case-0"]["eligible_readers"]) == (2, 2, 0)
    assert by_id["case-1"]["eligible_readers"] == 2 and cov["stuck"] == 1


def test_templates_are_valid_and_a_manager_cannot_create_projects(tmp_path: Path) -> None:
    """Every shipped template loads into a schema the API accepts; creation stays a site admin's right."""
    from tests.annotation.conftest import make_client

    url = f"sqlite:///{tmp_path / 't.db'}"
    with make_client(url) as client:
        create_admin(url, "admin", PASSWORD)
        h = {"Authorization": f"Bearer {client.post('/api/auth/login', json={'username': 'admin', 'password': PASSWORD}).json()['token']}"}
        listed = client.get("/api/project-templates", headers=h).json()
        assert {t["id"] for t in listed} == {"chest_radiograph_triage", "ct_nodule_boxes", "brain_mr_lesion_masks",
                                             "quality_review", "algorithm_validation"}
        for t in listed:
            r = client.post(f"/api/project-templates/{t['id']}/projects", headers=h, json={"name": f"p-{t['id']}"})
            assert r.status_code == 201, r.text
            assert r.json()["kind"] == t["kind"] and r.json()["schema_version"] == 1
        assert client.post("/api/project-templates/nope/projects", headers=h, json={"name": "x"}).status_code == 404
        client.post("/api/users", headers=h, json={"username": "manny", "password": PASSWORD})
        pid = listed and client.get("/api/projects", headers=h).json()[0]["id"]
        client.post(f"/api/projects/{pid}/members", headers=h, json={"user_id": 2, "role": "manager"})
        m = {"Authorization": f"Bearer {client.post('/api/auth/login', json={'username': 'manny', 'password': PASSWORD}).json()['token']}"}
        assert client.post("/api/project-templates/quality_review/projects", headers=m, json={"name": "y"}).status_code == 403
