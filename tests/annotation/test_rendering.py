"""Images are right in every view: the rendered canvas pixels, read back from headless Chromium,
equal a reference rendering computed here from pydicom's pixel data (modality LUT, the same window as
the view reports, colour conversion, palette), for every photometric interpretation, bit depth and
sign, multi-frame objects and rescale slope/intercept, in the reading viewer (Cornerstone, at 1:1,
before and after Reset), the discrepancy view and its thumbnails. Objects come from pydicom's bundled
test files (data this project did not make) and from tests/annotation/dicomgen.py. Slices of a series
registered out of order are shown in anatomical order, with warnings on gaps. Screenshots and a table of
the largest differences go to test-artifacts/annotation/rendering/."""
from __future__ import annotations

import base64
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest
from pydicom import Dataset
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, convert_color_space, pixel_array

from annotation.admin import create_admin
from tests.annotation import dicomgen
from tests.annotation.conftest import ROOT
from tests.annotation.test_browser import _login, _require_browser_stack, launch, watched_page

ARTIFACTS = ROOT / "test-artifacts" / "annotation" / "rendering"
PASSWORD = "correct-horse-battery"
SCHEMA = {"labels": [{"id": "seen", "name": "Image seen", "kind": "boolean"}]}
# Cornerstone renders through WebGL (SwiftShader here): its float VOI may round one level away from
# the reference; the plain-canvas views compute in JS doubles and must match to the rounding (1).
TOLERANCE = {"reading": 2, "discrepancy": 1, "thumbnail": 1}

pytestmark = [pytest.mark.server, pytest.mark.slow]


def bundled(name: str) -> Path:
    path = get_testdata_file(name)
    assert path, f"pydicom's bundled test file {name} is missing"
    return Path(path)


def cases(store: Path) -> dict[str, Path]:
    """Objects of every kind in the store's deid zone (the service reads only de-identified zones)."""
    deid = store / "deid" / "rendering"
    gen = {
        "mono1-u12-cr": lambda p: dicomgen.write_greyscale(p, photometric="MONOCHROME1", bits_stored=12, window=(2048, 3000)),
        "mono2-u8": lambda p: dicomgen.write_greyscale(p, bits_stored=8),
        "mono2-s8": lambda p: dicomgen.write_greyscale(p, bits_stored=8, signed=True, window=(0, 200)),
        "mono2-u12": lambda p: dicomgen.write_greyscale(p, bits_stored=12, window=(1800, 2500)),
        "mono2-s12-rescale": lambda p: dicomgen.write_greyscale(p, bits_stored=12, signed=True, slope=2.0, intercept=-50.0),
        "mono2-u16": lambda p: dicomgen.write_greyscale(p, bits_stored=16),
        "mono2-s16-rescale": lambda p: dicomgen.write_greyscale(p, bits_stored=16, signed=True, slope=0.5, intercept=-1024,
                                                                window=(-1024, 20000)),
        "mono2-u16-multiframe": lambda p: dicomgen.write_greyscale(p, bits_stored=16, frames=3, window=(30000, 50000)),
        "rgb": lambda p: dicomgen.write_colour(p),
        "ybr-full": lambda p: dicomgen.write_colour(p, photometric="YBR_FULL"),
        "ybr-full-422": lambda p: dicomgen.write_colour(p, photometric="YBR_FULL_422"),
        "palette-8": lambda p: dicomgen.write_colour(p, photometric="PALETTE COLOR"),
        "palette-16": lambda p: dicomgen.write_colour(p, photometric="PALETTE COLOR", palette_bits=16),
        "rgb-multiframe": lambda p: dicomgen.write_colour(p, frames=2),
    }
    out = {name: make(deid / f"{name}.dcm") for name, make in gen.items()}
    for name, source in {
        "pydicom-MR_small": "MR_small.dcm",  # MR, 16-bit signed, window 600/1600
        "pydicom-CT_small": "CT_small.dcm",  # CT, rescale intercept -1024, no window
        "pydicom-CR-mono1": str(Path("dicomdirtests", "77654033", "CR1", "6154")),  # MONOCHROME1 CR, 12-bit
        "pydicom-US-rgb": "examples_rgb_color.dcm",  # colour ultrasound, RGB
        "pydicom-SC-ybr422": "SC_ybr_full_422_uncompressed.dcm",
        "pydicom-palette": "examples_palette.dcm",
        "pydicom-rgb-rle-2frame": "SC_rgb_rle_2frame.dcm",
    }.items():
        src = bundled(source) if "/" not in source else Path(pydicom.data.__file__).parent / "test_files" / source
        target = deid / f"{name}.dcm"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
        out[name] = target
    return out


