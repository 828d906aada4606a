"""De-identified PNG images and NIfTI volumes (deid zone `images/<h>/<h>.png`, `volumes/<h>/<h>.nii.gz`,
written by the pipeline's own de-identifier) registered as items and served like DICOM: the file
endpoint gives a DICOM object the viewer decodes, the frame endpoint the file's pixel values, a
volume as axial slices in LPS display orientation with its spacing, geometry and window."""
from __future__ import annotations

import gzip
import io
import json
import zipfile
from pathlib import Path

import highdicom as hd
import httpx
import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image

from deid.filemeta import deidentify_file
from tests.annotation.conftest import make_client
from tests.annotation.world import build_world, ok


def _deid_zone_file(store: Path, data: bytes, fmt: str) -> Path:
    """De-identify ``data`` as the pipeline does and place it where the deid stage writes it."""
    r = deidentify_file(data, fmt, ["Doe_John_12345678" + (".nii.gz" if fmt == "nifti" else ".png")])
    assert r.status == "written", r.reason
    folder = store / "deid" / ("volumes" if fmt == "nifti" else "images") / r.name.split(".", 1)[0]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / r.name).write_bytes(r.data)
    return folder / r.name


def _png(arr: np.ndarray) -> bytes:
    b = io.BytesIO()
    Image.fromarray(arr).save(b, format="PNG")
    return b.getvalue()


def _pictures() -> dict[str, np.ndarray]:
    yy, xx = np.mgrid[0:96, 0:128]
    blob = np.exp(-((yy - 48) ** 2 + (xx - 64) ** 2) / 800)
    return {"grey8": (60 + 100 * blob).astype(np.uint8),
            "grey16": (300 + 3000 * blob).astype(np.uint16),
            "rgb": np.dstack([(xx * 2).astype(np.uint8), (yy * 2).astype(np.uint8), np.full(xx.shape, 90, np.uint8)])}


def _volume() -> nib.Nifti1Image:
    """A CT-like volume stored x -> patient's left, y -> anterior, slices inferior -> superior
    (a 'LAS' file): serving it needs a flip of the rows but not of the columns."""
    x, y, z = np.indices((24, 20, 8))
    data = (x * 37 + y * 11 + z * 101 - 500).astype(np.int16)
    affine = np.array([[-1.2, 0, 0, 5.0], [0, 1.1, 0, -7.0], [0, 0, 3.0, 9.0], [0, 0, 0, 1]])
    img = nib.Nifti1Image(data, affine)
    img.header["descrip"] = b"Doe John"
    return img


def _frame(client, item: int, h: dict, frame: int = 0) -> tuple[np.ndarray, dict]:
    r = client.get(f"/api/items/{item}/instances/0/frames/{frame}", headers=h)
    assert r.status_code == 200, r.text[:300]
    shape = (int(r.headers["x-rows"]), int(r.headers["x-columns"]))
    spp = int(r.headers["x-samples-per-pixel"])
    arr = np.frombuffer(r.content, dtype=r.headers["x-dtype"]).reshape(shape + ((spp,) if spp > 1 else ()))
    return arr, r.headers


