"""Point 14 of issue 17: what an external expert's browser moves. The viewer's hashed assets are
gzip-compressed and immutable for a year; DICOM objects, frames and JSON are gzip-compressed
(deflate) on the way out; nothing changes in what the client decodes.

The throttled measurement (Chromium CDP Network.emulateNetworkConditions, 20 Mbit/s, 40 ms) records
bytes and seconds of the first case (cold cache) and the next one, with compression off and on (and
on, unthrottled: what the machine's CPU costs by itself), in
test-artifacts/annotation-manager/transfer.json; it asserts bytes only (timings belong to benchmarks)."""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path


from annotation.admin import create_admin
from annotation.config import WEB_DIST
from tests.annotation import dicomgen
from tests.annotation.conftest import make_client
from tests.annotation.test_manager import ARTIFACTS, PASSWORD, Api, launch, require_browser_stack, sign_in
from tests.annotation.world import build_world

SLICES = 4
LINK = {"offline": False, "latency": 40, "downloadThroughput": 20e6 / 8, "uploadThroughput": 20e6 / 8}


def _biggest_asset() -> Path:
    return max((WEB_DIST / "assets").glob("*.js"), key=lambda p: p.stat().st_size)


def test_assets_are_gzipped_once_and_immutable(tmp_path: Path) -> None:
    require_browser_stack()
    asset = _biggest_asset()
    with make_client(f"sqlite:///{tmp_path / 'a.db'}") as client:
        r = client.get(f"/assets/{asset.name}", headers={"Accept-Encoding": "gzip"})
        assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert int(r.headers["content-length"]) < asset.stat().st_size / 3  # 4.4 MB of JavaScript: about 1 MB
        assert r.content == asset.read_bytes()  # httpx decoded it: the same file
        plain = client.get(f"/assets/{asset.name}", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers and plain.content == asset.read_bytes()
        again = client.get(f"/assets/{asset.name}", headers={"If-None-Match": r.headers["etag"]})
        assert again.status_code == 304 and not again.content
        for missing in ("/assets/nope.js", "/assets/..%2F..%2Fconfig.py", "/assets/.hidden"):
            assert client.get(missing).status_code == 404
        index = client.get("/")
        assert index.headers["cache-control"] == "no-cache"  # index.html names the current hashes
        preload = index.headers["link"].split(">")[0].lstrip("<")  # the viewer chunk, fetched with the page
        assert preload.startswith("/assets/viewer-") and client.get(preload).status_code == 200
        for link in index.headers["link"].split(", "):  # and the chunks it imports (Cornerstone's core, shared)
            assert link.endswith("; rel=modulepreload") and client.get(link.split(">")[0].lstrip("<")).status_code == 200


def test_assets_are_sent_brotli_to_browsers_that_accept_it(tmp_path: Path) -> None:
    """The build leaves NAME.br beside each asset (vite.config.js); br is preferred over gzip where
    accepted, decodes to the very file, and the .br files are not served under their own names."""
    require_browser_stack()
    asset = _biggest_asset()
    packed = asset.with_name(asset.name + ".br")
    assert packed.is_file(), "viewer built without brotli files: rebuild (annotation/install.sh)"
    with make_client(f"sqlite:///{tmp_path / 'b.db'}") as client:
        r = client.get(f"/assets/{asset.name}", headers={"Accept-Encoding": "gzip, deflate, br"})
        assert r.headers["content-encoding"] == "br" and r.headers["cache-control"] == "public, max-age=31536000, immutable"
        body = r.read() if r.content == packed.read_bytes() else r.content  # httpx decodes br only with brotli installed
        gz = client.get(f"/assets/{asset.name}", headers={"Accept-Encoding": "gzip"})
        assert gz.headers["content-encoding"] == "gzip"
        assert int(r.headers["content-length"]) < int(gz.headers["content-length"])  # Brotli 11 beats gzip 9 on the viewer's JS
        assert client.get(f"/assets/{packed.name}").status_code == 404
    decoded = subprocess.run(["node", "-e", "process.stdout.write(require('zlib').brotliDecompressSync(require('fs').readFileSync(0)))"],
                             input=packed.read_bytes(), capture_output=True, check=True).stdout
    assert decoded == asset.read_bytes() and len(body) > 0


def test_dicom_objects_and_frames_are_deflated(tmp_path: Path, store_root: Path) -> None:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    paths = {}
    for compress in (False, True):
        with make_client(url, compress=compress) as client:
            if not compress:
                w = build_world(client, url, store_root, readers=1, verification=0, n_items=1)
            for what in ("file", "frames/0"):
                r = client.get(f"/api/items/{w.items[0]}/instances/0/{what}", headers={**w.h("manager"), "Accept-Encoding": "gzip"})
                assert r.status_code == 200
                assert r.headers.get("content-encoding") == ("gzip" if compress else None), what
                paths[(what, compress)] = (r.content, r.num_bytes_downloaded)
    for what in ("file", "frames/0"):
        (plain, plain_bytes), (packed, packed_bytes) = paths[(what, False)], paths[(what, True)]
        assert packed == plain  # decoded by the client: the same bytes
        assert packed_bytes < plain_bytes


def _measure(api: Api, base: str, browser, shots: Path, label: str, link: dict | None = LINK) -> dict:
    """Seconds and bytes on the link (None: unthrottled): the first case with a cold cache, then the
    next case as a reader gets it: Submit clicked in the viewer until the next image is drawn, after
    the viewer has prefetched that case while the first one was read."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    login = context.new_page()
    sign_in(login, base, "expert")
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Performance.enable")
    urls: dict[str, str] = {}
    moved: dict[str, int] = {}
    encodings: dict[str, str] = {}

    def sent(e: dict) -> None:
        urls[e["requestId"]] = e["request"]["url"]

    def answered(e: dict) -> None:
        if "/assets/viewer-" in e["response"]["url"]:
            headers = {k.lower(): v for k, v in e["response"]["headers"].items()}
            encodings["viewer_js"] = headers.get("content-encoding", "identity")
            request = {k.lower(): v for k, v in (e["response"].get("requestHeaders") or {}).items()}
            encodings["accept_encoding"] = request.get("accept-encoding", "")

    cdp.on("Network.requestWillBeSent", sent)
    cdp.on("Network.responseReceived", answered)
    cdp.on("Network.loadingFinished", lambda e: moved.__setitem__(e["requestId"], e["encodedDataLength"]))
    cdp.send("Network.clearBrowserCache")
    if link is not None:
        cdp.send("Network.emulateNetworkConditions", link)

    def busy() -> float:
        """Seconds the page's main thread has run tasks (CPU of the renderer, not waiting on the link)."""
        return next(m["value"] for m in cdp.send("Performance.getMetrics")["metrics"] if m["name"] == "TaskDuration")

    def case(go, shown: str) -> dict:
        urls.clear()
        moved.clear()
        cpu = busy()
        start = time.perf_counter()
        go()
        page.wait_for_selector(shown, timeout=120_000)
        seconds = time.perf_counter() - start
        cpu = busy() - cpu
        quiet = 0
        for _ in range(300):  # the case's other slices load after the first is shown: count the whole case
            dicom = [rid for rid in urls if "/instances/" in urls[rid]]
            if len([rid for rid in dicom if rid in moved]) >= SLICES:
                break
            quiet = quiet + 1 if all(rid in moved for rid in dicom) else 0
            if quiet >= 10:  # nothing in flight for a second: the rest came from the viewer's cache
                break
            page.wait_for_timeout(100)
        by_kind = {"assets": 0, "dicom": 0, "other": 0}
        for rid, n in moved.items():
            url = urls.get(rid, "")
            kind = "assets" if "/assets/" in url or url.rstrip("/") == base else "dicom" if "/instances/" in url else "other"
            by_kind[kind] += n
        return {"seconds": round(seconds, 3), "main_thread_busy_s": round(cpu, 3), "bytes": sum(by_kind.values()),
                "dicom_requested_twice": len(dicom) - len({urls[rid] for rid in dicom}),
                **{f"{k}_bytes": v for k, v in by_kind.items()}}

    first = case(lambda: page.goto(f"{base}/#/task"), "[data-testid=viewport][data-loaded=true]")
    page.screenshot(path=str(shots / f"{label}-first-case.png"))
    first_id = page.get_by_test_id("task-id").text_content()
    start = time.perf_counter()
    page.wait_for_selector("[data-testid=viewport][data-prefetched]", timeout=120_000)  # the reader reads meanwhile
    prefetch_s = time.perf_counter() - start
    page.get_by_test_id("label-finding-no").click()
    page.get_by_test_id("label-finding-conf-80").click()
    following = case(lambda: page.get_by_test_id("submit").click(),
                     "[data-testid=viewport][data-loaded=true]:not([data-prefetched])")  # the new case's viewport
    assert page.get_by_test_id("task-id").text_content() != first_id
    page.screenshot(path=str(shots / f"{label}-next-case.png"))
    context.close()
    return {"first_case": first, "next_case": following, "prefetch_wait_s": round(prefetch_s, 3), **encodings}


def test_first_and_next_case_on_a_throttled_link(live_server_factory, tmp_path: Path) -> None:
    require_browser_stack()
    from playwright.sync_api import sync_playwright

    store = tmp_path / "store"
    cases = [dicomgen.write_series(store / "deid" / f"ct{n}", SLICES, rows=512, cols=512, seed=70 + n) for n in range(2)]
    shots = ARTIFACTS / "transfer"
    shots.mkdir(parents=True, exist_ok=True)
    figures: dict[str, dict] = {}
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            for compress, link in (("0", LINK), ("1", LINK), ("1", None)):
                server = live_server_factory(env={"ANNOTATION_STORE_URI": str(store), "ANNOTATION_COMPRESS": compress})
                create_admin(server.database_url, "admin", PASSWORD)
                api = Api(server.url)
                admin = api.auth("admin")
                pid = api.client.post("/api/projects", headers=admin, json={
                    "name": "ct-read", "readers_per_item": 1,
                    "schema": {"labels": [{"id": "finding", "name": "Finding", "kind": "boolean"}]}}).json()["id"]
                uid = api.user(admin, "expert")
                api.client.post(f"/api/projects/{pid}/members", headers=admin, json={"user_id": uid, "role": "annotator"})
                r = api.client.post(f"/api/projects/{pid}/items", headers=admin, json={"items": [
                    {"external_id": f"ct-{n}", "uris": [p.as_uri() for p in paths], "modality": "CT"} for n, paths in enumerate(cases)]})
                assert r.status_code == 201, r.text
                label = ("compressed" if compress == "1" else "uncompressed") + ("" if link else "-unthrottled")
                figures[label] = _measure(api, server.url, browser, shots, label, link)
        finally:
            browser.close()
    figures["link"] = {"mbit_s": 20, "latency_ms": 40, "dicom_bytes_on_disk": sum(p.stat().st_size for p in cases[0]),
                       "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}
    (ARTIFACTS / "transfer.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
    before, after = figures["uncompressed"], figures["compressed"]
    assert after["first_case"]["assets_bytes"] < before["first_case"]["assets_bytes"] / 2.5
    assert after["first_case"]["dicom_bytes"] < before["first_case"]["dicom_bytes"]
    assert after["next_case"]["assets_bytes"] < 20_000  # immutable assets come from the cache: no viewer JS again
    for run in (before, after):  # prefetched while the first case was read: the next one moves no DICOM
        assert run["next_case"]["dicom_bytes"] == 0, run
        # the first slice, fetched by the page while the viewer's code loads, is handed to the viewer's
        # loader: no DICOM object crosses the link twice
        assert run["first_case"]["dicom_requested_twice"] == 0, run