def frames_of(ds: Dataset) -> int:
    return int(getattr(ds, "NumberOfFrames", 1) or 1)


def reference(ds: Dataset, frame: int, wc: float, ww: float) -> np.ndarray:
    """RGB uint8 rendering computed with pydicom alone: modality LUT, linear window (LINEAR_EXACT:
    lower = wc - ww/2 to 0, upper to 255), MONOCHROME1 inverted; colour converted to RGB."""
    photometric = ds.PhotometricInterpretation
    raw = pixel_array(ds, raw=True)  # no colour conversion: done here explicitly
    if frames_of(ds) > 1:
        raw = raw[frame]
    window = Dataset()
    window.PhotometricInterpretation, window.BitsStored, window.PixelRepresentation = "MONOCHROME2", 8, 0
    window.WindowCenter, window.WindowWidth, window.VOILUTFunction = wc, ww, "LINEAR_EXACT"
    if ds.SamplesPerPixel == 1 and photometric != "PALETTE COLOR":
        values = apply_voi_lut(apply_modality_lut(raw, ds).astype(np.float64), window)
        if photometric == "MONOCHROME1":
            values = 255 - values
        return np.repeat(values[..., None], 3, axis=2)
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(raw, ds).astype(np.int64)
        entries = np.frombuffer(ds.RedPaletteColorLookupTableData, dtype="<u2")
        if int(ds.RedPaletteColorLookupTableDescriptor[2]) > 8 and entries.max() > 255:
            rgb >>= 8
    elif photometric.startswith("YBR"):
        rgb = convert_color_space(raw, "YBR_FULL", "RGB")  # 4:2:2 arrives upsampled from pydicom
    else:
        rgb = raw
        if int(ds.BitsStored) > 8:
            rgb = rgb.astype(np.int64) >> (int(ds.BitsStored) - 8)
    return np.stack([apply_voi_lut(rgb[..., c].astype(np.float64), window) for c in range(3)], axis=2)


@dataclass
class Diff:
    case: str
    view: str
    frame: int
    max_diff: float
    mean_diff: float
    wc: float
    ww: float


FAILURES: list[str] = []


def compare(rendered: np.ndarray, ref: np.ndarray, tol: int, what: str) -> Diff:
    """Records (not raises) a mismatch, so one run lists every case and view that is wrong."""
    assert rendered.shape == ref.shape, f"{what}: shape {rendered.shape} != {ref.shape}"
    diff = np.abs(rendered.astype(np.float64) - np.round(ref))
    worst = float(diff.max())
    if worst > tol:
        FAILURES.append(f"{what}: {int((diff > tol).sum())} channel values differ by more than {tol} "
                        f"(max {worst}, mean {diff.mean():.3f})")
    return Diff(what, "", 0, worst, float(diff.mean()), 0, 0)


CANVAS_JS = """([selector, index, x, y, w, h]) => {
  const canvas = document.querySelectorAll(selector)[index];
  const data = canvas.getContext('2d').getImageData(x, y, w, h).data;
  let s = '';
  for (let i = 0; i < data.length; i += 0x8000) s += String.fromCharCode.apply(null, data.subarray(i, i + 0x8000));
  return { b64: btoa(s), width: canvas.width, height: canvas.height };
}"""