def test_png_items_are_served_as_single_frames_with_their_pixels(tmp_path: Path, store_root: Path) -> None:
    pictures = _pictures()
    paths = {k: _deid_zone_file(tmp_path / "store", _png(a), "png") for k, a in pictures.items()}
    url = f"sqlite:///{tmp_path / 'f.db'}"
    with make_client(url) as client:
        w = build_world(client, url, store_root, n_items=1)
        h = w.h("manager")
        items = [{"external_id": f"png-{k}", "uris": [p.as_uri()], "modality": "DX"} for k, p in paths.items()]
        created = dict(zip(paths, ok(client.post(f"/api/projects/{w.project_id}/items", headers=w.h("data_owner"),
                                                  json={"items": items}), 201)["created"]))
        for kind, arr in pictures.items():
            item = ok(client.get(f"/api/items/{created[kind]}", headers=h))
            inst = item["instances"][0]
            assert (inst["frames"], inst["rows"], inst["columns"]) == (1, 96, 128)
            served, headers = _frame(client, created[kind], h)
            assert served.dtype == arr.dtype and np.array_equal(served, arr), kind
            f = client.get(f"/api/items/{created[kind]}/instances/0/file", headers=h)
            assert f.status_code == 200 and f.headers["content-type"] == "application/dicom"
            ds = pydicom.dcmread(io.BytesIO(f.content))
            assert np.array_equal(ds.pixel_array, arr) and ds.SOPInstanceUID == inst["sop_instance_uid"]
            assert b"Doe" not in f.content and b"12345678" not in f.content
            if kind == "rgb":
                assert ds.PhotometricInterpretation == "RGB" and headers["x-samples-per-pixel"] == "3"
            else:  # the window shows the file as it displays (8-bit) or the values present (16-bit)
                lo, hi = (0, 255) if kind == "grey8" else (int(arr.min()), int(arr.max()))
                c, ww = float(headers["x-window-center"]), float(headers["x-window-width"])
                assert (c - 0.5 - (ww - 1) / 2, c - 0.5 + (ww - 1) / 2) == (lo, hi), kind
        # the same bytes always give the same UIDs (exports keep referencing them after a restart)
        again = pydicom.dcmread(io.BytesIO(client.get(f"/api/items/{created['grey8']}/instances/0/file", headers=h).content))
        assert again.SOPInstanceUID == ok(client.get(f"/api/items/{created['grey8']}", headers=h))["instances"][0]["sop_instance_uid"]


def test_nifti_item_is_served_as_axial_slices_in_lps_orientation(tmp_path: Path, store_root: Path) -> None:
    img = _volume()
    path = _deid_zone_file(tmp_path / "store", gzip.compress(img.to_bytes()), "nifti")
    # expected, by another route: nibabel's RAS canonical form, flipped to LPS
    ras = nib.as_closest_canonical(img)
    lps = np.asanyarray(ras.dataobj)[::-1, ::-1, :]
    url = f"sqlite:///{tmp_path / 'n.db'}"
    with make_client(url) as client:
        w = build_world(client, url, store_root, n_items=1)
        h = w.h("manager")
        item_id = ok(client.post(f"/api/projects/{w.project_id}/items", headers=w.h("data_owner"), json={"items": [
            {"external_id": "vol-1", "uris": [path.as_uri()], "modality": "CT"}]}), 201)["created"][0]
        inst = ok(client.get(f"/api/items/{item_id}", headers=h))["instances"][0]
        assert (inst["frames"], inst["rows"], inst["columns"]) == (8, 20, 24)
        for k in (0, 3, 7):
            served, headers = _frame(client, item_id, h, k)
            real = served * float(headers["x-rescale-slope"]) + float(headers["x-rescale-intercept"])
            assert np.array_equal(real, lps[:, :, k].T), k  # rows: anterior -> posterior; columns: right -> left
        assert client.get(f"/api/items/{item_id}/instances/0/frames/8", headers=h).status_code == 404
        ds = pydicom.dcmread(io.BytesIO(client.get(f"/api/items/{item_id}/instances/0/file", headers=h).content))
        assert [float(v) for v in ds.PixelSpacing] == pytest.approx([1.1, 1.2]) and float(ds.SliceThickness) == pytest.approx(3.0)
        assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        # the first pixel of the first slice: voxel (0, 19, 0) of the file, at RAS (5, -7 + 19 * 1.1, 9)
        assert [float(v) for v in ds.ImagePositionPatient] == pytest.approx([-5.0, 7.0 - 19 * 1.1, 9.0])
        lo, hi = float(ds.WindowCenter) - float(ds.WindowWidth) / 2, float(ds.WindowCenter) + float(ds.WindowWidth) / 2
        assert np.percentile(lps, 0.5) == pytest.approx(lo, abs=1) and np.percentile(lps, 99.5) == pytest.approx(hi, abs=1)
        assert b"Doe" not in ds.PixelData and "Doe" not in str(ds)


