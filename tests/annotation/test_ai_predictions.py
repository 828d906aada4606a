"""Model suggestions (issue 18): the predictions API, blind first, the assist record of a reading,
validation projects and the exports that carry what the model showed."""
from __future__ import annotations

import base64
import csv
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.annotation.conftest import make_client, series_uris
from tests.annotation.world import World, build_world, ok

MODEL = {"name": "chest", "version": "1.0.0"}


def png_b64(heat: np.ndarray, mode: str = "L") -> str:
    img = Image.fromarray(np.round(255 * heat).astype(np.uint8))
    buf = io.BytesIO()
    img.convert(mode).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def predictions(**overrides) -> dict:
    heat = np.zeros((32, 32))
    heat[8:16, 8:16] = 1.0
    body = {"model": MODEL, "probabilities": {"nodule": 0.83, "effusion": 0.04},
            "heatmaps": [{"label": "nodule", "instance_position": 0, "frame": 0, "png_base64": png_b64(heat),
                          "rows": 64, "cols": 64}],
            "boxes": [{"label": "nodule", "instance_position": 0, "frame": 0, "x0": 16, "y0": 16, "x1": 32, "y1": 32,
                       "score": 0.7},
                      {"label": "nodule", "instance_position": 1, "frame": 0, "x0": 40, "y0": 4, "x1": 60, "y1": 20,
                       "score": 0.4}]}
    body.update(overrides)
    return body


def take(w: World, who: str) -> dict:
    return ok(w.client.post(f"/api/tasks/next?project_id={w.project_id}", headers=w.h(who)))["task"]


ANSWERS = [{"label": "nodule", "value": False, "confidence": 60}, {"label": "effusion", "value": False, "confidence": 80}]


@pytest.fixture
def world(tmp_path: Path, store_root: Path):
    url = f"sqlite:///{tmp_path / 'ai.db'}"
    with make_client(url) as client:
        yield build_world(client, url, store_root, readers=1, verification=0, n_items=2)


def test_predictions_round_trip_replace_and_heatmap_pixels(database_url: str, store_root: Path) -> None:
    """On SQLite and PostgreSQL: the PNG comes back byte for byte; a second PUT replaces the first."""
    with make_client(database_url) as client:
        w = build_world(client, database_url, store_root, readers=1, verification=0, n_items=2)
        item = w.items[0]
        body = predictions()
        put = ok(client.put(f"/api/items/{item}/predictions", headers=w.h("manager"), json=body))
        assert put["model"] == MODEL and put["probabilities"] == body["probabilities"]
        got = ok(client.get(f"/api/items/{item}/predictions", headers=w.h("manager")))
        pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(got["heatmaps"][0]["png_base64"]))))
        sent = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["heatmaps"][0]["png_base64"]))))
        assert pixels.shape == (32, 32) and pixels[10, 10] == 255 and pixels[0, 0] == 0 and (pixels == sent).all()
        assert [b["x0"] for b in got["boxes"]] == [16, 40]
        again = predictions(model={"name": "chest", "version": "1.0.1"}, probabilities={"nodule": 0.5}, heatmaps=[],
                            boxes=[])
        ok(client.put(f"/api/items/{item}/predictions", headers=w.h("manager"), json=again))
        ok(client.put(f"/api/items/{item}/predictions", headers=w.h("manager"), json=again))
        got = ok(client.get(f"/api/items/{item}/predictions", headers=w.h("admin")))
        assert got["model"]["version"] == "1.0.1" and got["heatmaps"] == [] and got["probabilities"] == {"nodule": 0.5}
        none = ok(client.get(f"/api/items/{w.items[1]}/predictions", headers=w.h("manager")))
        assert none["model"] is None and none["probabilities"] == {} and none["hidden"] is False


