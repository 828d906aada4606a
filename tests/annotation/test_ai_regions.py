"""An accepted or edited suggested box is one of the reading's regions (issue 18 point 3): where the
project's schema has a box label for the suggestion's finding, the submission carries the box as a region
of that label (within 0.5 px) or is refused, so exports, ROI agreement and consensus see it."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from annotation.assist import region_label
from annotation.models import SchemaVersion
from tests.annotation.conftest import make_client
from tests.annotation.test_ai_predictions import ANSWERS, MODEL, predictions, take
from tests.annotation.world import SCHEMA, World, build_world, ok

OUTLINED = {"instructions": SCHEMA["instructions"], "labels": [
    *SCHEMA["labels"], {"id": "nodule_box", "name": "Nodule region", "kind": "box", "color": "#d0021b"}]}
ACCEPTED = [{"label": "nodule", "box_index": 0, "action": "accept", "box": [16, 16, 32, 32]},
            {"label": "nodule", "box_index": 1, "action": "edit", "box": [38.5, 4, 61, 22.25]}]


def _schema(labels: list[dict]) -> SchemaVersion:
    return SchemaVersion(definition={"labels": labels})


def _box(label: str, instance: int, box: list[float]) -> dict:
    return {"label": label, "kind": "box", "instance": instance, "frame": 0, "points": [box[:2], box[2:]]}


def _submit(w: World, task: dict, rois: list[dict], suggestions: list[dict]):
    body = {"labels": [{"label": "nodule", "value": True, "confidence": 80}, ANSWERS[1]], "rois": rois,
            "active_ms": 1000, "assist": {"model": MODEL, "shown": True, "suggestions": suggestions}}
    return w.client.post(f"/api/tasks/{task['id']}/submit", headers=w.h("junior"), json=body)


def test_region_label_by_convention_then_by_name() -> None:
    finding = {"id": "nodule", "name": "Nodule", "kind": "boolean"}
    assert region_label(_schema([finding, {"id": "nodule_box", "name": "Anything", "kind": "box"}]), "nodule")["id"] == "nodule_box"
    assert region_label(_schema([finding, {"id": "nb", "name": "Nodule region", "kind": "box"}]), "nodule")["id"] == "nb"
    # a freehand outline is not a box; 'Nodules seen' is not named after 'Nodule'; two candidates: none
    assert region_label(_schema([finding, {"id": "n", "name": "Nodule", "kind": "freehand"}]), "nodule") is None
    assert region_label(_schema([finding, {"id": "n", "name": "Nodules seen", "kind": "box"}]), "nodule") is None
    assert region_label(_schema([finding, {"id": "a", "name": "Nodule left", "kind": "box"},
                                 {"id": "b", "name": "Nodule right", "kind": "box"}]), "nodule") is None
    assert region_label(_schema(SCHEMA["labels"]), "nodule") is None  # 'Lung nodule' vs 'Lesion box'
    assert region_label(None, "nodule") is None


def test_accepted_and_edited_boxes_are_regions(database_url: str, store_root: Path) -> None:
    """On SQLite and PostgreSQL: a reading without the regions is refused with the label and box named;
    with them (rounding within 0.5 px) it is stored, and the exports list the two as regions."""
    with make_client(database_url) as c:
        w = build_world(c, database_url, store_root, readers=1, verification=0, n_items=2)
        ok(c.post(f"/api/projects/{w.project_id}/schema", headers=w.h("manager"), json=OUTLINED), 201)
        for item in w.items:
            ok(c.put(f"/api/items/{item}/predictions", headers=w.h("manager"), json=predictions()))
        task = take(w, "junior")
        r = _submit(w, task, [], ACCEPTED)
        assert r.status_code == 422, r.text
        assert "'nodule' box 0 was accepted" in r.text and "'Nodule region' (nodule_box) region on image 1" in r.text
        edited_only = [_box("nodule_box", 0, [16, 16, 32, 32])]
        r = _submit(w, task, edited_only, ACCEPTED)
        assert r.status_code == 422 and "box 1 was edited" in r.text and "image 2" in r.text, r.text
        wrong_image = edited_only + [_box("nodule_box", 0, ACCEPTED[1]["box"])]
        assert _submit(w, task, wrong_image, ACCEPTED).status_code == 422
        wrong_label = edited_only + [_box("lesion_box", 1, ACCEPTED[1]["box"])]
        assert _submit(w, task, wrong_label, ACCEPTED).status_code == 422
        moved = edited_only + [_box("nodule_box", 1, [38.5, 4, 61.6, 22.25])]  # 0.6 px off
        assert _submit(w, task, moved, ACCEPTED).status_code == 422
        one_for_two = [_box("nodule_box", 0, [16, 16, 32, 32])]  # one region cannot stand for two suggestions
        twice = [ACCEPTED[0], {"label": "nodule", "box_index": 1, "action": "edit", "box": [16, 16, 32, 32]}]
        assert _submit(w, task, one_for_two, twice).status_code == 422
        rois = [_box("nodule_box", 0, [16.3, 15.8, 32, 32.4]), _box("nodule_box", 1, ACCEPTED[1]["box"])]
        ok(_submit(w, task, rois, ACCEPTED))

        export = ok(c.get(f"/api/projects/{w.project_id}/export/json", headers=w.h("manager")))
        (reading,) = [x for x in export["readings"] if x["task_id"] == task["id"]]
        assert [(x["label"], x["instance"], x["points"]) for x in reading["rois"]] == [
            ("nodule_box", 0, [[16.3, 15.8], [32, 32.4]]), ("nodule_box", 1, [[38.5, 4], [61, 22.25]])]
        assert [s["action"] for s in reading["assist"]["suggestions"]] == ["accept", "edit"]
        rows = [row for row in csv.DictReader(io.StringIO(c.get(f"/api/projects/{w.project_id}/export/csv",
                                                                headers=w.h("manager")).text))
                if row["task_id"] == str(task["id"]) and row["record"] == "roi"]
        assert [(row["label"], row["label_name"], row["instance"], row["x_max"]) for row in rows] == [
            ("nodule_box", "Nodule region", "0", "32.0"), ("nodule_box", "Nodule region", "1", "61.0")]


@pytest.fixture
def plain(tmp_path: Path, store_root: Path):
    url = f"sqlite:///{tmp_path / 'ai.db'}"
    with make_client(url) as client:
        yield build_world(client, url, store_root, readers=1, verification=0, n_items=2)


def test_without_a_box_label_the_suggestion_is_noted_only(plain: World) -> None:
    """The world's schema outlines lesions, not nodules: an accepted box needs no region (today's behaviour),
    and a rejected one never needs one."""
    for item in plain.items:
        ok(plain.client.put(f"/api/items/{item}/predictions", headers=plain.h("manager"), json=predictions()))
    task = take(plain, "junior")
    ok(_submit(plain, task, [], ACCEPTED))
    stored = ok(plain.client.get(f"/api/tasks/{task['id']}", headers=plain.h("junior")))["annotation"]
    assert stored["rois"] == [] and [s["box"] for s in stored["assist"]["suggestions"]] == [[16, 16, 32, 32], [38.5, 4, 61, 22.25]]