def test_image_items_keep_the_zone_rules(tmp_path: Path, store_root: Path) -> None:
    """A PNG or NIfTI in the raw zone is refused as a DICOM one is; unreadable bytes are a 422."""
    pictures = _pictures()
    raw = tmp_path / "store" / "raw" / "a.png"
    raw.parent.mkdir(parents=True)
    raw.write_bytes(_png(pictures["grey8"]))
    broken = tmp_path / "store" / "deid" / "images" / "x" / "x.png"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(_png(pictures["grey8"])[:60])
    url = f"sqlite:///{tmp_path / 'z.db'}"
    with make_client(url) as client:
        w = build_world(client, url, store_root, n_items=1)
        for uri, words in ((raw.as_uri(), "raw zone"), (broken.as_uri(), "not a readable PNG")):
            r = client.post(f"/api/projects/{w.project_id}/items", headers=w.h("data_owner"),
                            json={"items": [{"external_id": "bad", "uris": [uri]}]})
            assert r.status_code == 422 and words in r.text, r.text


def test_image_readings_export_as_sr_and_seg_on_the_served_objects(tmp_path: Path, store_root: Path) -> None:
    """A box drawn on a PNG and on a slice of a NIfTI volume exports as TID 1500 SR and DICOM SEG
    referencing the served objects (the same UIDs the viewer showed)."""
    png = _deid_zone_file(tmp_path / "store", _png(_pictures()["grey16"]), "png")
    vol = _deid_zone_file(tmp_path / "store", gzip.compress(_volume().to_bytes()), "nifti")
    url = f"sqlite:///{tmp_path / 'x.db'}"
    with make_client(url) as client:
        w = build_world(client, url, store_root, readers=1, verification=0, n_items=1)
        ok(client.post(f"/api/projects/{w.project_id}/items", headers=w.h("data_owner"), json={"items": [
            {"external_id": "png", "uris": [png.as_uri()], "priority": 9},
            {"external_id": "vol", "uris": [vol.as_uri()], "priority": 8}]}), 201)
        boxes = {}
        for frame in (0, 2):
            t = ok(client.post(f"/api/tasks/next?project_id={w.project_id}", headers=w.h("junior")))["task"]
            assert t["item"]["external_id"] == ("png" if frame == 0 else "vol")
            boxes[t["item"]["instances"][0]["sop_instance_uid"]] = frame
            ok(client.post(f"/api/tasks/{t['id']}/submit", headers=w.h("junior"), json={
                "labels": [{"label": "nodule", "value": True, "confidence": 80}],
                "rois": [{"label": "lesion_box", "kind": "box", "instance": 0, "frame": frame, "points": [[3, 4], [9, 8]]}],
                "active_ms": 1000, "idle_ms": 0}))
        seg_zip = zipfile.ZipFile(io.BytesIO(client.get(f"/api/projects/{w.project_id}/export/seg", headers=w.h("manager")).content))
        manifest = json.loads(seg_zip.read("manifest.json"))
        assert manifest["skipped"] == [] and len(manifest["files"]) == 2, manifest
        for entry in manifest["files"]:
            seg = hd.seg.Segmentation.from_dataset(pydicom.dcmread(io.BytesIO(seg_zip.read(entry["file"]))))
            (uid,) = {r.ReferencedSOPInstanceUID for se in seg.ReferencedSeriesSequence for r in se.ReferencedInstanceSequence}
            assert uid in boxes
            frames = [f for f in seg.PerFrameFunctionalGroupsSequence]
            assert len(frames) == 1 and int(frames[0].DerivationImageSequence[0].SourceImageSequence[0]
                                            .get("ReferencedFrameNumber", 1)) == boxes[uid] + 1
            assert seg.pixel_array.sum() == 7 * 5  # the [3,4]-[9,8] box, inclusive pixel edges
        sr_zip = zipfile.ZipFile(io.BytesIO(client.get(f"/api/projects/{w.project_id}/export/sr", headers=w.h("manager")).content))
        sr_manifest = json.loads(sr_zip.read("manifest.json"))
        assert sr_manifest["skipped"] == [] and len(sr_manifest["files"]) == 2
        for entry in sr_manifest["files"]:
            sr = pydicom.dcmread(io.BytesIO(sr_zip.read(entry["file"])))
            evidence = {r.ReferencedSOPInstanceUID for s in sr.CurrentRequestedProcedureEvidenceSequence
                        for se in s.ReferencedSeriesSequence for r in se.ReferencedSOPSequence}
            assert len(evidence) == 1 and evidence <= set(boxes)