@pytest.mark.parametrize("change, message", [
    ({"probabilities": {"nodule": 0.8, "pneumothorax": 0.1}}, "pneumothorax"),
    ({"probabilities": {"lesion_box": 0.8}}, "lesion_box"),  # a region label is no classification label
    ({"probabilities": {"effusion": 0.1}}, "no probability"),
    ({"heatmaps": [{"label": "nodule", "png_base64": png_b64(np.zeros((8, 8)), "RGB"), "rows": 64, "cols": 64}]}, "mode L"),
    ({"heatmaps": [{"label": "nodule", "png_base64": png_b64(np.zeros((80, 80))), "rows": 64, "cols": 64}]}, "larger"),
    ({"heatmaps": [{"label": "nodule", "png_base64": base64.b64encode(b"GIF89a-not-a-png").decode(), "rows": 64,
                    "cols": 64}]}, "PNG"),
    ({"heatmaps": [{"label": "nodule", "png_base64": png_b64(np.zeros((8, 8))), "rows": 128, "cols": 128}]}, "64x64"),
    ({"heatmaps": [{"label": "nodule", "instance_position": 7, "png_base64": png_b64(np.zeros((8, 8))), "rows": 64,
                    "cols": 64}]}, "instance 7"),
    ({"boxes": [{"label": "nodule", "x0": 10, "y0": 10, "x1": 70, "y1": 20, "score": 0.5}]}, "outside"),
])
def test_predictions_refused_when_they_do_not_fit(world: World, change: dict, message: str) -> None:
    r = world.client.put(f"/api/items/{world.items[0]}/predictions", headers=world.h("manager"), json=predictions(**change))
    assert r.status_code == 422 and message in r.text, r.text
    assert ok(world.client.get(f"/api/items/{world.items[0]}/predictions", headers=world.h("manager")))["model"] is None