def canvas_rgb(page, selector: str, index: int, x: int, y: int, w: int, h: int) -> np.ndarray:
    got = page.evaluate(CANVAS_JS, [selector, index, x, y, w, h])
    rgba = np.frombuffer(base64.b64decode(got["b64"]), dtype=np.uint8).reshape(h, w, 4)
    return rgba[..., :3]


def reading_canvas(page, rows: int, cols: int) -> np.ndarray:
    """The image's pixels in the Cornerstone canvas at 1:1 (the viewer aligns image pixels with screen pixels)."""
    zoom = page.get_by_test_id("zoom")
    assert abs(float(zoom.get_attribute("data-zoom")) - 1) < 1e-6, "1:1 shows one image pixel per screen pixel"
    assert zoom.text_content() == "zoom 100%"
    ox, oy = (float(v) for v in zoom.get_attribute("data-origin").split(","))
    assert abs(ox - round(ox)) < 1e-3 and abs(oy - round(oy)) < 1e-3, f"image pixels off the screen grid: {ox}, {oy}"
    size = page.evaluate("() => { const c = document.querySelector('[data-testid=viewport] canvas'); "
                         "return [c.width, c.height, window.devicePixelRatio]; }")
    assert size[2] == 1
    # Cornerstone draws in animation frames: wait until the frame a key or a case change asked for is on the
    # canvas (with one rendering engine kept across cases, a read right after the attributes changed could
    # still see the previous draw on a loaded machine)
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    assert 0 <= round(ox) and round(ox) + cols <= size[0] and 0 <= round(oy) and round(oy) + rows <= size[1], (size, ox, oy)
    return canvas_rgb(page, "[data-testid=viewport] canvas", 0, round(ox), round(oy), cols, rows)


def seed(base: str, db_url: str, uris: dict[str, list[str]]) -> dict:
    create_admin(db_url, "admin", PASSWORD)
    c = httpx.Client(base_url=base, timeout=60)
    tok = lambda u: c.post("/api/auth/login", json={"username": u, "password": PASSWORD}).json()["token"]  # noqa: E731
    admin = {"Authorization": f"Bearer {tok('admin')}"}
    pid = c.post("/api/projects", headers=admin, json={"name": "rendering", "readers_per_item": 1, "schema": SCHEMA}).json()["id"]
    uid = c.post("/api/users", headers=admin, json={"username": "reader", "password": PASSWORD}).json()["id"]
    assert c.post(f"/api/projects/{pid}/members", headers=admin, json={"user_id": uid, "role": "annotator"}).status_code == 201
    items = [{"external_id": name, "uris": u, "modality": "OT"} for name, u in uris.items()]
    r = c.post(f"/api/projects/{pid}/items", headers=admin, json={"items": items})
    assert r.status_code == 201, r.text
    return {"client": c, "admin": admin, "reader": {"Authorization": f"Bearer {tok('reader')}"}, "project_id": pid,
            "items": dict(zip(uris, r.json()["created"]))}


