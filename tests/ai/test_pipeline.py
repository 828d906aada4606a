"""The predict step on the pipeline's side (issue 18, point 2): the model's inputs read from
de-identified DICOM as a reader sees them, model discovery through entry points, the predict stage
over a curated catalog (answers in the derived zone and the catalog, once per item and model), and
the service body built from what was stored.

The model here is a small but real torch model (`BrightSpotModel`): a fixed smoothing convolution
whose response is the heat of "nodule", its peak the probability and the heat above one half the
box, so what the stage stores can be checked against where a bright spot was planted."""
from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
import torch

from curation.assist import predictions
from curation.assist.inputs import LUMA, frame_pixels, read_inputs
from curation.assist.plugin import Box, FindingsModel, ModelInfo, ModelInput, Prediction, check_prediction
from curation.assist.predictions import (
    STAGE, PredictConfig, heatmap_png, item_probabilities, predict_items, service_body, stored_predictions,
)
from curation.assist.registry import GROUP, ModelNotFound, available, load_model
from curation.catalog import StageRecord
from curation.pipeline.select import Selection, select_series
from curation.store import Zone, open_store
from curation.vocabulary import SeriesKind, StageStatus
from synth.chest import Nodule, nodule_box
from synth.xray import XRAY_EXTENT_MM, chest_image
from tests.annotation import dicomgen
from tests.operators.world import curated_catalog

LABELS = ("opacity", "nodule")


class BrightSpotModel:
    """Heat of "nodule" = sigmoid of a 9x9 mean filter over the standardised image (a bright spot
    stands out); probability = the peak heat; one box around the heat >= 0.5. "opacity" = the share of
    the image brighter than its mean (no heatmap, no box)."""

    def __init__(self, version: str = "0.1") -> None:
        self.info = ModelInfo(name="brightspot", version=version, labels=LABELS, regional_labels=("nodule",),
                              kinds=(str(SeriesKind.CR), str(SeriesKind.DX)),
                              card={"intended_use": "tests of the predict step", "data_version": "none"})
        self.conv = torch.nn.Conv2d(1, 1, 9, padding=4, bias=False)
        with torch.no_grad():
            self.conv.weight.fill_(1.0 / 81)
        self.calls: list[int] = []

    def predict(self, batch: Sequence[ModelInput]) -> list[Prediction]:
        self.calls.append(len(batch))
        out = []
        with torch.no_grad():
            for image in batch:
                x = torch.from_numpy(image.pixels)
                x = (x - x.mean()) / (x.std() + 1e-6)
                heat = torch.sigmoid(4 * (self.conv(x[None, None])[0, 0] - 1.5)).numpy().astype(np.float32)
                boxes = []
                rows, cols = np.nonzero(heat >= 0.5)
                if len(rows):
                    boxes.append(Box("nodule", float(cols.min()), float(rows.min()), float(cols.max() + 1),
                                     float(rows.max() + 1), float(heat.max())))
                out.append(Prediction(probabilities={"nodule": float(heat.max()),
                                                     "opacity": float((x > 0).float().mean())},
                                      heatmaps={"nodule": heat}, boxes=boxes))
        return out


def tiny_model() -> FindingsModel:
    """The entry point factory a site's package would declare."""
    return BrightSpotModel()


def broken_model() -> FindingsModel:
    """A factory whose weights are missing, as a half-installed plugin's."""
    raise FileNotFoundError("weights/brightspot.pt")