def test_heatmap_text_chunks_never_stored(world: World) -> None:
    """A PNG's text chunks could carry an identifying string: the service keeps the pixels only."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("PatientName", "DOE^JANE")
    info.add_itxt("Comment", "MRN 123456", zip=True)
    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16), 200, np.uint8)).save(buf, format="PNG", pnginfo=info)
    assert b"DOE^JANE" in buf.getvalue()
    body = predictions(heatmaps=[{"label": "nodule", "png_base64": base64.b64encode(buf.getvalue()).decode(), "rows": 64,
                                  "cols": 64}])
    ok(world.client.put(f"/api/items/{world.items[0]}/predictions", headers=world.h("manager"), json=body))
    got = ok(world.client.get(f"/api/items/{world.items[0]}/predictions", headers=world.h("manager")))
    png = base64.b64decode(got["heatmaps"][0]["png_base64"])
    assert b"DOE^JANE" not in png and b"tEXt" not in png and b"iTXt" not in png
    assert (np.asarray(Image.open(io.BytesIO(png))) == 200).all()


def test_pipeline_token_stores_and_readers_see_only_their_items(world: World) -> None:
    c = world.client
    token = ok(c.post("/api/service-tokens", headers=world.h("admin"),
                      json={"name": "predict", "projects": [world.project_id]}), 201)["token"]
    pipeline = {"Authorization": f"Bearer {token}"}
    ok(c.put(f"/api/items/{world.items[0]}/predictions", headers=pipeline, json=predictions()))
    assert ok(c.get(f"/api/items/{world.items[0]}/predictions", headers=pipeline))["model"] == MODEL
    assert c.get(f"/api/items/{world.items[0]}/predictions", headers=world.h("junior")).status_code == 403
    task = take(world, "junior")
    got = ok(c.get(f"/api/items/{task['item']['id']}/predictions", headers=world.h("junior")))
    assert got["hidden"] is False  # not blind first: shown at once
    assert c.put(f"/api/items/{world.items[0]}/predictions", headers=world.h("junior"), json=predictions()).status_code == 403
    assert c.get(f"/api/items/{world.items[0]}/predictions", headers=world.h("outsider")).status_code == 403


def _submit(world: World, task: dict, assist: dict | None, labels=None) -> object:
    body = {"labels": labels or ANSWERS, "rois": [], "active_ms": 1000}
    if assist is not None:
        body["assist"] = assist
    return world.client.post(f"/api/tasks/{task['id']}/submit", headers=world.h("junior"), json=body)


def test_blind_first_hides_until_every_label_is_answered_and_records_both_answers(world: World) -> None:
    c = world.client
    ok(c.patch(f"/api/projects/{world.project_id}", headers=world.h("manager"), json={"blind_first": True}))
    for item in world.items:
        ok(c.put(f"/api/items/{item}/predictions", headers=world.h("manager"), json=predictions()))
    task = take(world, "junior")
    item = task["item"]["id"]
    hidden = ok(c.get(f"/api/items/{item}/predictions", headers=world.h("junior")))
    assert hidden["hidden"] is True and hidden["probabilities"] == {} and hidden["boxes"] == [] and hidden["model"] is None
    shown_too_early = {"model": MODEL, "shown": True, "suggestions": []}
    r = _submit(world, task, shown_too_early)
    assert r.status_code == 422 and "never revealed" in r.text
    r = c.post(f"/api/tasks/{task['id']}/unaided", headers=world.h("junior"), json={"labels": ANSWERS[:1]})
    assert r.status_code == 422 and "effusion" in r.text
    revealed = ok(c.post(f"/api/tasks/{task['id']}/unaided", headers=world.h("junior"), json={"labels": ANSWERS}))
    assert revealed["probabilities"]["nodule"] == 0.83 and len(revealed["boxes"]) == 2
    assert c.post(f"/api/tasks/{task['id']}/unaided", headers=world.h("junior"),
                  json={"labels": ANSWERS}).status_code == 409  # cannot be rewritten after the reveal
    assert ok(c.get(f"/api/items/{item}/predictions", headers=world.h("junior")))["hidden"] is False
    forged = {"model": MODEL, "shown": True, "unaided": [{**ANSWERS[0], "value": True}, ANSWERS[1]], "suggestions": []}
    r = _submit(world, task, forged)
    assert r.status_code == 422 and "differs" in r.text
    aided = [{"label": "nodule", "value": True, "confidence": 80}, ANSWERS[1]]
    assist = {"model": MODEL, "shown": True, "suggestions": [
        {"label": "nodule", "box_index": 0, "action": "edit", "box": [14, 15, 30, 33]},
        {"label": "nodule", "box_index": 1, "action": "reject"}]}
    ok(_submit(world, task, assist, aided))
    stored = ok(c.get(f"/api/tasks/{task['id']}", headers=world.h("junior")))["annotation"]["assist"]
    assert stored["unaided"] == ANSWERS and stored["shown"] is True and stored["blind_first"] is True
    assert stored["boxes"][0]["x0"] == 16 and stored["suggestions"][0]["box"] == [14, 15, 30, 33]

    export = ok(c.get(f"/api/projects/{world.project_id}/export/json", headers=world.h("manager")))
    (reading,) = [r for r in export["readings"] if r["task_id"] == task["id"]]
    assert reading["assist"]["unaided"] == ANSWERS and reading["labels"] == aided
    assert export["project"]["blind_first"] is True
    rows = [row for row in csv.DictReader(io.StringIO(c.get(f"/api/projects/{world.project_id}/export/csv",
                                                            headers=world.h("manager")).text))
            if row["task_id"] == str(task["id"])]
    unaided = {row["label"]: row["value"] for row in rows if row["record"] == "unaided"}
    aided_rows = {row["label"]: row["value"] for row in rows if row["record"] == "label"}
    assert unaided == {"nodule": "0", "effusion": "0"} and aided_rows == {"nodule": "1", "effusion": "0"}
    suggestions = [row for row in rows if row["record"] == "suggestion"]
    assert [(s["suggestion_box"], s["suggestion_action"], s["x_min"], s["y_max"]) for s in suggestions] == [
        ("0", "edit", "14.0", "33.0"), ("1", "reject", "", "")]
    assert {row["assist_model"] for row in rows} == {"chest 1.0.0"} and {row["assist_shown"] for row in rows} == {"1"}


@pytest.mark.parametrize("assist, message", [
    ({"model": {"name": "chest", "version": "0.9.0"}, "shown": True}, "reload"),
    ({"model": MODEL, "shown": True, "unaided": ANSWERS}, "blind-first"),
    ({"model": MODEL, "shown": False, "suggestions": [{"label": "nodule", "box_index": 0, "action": "reject"}]}, "shown"),
    ({"model": MODEL, "shown": True, "suggestions": [{"label": "nodule", "box_index": 2, "action": "reject"}]}, "2 boxes"),
    ({"model": MODEL, "shown": True, "suggestions": [{"label": "effusion", "box_index": 0, "action": "reject"}]},
     "'nodule' box"),
    ({"model": MODEL, "shown": True, "suggestions": [{"label": "nodule", "box_index": 0, "action": "reject"},
                                                      {"label": "nodule", "box_index": 0, "action": "reject"}]}, "twice"),
    ({"model": MODEL, "shown": True, "suggestions": [{"label": "nodule", "box_index": 0, "action": "accept"}]},
     "final box"),
])
def test_assist_record_checked_at_submit(world: World, assist: dict, message: str) -> None:
    for item in world.items:
        ok(world.client.put(f"/api/items/{item}/predictions", headers=world.h("manager"), json=predictions()))
    task = take(world, "junior")
    r = _submit(world, task, assist)
    assert r.status_code == 422 and message in r.text, r.text
    accepted = {"model": MODEL, "shown": True,
                "suggestions": [{"label": "nodule", "box_index": 0, "action": "accept", "box": [16, 16, 32, 32]}]}
    ok(_submit(world, task, accepted))


def test_validation_project_rates_every_output_with_reasons(world: World, store_root: Path) -> None:
    c = world.client
    project = ok(c.post("/api/projects", headers=world.h("admin"), json={
        "name": "validate-chest", "kind": "validation",
        "schema": {"labels": [{"id": "nodule", "name": "Nodule", "kind": "boolean"},
                              {"id": "effusion", "name": "Effusion", "kind": "boolean"}]}}), 201)
    assert project["kind"] == "validation"
    ok(c.post(f"/api/projects/{project['id']}/members", headers=world.h("admin"),
              json={"user_id": world.users["junior"], "role": "annotator", "level": "junior"}), 201)
    item = ok(c.post(f"/api/projects/{project['id']}/items", headers=world.h("admin"),
                     json={"items": [{"external_id": "v-1", "uris": series_uris(store_root, 0)}]}), 201)["created"][0]
    ok(c.put(f"/api/items/{item}/predictions", headers=world.h("admin"), json=predictions()))
    task = ok(c.post(f"/api/tasks/next?project_id={project['id']}", headers=world.h("junior")))["task"]

    def submit(assist):
        body = {"labels": ANSWERS, "assist": assist} if assist else {"labels": ANSWERS}
        return c.post(f"/api/tasks/{task['id']}/submit", headers=world.h("junior"), json=body)

    r = submit(None)
    assert r.status_code == 422 and "rates the model's outputs" in r.text
    partial = [{"label": "nodule", "action": "accept"}, {"label": "nodule", "box_index": 0, "action": "accept",
                                                         "box": [16, 16, 32, 32]}]
    r = submit({"model": MODEL, "shown": True, "suggestions": partial})
    assert r.status_code == 422 and "unrated: effusion call, nodule box 1" in r.text
    no_reason = partial + [{"label": "effusion", "action": "accept"}, {"label": "nodule", "box_index": 1, "action": "reject"}]
    r = submit({"model": MODEL, "shown": True, "suggestions": no_reason})
    assert r.status_code == 422 and "reason to reject 'nodule'" in r.text
    rated = partial + [{"label": "effusion", "action": "edit", "reason": "small effusion at the left base"},
                       {"label": "nodule", "box_index": 1, "action": "reject", "reason": "vessel end-on"}]
    ok(submit({"model": MODEL, "shown": True, "suggestions": rated}))
    export = ok(c.get(f"/api/projects/{project['id']}/export/json", headers=world.h("admin")))
    assert [s["reason"] for s in export["readings"][0]["assist"]["suggestions"]][2:] == [
        "small effusion at the left base", "vessel end-on"]
