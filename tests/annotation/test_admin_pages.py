"""Point 10 of issue 17: the site admin's page in headless Debian Chromium: users with their site and
project roles, create, deactivate (the user can no longer sign in), reset a password (shown once,
sessions ended), add a project role, and the audit of logins (sessions and failed attempts).
Screenshots go to test-artifacts/annotation-manager/admin/."""
from __future__ import annotations

from pathlib import Path

import pytest

from annotation.admin import create_admin
from tests.annotation.test_manager import PASSWORD, Api, artifacts, require_browser_stack, sign_in, signed_in

pytestmark = [pytest.mark.server, pytest.mark.slow]


def test_admin_manages_users_and_reads_the_login_audit(live_server_factory, tmp_path: Path) -> None:
    require_browser_stack()
    from playwright.sync_api import expect

    server = live_server_factory()
    create_admin(server.database_url, "admin", PASSWORD)
    api = Api(server.url)
    admin = api.auth("admin")
    pid = api.client.post("/api/project-templates/chest_radiograph_triage/projects", headers=admin,
                          json={"name": "cxr-triage"}).json()["id"]
    api.user(admin, "bob")
    bob = api.auth("bob")  # a session bob holds; the reset must end it
    assert api.client.post("/api/auth/login", json={"username": "mallory", "password": "guess-guess-1"}).status_code == 401
    shots = artifacts("admin")
    with signed_in(server.url, "admin", {"width": 1400, "height": 1200}) as (browser, page):
        page.goto(f"{server.url}/#/manage/admin")
        page.get_by_test_id("users").wait_for()
        # --- the audit: bob's login and the failed attempt for an unknown name
        expect(page.get_by_test_id("login-sessions")).to_contain_text("bob")
        expect(page.get_by_test_id("login-failures")).to_contain_text("mallory")
        page.screenshot(path=str(shots / "01-users-and-logins.png"))
        # --- a new user, given a project role from this page
        page.get_by_test_id("new-user-name").fill("carol")
        page.get_by_test_id("new-user-display").fill("Dr Carol")
        page.get_by_test_id("new-user-password").fill(PASSWORD)
        page.get_by_test_id("new-user-create").click()
        page.get_by_test_id("user-carol").wait_for()
        page.get_by_test_id("role-project-carol").select_option(str(pid))
        page.get_by_test_id("role-name-carol").select_option("reviewer")
        page.get_by_test_id("add-role-carol").click()
        expect(page.get_by_test_id("user-carol")).to_contain_text("cxr-triage: reviewer")
        # --- reset bob's password: shown once, his session ends, the new one works
        page.get_by_test_id("reset-bob").click()
        expect(page.get_by_test_id("reset-password")).to_contain_text("New password for bob")
        new_password = page.get_by_test_id("reset-password").inner_text().rsplit(": ", 1)[1]
        assert api.client.get("/api/auth/me", headers=bob).status_code == 401
        api.auth("bob", new_password)
        # --- deactivate carol: she can no longer sign in; reactivate
        page.get_by_test_id("toggle-active-carol").click()
        expect(page.get_by_test_id("user-active-carol")).to_have_text("deactivated")
        assert api.client.post("/api/auth/login", json={"username": "carol", "password": PASSWORD}).status_code == 401
        page.screenshot(path=str(shots / "02-reset-deactivate-role.png"))
        page.get_by_test_id("toggle-active-carol").click()
        expect(page.get_by_test_id("user-active-carol")).to_have_text("active")
        api.auth("carol")
        # --- the admin cannot deactivate themselves (no button), and a non-admin sees no admin page
        expect(page.get_by_test_id("toggle-active-admin")).to_have_count(0)
        reader = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        sign_in(reader, server.url, "carol")
        reader.goto(f"{server.url}/#/manage/admin")
        expect(reader.get_by_test_id("page-error")).to_contain_text("site admins")
    assert api.client.get("/api/admin/users", headers=api.auth("carol")).status_code == 403
