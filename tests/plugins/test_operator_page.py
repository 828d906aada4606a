"""The operator's page on a real Airflow API server (with the plugins folder, the simple auth manager,
a dag-processor and a LocalExecutor scheduler): Airflow lists the plugin and its views; nothing
answers without Airflow's login (401) or with a forged token (403); a logged-in operator gets the
page with the catalog's figures and no path of any file; a viewer may look but not re-admit; an
admin's re-admit starts curate_source through Airflow's REST API, the run curates the source and the
page shows it stage by stage. Then headless Chromium logs in through Airflow's own login page, opens
the page from the navigation and re-admits a file; screenshots go to test-artifacts/operator_page/."""
from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest
from pydicom.data import get_testdata_file
from sqlalchemy import select

from curation.catalog import Instance, LineageEvent, QuarantineRecord
from tests.annotation.conftest import free_port
from tests.dags.components import Airflow
from tests.status.world import World, build_world

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "operator_page"
CHROMIUM = "/usr/bin/chromium"
USERS = {"operator": ("admin", "op-pass-1"), "watcher": ("viewer", "view-pass-1")}
PAGE = "/curate-ops"

pytestmark = [pytest.mark.server, pytest.mark.slow]


@dataclass
class Server:
    url: str
    af: Airflow
    world: World
    env: dict[str, str]

    def token(self, user: str) -> str:
        answer = httpx.post(f"{self.url}/auth/token", json={"username": user, "password": USERS[user][1]}, timeout=30)
        assert answer.status_code in (200, 201), answer.text
        return answer.json()["access_token"]

    def get(self, path: str, token: str | None = None, **kw) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.get(f"{self.url}{path}", headers=headers, timeout=60, **kw)


@pytest.fixture(scope="module")
def server(tmp_path_factory, airflow_env) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("operator_page")
    home = tmp / "curate"
    home.mkdir()
    world = build_world(home, f"sqlite:///{home / 'catalog.sqlite'}")  # the store: home/store, as the tasks open it
    dags = tmp / "dags"
    dags.mkdir()
    (dags / "curate_source.py").symlink_to(REPO / "dags" / "curate_source.py")
    passwords = tmp / "passwords.json"
    passwords.write_text(json.dumps({user: pw for user, (_, pw) in USERS.items()}))
    port = free_port()
    env = dict(airflow_env, CURATE_HOME=str(home), AIRFLOW__CORE__DAGS_FOLDER=str(dags),
               AIRFLOW__CORE__PLUGINS_FOLDER=str(REPO / "plugins"), AIRFLOW__CORE__EXECUTOR="LocalExecutor",
               AIRFLOW__CORE__PARALLELISM="2", AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
               AIRFLOW__API__PORT=str(port), AIRFLOW__API__HOST="127.0.0.1",
               AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
               AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=",".join(f"{u}:{role}" for u, (role, _) in USERS.items()),
               AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords),
               AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="1")
    logs = tmp / "logs"
    logs.mkdir()
    af = Airflow(env, logs)
    try:
        af.start_scheduler(port, "curate_source", triggerer=False, timeout_s=180)
        url = f"http://127.0.0.1:{port}"
        af.wait_for("the API server", lambda: _answers(url), timeout_s=120)
        yield Server(url, af, world, env)
    finally:
        af.stop_all()
        world.catalog.dispose()


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/v2/monitor/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _paths(world: World) -> set[str]:
    """Every path inside a source the catalog holds (what the page must never show)."""
    with world.catalog.session() as s:
        return set(s.scalars(select(Instance.source_path))) | set(s.scalars(
            select(QuarantineRecord.file).where(QuarantineRecord.stage == "ingest")))


def test_airflow_lists_the_plugin_with_its_app_and_views(server):
    plugins = server.get("/api/v2/plugins", server.token("operator")).json()["plugins"]
    (ours,) = [p for p in plugins if p["name"] == "curate_operator_page"]
    assert [a["url_prefix"] for a in ours["fastapi_apps"]] == [PAGE]
    assert {(v["destination"], v["href"]) for v in ours["external_views"]} == {
        ("nav", f"{PAGE}/"), ("dag_run", f"{PAGE}/runs/{{RUN_ID}}?dag_id={{DAG_ID}}")}
    errors = server.get("/api/v2/importErrors", server.token("operator")).json()
    assert not [e for e in errors.get("import_errors", []) if "plugins" in e.get("filename", "")], errors


@pytest.mark.parametrize("path", [f"{PAGE}/", f"{PAGE}/api/status", f"{PAGE}/runs/x"])
def test_nothing_answers_without_airflows_login(server, path):
    assert server.get(path).status_code == 401
    forged = jwt.encode({"sub": "operator", "role": "admin"}, "not-the-secret" * 5, algorithm="HS512")
    assert server.get(path, forged).status_code == 403
    assert httpx.get(f"{server.url}{path}", cookies={"_token": forged}, timeout=30).status_code == 403
    readmit = httpx.post(f"{server.url}{PAGE}/api/quarantine/1/readmit", timeout=30)
    assert readmit.status_code == 401


def test_a_logged_in_operator_gets_the_page_without_phi(server):
    token = server.token("watcher")  # a viewer may look
    page = server.get(f"{PAGE}/", token)
    assert page.status_code == 200, page.text
    html = page.text
    assert "site north: 5 patients, 5 studies, 5 series" in " ".join(html.split())
    assert "pixel_text_left" in html and "truncated" in html and "chest-ct" in html
    with server.world.catalog.session() as s:
        shas = set(s.scalars(select(QuarantineRecord.sha256)))
    assert all(sha[:16] in html for sha in shas if sha)
    for path in _paths(server.world):
        assert path not in html, path
    status = server.get(f"{PAGE}/api/status", token).json()
    assert {s["site"] for s in status["sites"]} == {"north", "south"}
    assert json.dumps(status).count("truncated.dcm") == 0