def spot_image(rows: int = 64, cols: int = 64, spot: tuple[int, int] = (20, 40), seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = 100 + rng.normal(0, 5, (rows, cols))
    r, c = spot
    img[r - 4:r + 4, c - 4:c + 4] += 200
    return img


def write_radiographs(home: Path, catalog, series: list[int], size: int = 256) -> dict[int, list[int] | None]:
    """Each series' DICOM replaced by a 12-bit PA chest radiograph of `size` pixels; every other one
    with a nodule (its box [x, y, w, h] returned, None without). For the shipped model's test and
    benchmarks/ai_round.py."""
    boxes = {}
    for n, sid in enumerate(series):
        nodule = Nodule((-70.0 + 140 * (n % 4 == 1), 0.0, 30.0 - 10 * (n % 3)), 14.0) if n % 2 else None
        img = chest_image(size, nodule, np.random.default_rng(100 + n))
        with catalog.session() as s:
            key = s.query(StageRecord).filter_by(stage="deid", subject_id=sid).one().metrics["outputs"][0]
        path = home / "store" / "deid" / key
        ds = pydicom.dcmread(path)
        ds.Modality, ds.PhotometricInterpretation, ds.SamplesPerPixel = "CR", "MONOCHROME2", 1
        ds.Rows = ds.Columns = size
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        for keyword in ("RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth"):
            if keyword in ds:
                delattr(ds, keyword)
        ds.PixelData = np.asarray(img, dtype="<u2").tobytes()
        ds.save_as(path)
        boxes[sid] = nodule_box(nodule, size, XRAY_EXTENT_MM) if nodule else None
    return boxes


# ---- inputs --------------------------------------------------------------------------------------

def test_inputs_are_what_a_reader_sees(tmp_path):
    mono2 = pydicom.dcmread(dicomgen.write_greyscale(tmp_path / "m2.dcm", slope=2.0, intercept=-100.0))
    mono1 = pydicom.dcmread(dicomgen.write_greyscale(tmp_path / "m1.dcm", photometric="MONOCHROME1",
                                                     bits_stored=12))
    stored2, stored1 = mono2.pixel_array.astype(np.float32), mono1.pixel_array.astype(np.float32)
    (p2,), (p1,) = frame_pixels(mono2), frame_pixels(mono1)
    assert p2.dtype == np.float32 and np.allclose(p2, stored2 * 2 - 100)
    assert np.allclose(p1, 4095 - stored1), "MONOCHROME1 inverted within the 12 stored bits"
    # the planted square (stored high) is bright in MONOCHROME2 and dark on screen in MONOCHROME1
    assert p2[16, 20] > p2[40, 20]
    assert p1[16, 20] < p1[40, 20], "MONOCHROME1's square (stored high = dark) is dark after inversion"
    rgb = pydicom.dcmread(dicomgen.write_colour(tmp_path / "rgb.dcm"))
    (lum,) = frame_pixels(rgb)
    assert lum.shape == (48, 64) and np.allclose(lum, rgb.pixel_array.astype(np.float32) @ LUMA, atol=1e-3)
    ybr = pydicom.dcmread(dicomgen.write_colour(tmp_path / "ybr.dcm", photometric="YBR_FULL"))
    assert np.abs(frame_pixels(ybr)[0] - lum).mean() < 3, "YBR_FULL converted to RGB before luminance"
    palette = pydicom.dcmread(dicomgen.write_colour(tmp_path / "pal.dcm", photometric="PALETTE COLOR"))
    assert frame_pixels(palette)[0].shape == (48, 64)
    multi = read_inputs(dicomgen.write_greyscale(tmp_path / "mf.dcm", frames=3), item="2.25.7", instance_position=2,
                        kind="CR")
    assert [i.ref for i in multi] == [{"item": "2.25.7", "instance_position": 2, "frame": f} for f in range(3)]
    assert multi[0].modality == "OT" and multi[0].kind == "CR"


def test_pixel_spacing_prefers_pixel_spacing_then_imager(tmp_path):
    path = dicomgen.write_greyscale(tmp_path / "a.dcm")
    ds = pydicom.dcmread(path)
    ds.ImagerPixelSpacing = [0.2, 0.3]
    ds.save_as(path)
    assert read_inputs(path, item="i", instance_position=0, kind="CR")[0].pixel_spacing == (0.2, 0.3)
    ds.PixelSpacing = [0.5, 0.5]
    ds.save_as(path)
    assert read_inputs(path, item="i", instance_position=0, kind="CR")[0].pixel_spacing == (0.5, 0.5)


# ---- the interface and discovery -------------------------------------------------------------------

def test_the_tiny_model_is_a_findings_model_and_its_heat_points_at_the_spot():
    model = BrightSpotModel()
    assert isinstance(model, FindingsModel)
    image = ModelInput(spot_image().astype(np.float32), None, "CR", "CR", {"item": "x"})
    (answer,) = model.predict([image])
    check_prediction(model.info, image, answer)
    heat = answer.heatmaps["nodule"]
    assert np.unravel_index(np.argmax(heat), heat.shape) == pytest.approx((20, 40), abs=3)
    (box,) = answer.boxes
    assert box.x0 <= 40 <= box.x1 and box.y0 <= 20 <= box.y1
    flat = ModelInput(np.full((64, 64), 100, np.float32), None, "CR", "CR", {"item": "y"})
    assert model.predict([flat])[0].probabilities["nodule"] < 0.01


@pytest.mark.parametrize("bad, message", [
    (Prediction({"effusion": 0.5}, {}, []), "does not declare"),
    (Prediction({"nodule": 1.5}, {}, []), "not in \\[0, 1\\]"),
    (Prediction({"nodule": 0.5}, {"nodule": np.zeros((8, 8), np.float32)}, []), "heatmap of nodule is"),
    (Prediction({"nodule": 0.5}, {}, [Box("opacity", 0, 0, 4, 4, 0.9)]), "not among its regional labels"),
    (Prediction({"nodule": 0.5}, {}, [Box("nodule", 0, 0, 80, 4, 0.9)]), "outside"),
])
def test_answers_that_break_the_interface_are_refused(bad, message):
    image = ModelInput(np.zeros((64, 64), np.float32), None, "CR", "CR", {"item": "x"})
    with pytest.raises(ValueError, match=message):
        check_prediction(BrightSpotModel().info, image, bad)


def test_a_sites_model_is_found_by_its_entry_point(tmp_path, monkeypatch):
    """A site's package declares its model in the group; installing it (here: its metadata on the
    path, as pip writes it) is all the pipeline needs."""
    dist = tmp_path / "site_models-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: site-models\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{GROUP}]\nbrightspot = tests.ai.test_pipeline:tiny_model\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "brightspot" in available()
    assert available()["chest"].value == "qc_models.findings.plugin:load", "the shipped model is declared"
    model = load_model("brightspot")
    assert model.info.name == "brightspot" and isinstance(model, BrightSpotModel)
    with pytest.raises(ModelNotFound, match="no findings model 'absent'"):
        load_model("absent")
    (dist / "entry_points.txt").write_text(f"[{GROUP}]\nbroken = tests.ai.test_pipeline:broken_model\n"
                                           f"gone = tests.ai.no_such_module:load\n")
    with pytest.raises(ModelNotFound, match="could not be built: FileNotFoundError"):
        load_model("broken")
    with pytest.raises(ModelNotFound, match="cannot be imported"):
        load_model("gone")


def test_heatmap_png_is_small_8bit_and_keeps_the_heat():
    heat = np.zeros((1000, 600), np.float32)
    heat[100:300, 200:400] = 1.0
    png = cv2.imdecode(np.frombuffer(heatmap_png(heat), np.uint8), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint8 and png.shape == (256, 154)
    assert png.max() == 255 and png.min() == 0
    assert abs(png.mean() / 255 - heat.mean()) < 0.01


# ---- the stage on a curated catalog ---------------------------------------------------------------

def _plant_spot(home: Path, catalog, series_id: int, spot: tuple[int, int]) -> None:
    with catalog.session() as s:
        record = s.query(StageRecord).filter_by(stage="deid", subject_id=series_id).one()
        path = home / "store" / "deid" / record.metrics["outputs"][0]
    ds = pydicom.dcmread(path)
    img = ds.pixel_array.astype(np.float32)
    r, c = spot
    img[r - 4:r + 4, c - 4:c + 4] = img.max() * 3
    ds.PixelData = np.clip(img, -32768, 32767).astype(ds.pixel_array.dtype).tobytes()
    ds.save_as(path)


def test_predict_stores_answers_in_the_derived_zone_once_per_item_and_model(tmp_path):
    home = tmp_path / "curate"
    catalog, labels, _ = curated_catalog(home, n_labels=3, n_review=0)
    _plant_spot(home, catalog, labels[1], (20, 44))
    store = open_store(f"file://{home / 'store'}")
    items = select_series(catalog, Selection(series_kinds=("CR", "DX")), "round-1")
    assert [i.series_id for i in items] == labels
    model = BrightSpotModel()
    results = predict_items(catalog, store, model, [i.to_xcom() for i in items], PredictConfig(batch_size=2))
    assert [r.status for r in results] == [StageStatus.OK] * 3 and not any(r.reused for r in results)
    assert model.calls == [2, 1], "batches of two images across items"
    spotted = results[1].metrics
    assert spotted["probabilities"]["nodule"] > 0.9 > max(r.metrics["probabilities"]["nodule"]
                                                           for r in (results[0], results[2]))
    body = json.loads(store.get_bytes(Zone.DERIVED, spotted["json"]))
    assert spotted["json"] == f"predictions/brightspot/0.1/{items[1].item_key}/prediction.json"
    assert body["item"] == items[1].item_key and body["model"] == {"name": "brightspot", "version": "0.1"}
    (box,) = body["boxes"]
    assert box["x0"] <= 44 <= box["x1"] and box["y0"] <= 20 <= box["y1"] and box["label"] == "nodule"
    (hm,) = body["heatmaps"]
    png = cv2.imdecode(np.frombuffer(store.get_bytes(Zone.DERIVED, hm["key"]), np.uint8), cv2.IMREAD_UNCHANGED)
    assert (hm["rows"], hm["cols"]) == png.shape == (64, 64)
    assert np.unravel_index(np.argmax(png), png.shape) == pytest.approx((20, 44), abs=3)
    # nothing in the stored answer names more than the pseudonymised item
    text = json.dumps(body)
    assert "ANON" not in text and "1.2.840" not in text
    # a rerun reads what was stored; a new model version predicts again
    again = BrightSpotModel()
    assert all(r.reused for r in predict_items(catalog, store, again, [i.to_xcom() for i in items]))
    assert again.calls == []
    newer = BrightSpotModel(version="0.2")
    predict_items(catalog, store, newer, [i.to_xcom() for i in items])
    assert newer.calls == [3]
    with catalog.session() as s:
        assert s.query(StageRecord).filter_by(stage=STAGE).count() == 6
    newest = stored_predictions(catalog, labels)
    assert {r.metrics["model"]["version"] for r in newest.values()} == {"0.2"}
    old = stored_predictions(catalog, labels, {"name": "brightspot", "version": "0.1"})
    assert old[labels[1]].metrics == spotted | {"seconds": old[labels[1]].metrics["seconds"]}
    probabilities = item_probabilities(catalog, {i.item_key: i.series_id for i in items},
                                       {"name": "brightspot", "version": "0.1"})
    assert probabilities[items[1].item_key, "nodule"] == spotted["probabilities"]["nodule"]
    # the service's body (ai_interface.md section 2) from what was stored
    service = service_body(store, old[labels[1]])
    assert set(service) == {"model", "probabilities", "heatmaps", "boxes"}
    (sh,) = service["heatmaps"]
    assert {k: sh[k] for k in ("label", "instance_position", "frame", "rows", "cols")} == \
        {"label": "nodule", "instance_position": 0, "frame": 0, "rows": 64, "cols": 64}
    assert base64.b64decode(sh["png_base64"]) == store.get_bytes(Zone.DERIVED, hm["key"])
    assert service["boxes"] == body["boxes"]


def test_items_the_model_does_not_accept_are_skipped_with_the_reason(tmp_path):
    home = tmp_path / "curate"
    catalog, labels, _ = curated_catalog(home, n_labels=1, n_review=0)
    store = open_store(f"file://{home / 'store'}")
    (item,) = select_series(catalog, Selection(), "r")
    mr = item.replace(kind=str(SeriesKind.T2W))
    model = BrightSpotModel()
    (result,) = predict_items(catalog, store, model, [mr])
    assert result.status == StageStatus.SKIPPED and "T2W" in result.reason and model.calls == []


def test_an_item_of_many_images_sends_the_service_its_most_probable_heatmaps(tmp_path, monkeypatch):
    home = tmp_path / "curate"
    catalog, labels, _ = curated_catalog(home, n_labels=1, n_review=0)
    with catalog.session() as s:
        key = s.query(StageRecord).filter_by(stage="deid", subject_id=labels[0]).one().metrics["outputs"][0]
    dicomgen.write_multiframe(home / "store" / "deid" / key, frames=4, seed=3)
    store = open_store(f"file://{home / 'store'}")
    (result,) = predict_items(catalog, store, BrightSpotModel(), select_series(catalog, Selection(), "r"))
    body = json.loads(store.get_bytes(Zone.DERIVED, result.metrics["json"]))
    assert [im["frame"] for im in body["images"]] == [0, 1, 2, 3] and len(body["heatmaps"]) == 4
    by_p = sorted(body["images"], key=lambda im: -im["probabilities"]["nodule"])
    assert body["probabilities"]["nodule"] == by_p[0]["probabilities"]["nodule"], "the item's: its likeliest image's"
    monkeypatch.setattr(predictions, "SERVICE_MAX_HEATMAPS", 2)
    sent = service_body(store, stored_predictions(catalog, labels)[labels[0]])
    assert [h["frame"] for h in sent["heatmaps"]] == sorted(im["frame"] for im in by_p[:2])


def test_items_are_stored_as_their_images_are_answered_not_at_the_end(tmp_path):
    """Memory holds about one batch: each item is written once its last image is answered."""
    home = tmp_path / "curate"
    catalog, labels, _ = curated_catalog(home, n_labels=3, n_review=0)
    store = open_store(f"file://{home / 'store'}")
    stored_before_call: list[int] = []

    class Watching(BrightSpotModel):
        def predict(self, batch):
            with catalog.session() as s:
                stored_before_call.append(s.query(StageRecord).filter_by(stage=STAGE).count())
            return super().predict(batch)

    predict_items(catalog, store, Watching(), select_series(catalog, Selection(), "r"), PredictConfig(batch_size=1))
    assert stored_before_call == [0, 1, 2]


def test_torch_threads_stay_within_the_platforms_openmp_limit(tmp_path, monkeypatch):
    """include/airflow/env.sh sets OMP_THREAD_LIMIT=1; torch asking for more hangs in backward (Grad-CAM)."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        monkeypatch.setenv("OMP_THREAD_LIMIT", "1")
        home = tmp_path / "curate"
        catalog, _, _ = curated_catalog(home, n_labels=1, n_review=0)
        predict_items(catalog, open_store(home / "store"), BrightSpotModel(), select_series(catalog, Selection(), "r"))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