def test_every_photometric_interpretation_renders_like_pydicom(live_server_factory, tmp_path: Path) -> None:
    _require_browser_stack()
    from playwright.sync_api import expect, sync_playwright

    FAILURES.clear()
    store = tmp_path / "store"
    objects = cases(store)
    # a head CT registered in file-listing order (shuffled), one slice missing: shown sorted, with a gap warning
    series = dicomgen.write_series(store / "deid" / "headct", 6, rows=32, cols=32, seed=3)
    del series[3]
    listed = [series[k] for k in (2, 0, 4, 1, 3)]
    uris = {name: [p.as_uri()] for name, p in objects.items()}
    uris["head-ct-shuffled"] = [p.as_uri() for p in listed]
    server = live_server_factory()
    s = seed(server.url, server.database_url, uris)
    c, pid = s["client"], s["project_id"]
    datasets = {name: pydicom.dcmread(p) for name, p in objects.items()}

    item = c.get(f"/api/items/{s['items']['head-ct-shuffled']}", headers=s["admin"]).json()
    z = [float(pydicom.dcmread(listed[i["position"]]).ImagePositionPatient[2]) for i in item["instances"]]
    assert z == sorted(z) and item["slice_order"] == "position", (z, item["slice_order"])
    assert any("gap" in w for w in item["geometry_warnings"]), item["geometry_warnings"]
    series_frames = [pydicom.dcmread(listed[i["position"]]) for i in item["instances"]]

    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    ARTIFACTS.mkdir(parents=True)
    diffs: list[Diff] = []
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page, errors = watched_page(browser, 1700, 1100)
            _login(page, server.url, "reader")
            # ---- the reading viewer: every case, every frame, at 1:1, before and after Reset
            for _ in uris:
                task = c.post(f"/api/tasks/next?project_id={pid}", headers=s["reader"]).json()["task"]
                name = task["item"]["external_id"]
                page.goto(f"{server.url}/#/task?id={task['id']}")
                expect(page.get_by_test_id("task-id")).to_have_text(f"Task #{task['id']}", timeout=60000)
                page.wait_for_selector("[data-testid=viewport][data-loaded=true]", timeout=60000)
                views = ([(ds, k) for ds in series_frames for k in range(1)] if name == "head-ct-shuffled"
                         else [(datasets[name], f) for f in range(frames_of(datasets[name]))])
                if name == "head-ct-shuffled":
                    expect(page.get_by_test_id("geometry-warnings")).to_contain_text("gap")
                for index, (ds, f) in enumerate(views):
                    expect(page.get_by_test_id("slice")).to_have_attribute("data-index", str(index))
                    for when in ("loaded", "after-reset"):
                        if when == "after-reset":
                            page.get_by_test_id("preset").select_option(index=1)
                            page.evaluate("() => document.activeElement.blur()")  # keys go to the viewer
                            page.keyboard.press("i")
                            page.keyboard.press("r")
                            expect(page.get_by_test_id("preset")).to_have_value("0")
                        page.keyboard.press("o")
                        try:
                            expect(page.get_by_test_id("zoom")).to_have_text("zoom 100%")
                        except AssertionError:
                            page.screenshot(path=ARTIFACTS / f"failed-{name}.png")
                            raise AssertionError(f"{name}: 1:1 not reached; page errors {errors}") from None
                        voi = page.get_by_test_id("voi")
                        wc, ww = float(voi.get_attribute("data-wc")), float(voi.get_attribute("data-ww"))
                        got = reading_canvas(page, int(ds.Rows), int(ds.Columns))
                        ref = reference(ds, f, wc, ww)
                        d = compare(got, ref, TOLERANCE["reading"], f"{name} reading frame {f} {when} W{ww} L{wc}")
                        diffs.append(Diff(name, f"reading ({when})", f, d.max_diff, d.mean_diff, wc, ww))
                    if index == 0:
                        page.screenshot(path=ARTIFACTS / f"reading-{name}.png")
                    if index + 1 < len(views):
                        page.get_by_test_id("slice-next").click()
                r = c.post(f"/api/tasks/{task['id']}/submit", headers=s["reader"],
                           json={"labels": [{"label": "seen", "value": True, "confidence": 100}]})
                assert r.status_code == 200, r.text
            # ---- the discrepancy view and its thumbnails, as the admin sees them
            _login(page, server.url, "admin")
            for name, item_id in s["items"].items():
                page.goto(f"{server.url}/#/review/{pid}/item/{item_id}")
                expect(page.get_by_test_id("review-title")).to_contain_text(name, timeout=60000)
                page.wait_for_selector("[data-testid=discrepancy][data-loaded=true]", timeout=60000)
                page.wait_for_selector("[data-testid=thumbs][data-loaded=true]", timeout=60000)
                views = ([(ds, 0) for ds in series_frames] if name == "head-ct-shuffled"
                         else [(datasets[name], f) for f in range(frames_of(datasets[name]))])
                panel = page.locator(".review-canvas").first
                wc, ww = float(panel.get_attribute("data-wc")), float(panel.get_attribute("data-ww"))
                ds, f = views[0]
                got = canvas_rgb(page, ".review-canvas", 0, 0, 0, int(ds.Columns), int(ds.Rows))
                d = compare(got, reference(ds, f, wc, ww), TOLERANCE["discrepancy"], f"{name} discrepancy W{ww} L{wc}")
                diffs.append(Diff(name, "discrepancy", f, d.max_diff, d.mean_diff, wc, ww))
                expect(page.get_by_test_id("thumb")).to_have_count(len(views))
                for k, (ds, f) in enumerate(views):
                    thumb = page.get_by_test_id("thumb").nth(k)
                    wc, ww = float(thumb.get_attribute("data-wc")), float(thumb.get_attribute("data-ww"))
                    got = canvas_rgb(page, "[data-testid=thumb]", k, 0, 0, int(ds.Columns), int(ds.Rows))
                    d = compare(got, reference(ds, f, wc, ww), TOLERANCE["thumbnail"], f"{name} thumbnail {k} W{ww} L{wc}")
                    diffs.append(Diff(name, "thumbnail", f, d.max_diff, d.mean_diff, wc, ww))
                page.screenshot(path=ARTIFACTS / f"discrepancy-{name}.png", full_page=True)
            assert not errors, errors
        finally:
            browser.close()
    (ARTIFACTS / "differences.json").write_text(json.dumps([d.__dict__ for d in diffs], indent=1))
    assert not FAILURES, "\n".join(FAILURES)
    seen = {(d.case, d.view.split(" ")[0]) for d in diffs}
    assert {view for _, view in seen} == {"reading", "discrepancy", "thumbnail"}
    assert len({case for case, _ in seen}) == len(uris)