def test_readmit_needs_permission_and_starts_curate_source_as_the_caller(server):
    with server.world.catalog.session() as s:
        qid, sha = s.execute(select(QuarantineRecord.id, QuarantineRecord.sha256)
                             .where(QuarantineRecord.reason_code == "truncated")).one()
    url = f"{server.url}{PAGE}/api/quarantine/{qid}/readmit"
    viewer = httpx.post(url, headers={"Authorization": f"Bearer {server.token('watcher')}"}, timeout=30)
    assert viewer.status_code == 403
    admin = server.token("operator")
    # the UI's cookie alone does not make a POST: a page on another site could send it
    assert httpx.post(url, cookies={"_token": admin}, timeout=30).status_code == 403
    assert httpx.post(f"{server.url}{PAGE}/api/quarantine/999999/readmit",
                      headers={"Authorization": f"Bearer {admin}"}, timeout=30).status_code == 404
    # the cause is fixed: the site sends the whole file again
    shutil.copy(get_testdata_file("CT_small.dcm"), server.world.source_root / "bad" / "truncated.dcm")
    started = httpx.post(url, headers={"Authorization": f"Bearer {admin}"}, timeout=60)
    assert started.status_code == 201, started.text
    answer = started.json()
    run_id = answer["dag_run_id"]
    assert answer["conf"] == {"source": str(server.world.source_root), "site": "north",
                              "readmit": {"quarantine_id": qid, "sha256": sha}}
    ((conf,),) = server.af.query("select conf from dag_run where run_id = ?", run_id)
    assert "truncated.dcm" not in str(conf)
    with server.world.catalog.session() as s:
        (ev,) = s.scalars(select(LineageEvent).where(LineageEvent.action == "readmit")).all()
        assert (ev.subject, ev.details["dag_run_id"]) == (f"quarantine:{qid}", run_id)
    state = server.af.wait_for("the re-admission run to finish", lambda: (server.af.query(
        "select state from dag_run where run_id = ? and state in ('success', 'failed')", run_id) or [None])[0],
        timeout_s=480)
    tis = dict(server.af.query("select task_id || ':' || map_index, state from task_instance where run_id = ?",
                               run_id))
    assert state == ("success",), tis
    # only that file was read; it is ingested now and its record resolved
    with server.world.catalog.session() as s:
        assert s.get(QuarantineRecord, qid).resolved_at is not None
    # the run, stage by stage, on the page and on its DAG-run tab
    token = server.token("operator")
    status = server.get(f"{PAGE}/api/status", token).json()
    (run,) = [r for r in status["runs"] if r["run_id"] == run_id]
    assert run["instances"] == 1 and run["instances_per_second"] > 0
    tasks = {t["task_id"]: t["states"] for t in run["tasks"]}
    assert tasks["ingest"] == {"success": 1} and tasks["deid"] == {"success": 1}
    one = server.get(f"{PAGE}/runs/{run_id}", token, params={"dag_id": "curate_source"})
    assert one.status_code == 200 and "quality" in one.text and "1 success" in one.text


def test_in_chromium_an_operator_logs_in_opens_the_page_and_readmits(server):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"browser test needs {CHROMIUM}")
    from playwright.sync_api import expect, sync_playwright

    with server.world.catalog.session() as s:
        qid = s.scalar(select(QuarantineRecord.id).where(QuarantineRecord.reason_code == "not_dicom"))
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    ARTIFACTS.mkdir(parents=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            context = browser.new_context(viewport={"width": 1500, "height": 1000})
            page = context.new_page()
            # not logged in: the page is refused
            assert page.goto(f"{server.url}{PAGE}/").status == 401
            # Airflow's own login page sets the UI's session cookie
            page.goto(f"{server.url}/")
            page.locator("input[name=username]").fill("operator")
            page.locator("input[name=password]").fill(USERS["operator"][1])
            page.locator("button[type=submit]").click()
            page.wait_for_url(lambda u: "/auth/login" not in u, timeout=60_000)
            # the plugin's entry in Airflow's navigation (under Browse) shows the page inside the UI
            page.get_by_role("button", name="Browse").click()
            page.get_by_role("menuitem", name="Curation").click()
            page.wait_for_url(f"{server.url}/plugin/curate-ops", timeout=30_000)
            frame = page.frame_locator("iframe")
            expect(frame.get_by_test_id("site-north")).to_be_visible(timeout=60_000)
            page.screenshot(path=ARTIFACTS / "01-in-airflow-ui.png", full_page=True)
            page.goto(f"{server.url}{PAGE}/")
            expect(page.get_by_test_id("site-north")).to_contain_text("5 patients")
            expect(page.get_by_test_id("quarantine-not_dicom")).to_be_visible()
            page.screenshot(path=ARTIFACTS / "02-operator-page.png", full_page=True)
            page.get_by_test_id(f"readmit-{qid}").click()
            expect(page.get_by_test_id(f"readmit-result-{qid}")).to_contain_text("started run", timeout=60_000)
            page.screenshot(path=ARTIFACTS / "03-readmitted.png", full_page=True)
            html = page.content()
            for path in _paths(server.world):
                assert path not in html, path
        finally:
            browser.close()
    assert sorted(p.name for p in ARTIFACTS.iterdir()) == ["01-in-airflow-ui.png", "02-operator-page.png",
                                                           "03-readmitted.png"]