@pytest.mark.server
@pytest.mark.slow
def test_viewer_opens_png_and_nifti_items(live_server_factory, tmp_path: Path) -> None:
    """Headless Chromium: readers open a grey PNG item (its window is the file's 0-255), an RGB PNG
    item and a NIfTI item (8 slices that scroll) in the viewer, without a console error."""
    from playwright.sync_api import expect, sync_playwright

    from annotation.admin import create_admin
    from tests.annotation.test_browser import ARTIFACTS, CHROMIUM, PASSWORD, SCHEMA, _login, _require_browser_stack

    _require_browser_stack()
    yy, xx = np.mgrid[0:256, 0:256]
    picture = (30 + 200 * np.exp(-((yy - 128) ** 2 + (xx - 100) ** 2) / 2000)).astype(np.uint8)
    png = _deid_zone_file(tmp_path / "store", _png(picture), "png")
    rgb = _deid_zone_file(tmp_path / "store", _png(_pictures()["rgb"]), "png")
    vol = _deid_zone_file(tmp_path / "store", gzip.compress(_volume().to_bytes()), "nifti")
    server = live_server_factory()
    create_admin(server.database_url, "admin", PASSWORD)
    c = httpx.Client(base_url=server.url, timeout=30)

    def auth(user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {c.post('/api/auth/login', json={'username': user, 'password': PASSWORD}).json()['token']}"}

    admin = auth("admin")
    pid = c.post("/api/projects", headers=admin, json={"name": "formats", "readers_per_item": 1, "schema": SCHEMA}).json()["id"]
    readers = ("reader1", "reader2", "reader3")
    for name in readers:
        uid = c.post("/api/users", headers=admin, json={"username": name, "password": PASSWORD}).json()["id"]
        assert c.post(f"/api/projects/{pid}/members", headers=admin,
                      json={"user_id": uid, "role": "annotator", "level": "senior"}).status_code == 201
    r = c.post(f"/api/projects/{pid}/items", headers=admin, json={"items": [
        {"external_id": "png", "uris": [png.as_uri()], "priority": 9}, {"external_id": "rgb", "uris": [rgb.as_uri()], "priority": 8},
        {"external_id": "vol", "uris": [vol.as_uri()]}]})
    assert r.status_code == 201, r.text
    tasks = {name: c.post(f"/api/tasks/next?project_id={pid}", headers=auth(name)).json()["task"] for name in readers}
    assert [tasks[n]["item"]["external_id"] for n in readers] == ["png", "rgb", "vol"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            for name in readers:
                page = browser.new_context(viewport={"width": 1200, "height": 800}).new_page()
                page.on("console", lambda m: errors.append(m.text)
                        if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.on("response", lambda r: errors.append(f"HTTP {r.status} {r.url}")
                        if r.status >= 400 and not (r.status == 401 and r.url.endswith("/api/auth/me")) else None)
                _login(page, server.url, name)
                page.goto(f"{server.url}/#/task?id={tasks[name]['id']}")
                page.wait_for_selector("[data-testid=viewport][data-loaded=true]", timeout=60000)
                shot = page.get_by_test_id("viewport").screenshot(path=ARTIFACTS / f"formats-{name}.png")
                shown = np.asarray(Image.open(io.BytesIO(shot)).convert("L"), dtype=float)
                assert shown.std() > 10, "the image is drawn, not a blank viewport"
                voi = page.get_by_test_id("voi")
                if name == "reader1":  # the 8-bit picture's window: 0 black, 255 white
                    assert (round(float(voi.get_attribute("data-ww"))), round(float(voi.get_attribute("data-wc")))) == (256, 128)
                elif name == "reader3":
                    expect(page.get_by_test_id("slice")).to_have_text("image 1/8")
                    page.get_by_test_id("slice-next").click()
                    expect(page.get_by_test_id("slice")).to_have_attribute("data-index", "1")
        finally:
            browser.close()
    assert not [e for e in errors if "favicon" not in e], errors