def test_slice_order_by_normal_then_instance_number_with_warnings() -> None:
    """Sorting is along the slice normal (here an oblique sagittal plane, where z alone would mislead),
    then by Instance Number; duplicates, gaps and mixed orientations are named."""
    from annotation.imaging import SliceGeometry, slice_order

    iop = (0.0, 0.7071, 0.7071, 0.0, -0.7071, 0.7071)  # rows along (0,.7,.7), columns along (0,-.7,.7): normal is x
    at = lambda x, n=None, o=iop: SliceGeometry((x, 50.0 - x, -3 * x), o, n)  # noqa: E731  (z falls as x rises)
    order = slice_order([at(4.0, 1), at(0.0, 2), at(2.0, 3), at(8.0, 4)])
    assert order.by == "position" and order.order == [1, 2, 0, 3]
    assert order.warnings == ["gap of 4.0 mm between images 3 and 4 (usual spacing 2.0 mm)"]
    dup = slice_order([at(0.0, 1), at(2.0, 2), at(2.0, 3)])
    assert dup.order == [0, 1, 2] and dup.warnings == ["1 duplicate slice position"]
    axial = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    mixed = slice_order([at(0.0, 3), at(2.0, 1, axial), at(4.0, 2)])
    assert mixed.by == "instance_number" and mixed.order == [1, 2, 0] and "mixed orientations" in mixed.warnings[0]
    numbers = slice_order([SliceGeometry(None, None, 5), SliceGeometry(None, None, 2)])
    assert numbers.by == "instance_number" and numbers.order == [1, 0] and numbers.warnings == []
    bare = slice_order([SliceGeometry(None, None, None), SliceGeometry(None, None, 1)])
    assert bare.by == "listed" and bare.order == [0, 1] and bare.warnings
