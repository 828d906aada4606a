"""Mask labels (issue 17 point 8): run-length encoded masks in a reading, refused with the label named
when their size, bounds or encoding is wrong; the DICOM SEG export gives back every painted pixel
(highdicom, dciodvfy); and STAPLE over the readers' submitted masks gives the consensus and each
reader's Dice (curation.agreement.roi.mask_consensus, fed by the service's own export rows)."""
from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from annotation import masks
from curation.agreement import roi as agreement
from curation.pipeline.collect import export_tables
from tests.annotation.conftest import make_client
from tests.annotation.world import PASSWORD, SCHEMA, build_world, ok

MASK_SCHEMA = {**SCHEMA, "labels": [*SCHEMA["labels"],
                                    {"id": "lesion_mask", "name": "Lesion mask", "kind": "mask", "color": "#3399ff"}]}
SIZE = 64  # the world's series: 3 slices of 64 x 64


def disk(cx: float, cy: float, r: float, size: int = SIZE) -> np.ndarray:
    """Pixels whose centre lies within r of (cx, cy), continuous coordinates (the brush's rule)."""
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    return (xs - cx) ** 2 + (ys - cy) ** 2 <= r * r


def mask_roi(mask: np.ndarray, instance: int = 0, label: str = "lesion_mask") -> dict:
    return {"label": label, "kind": "mask", "instance": instance, "frame": 0,
            "rows": int(mask.shape[0]), "columns": int(mask.shape[1]), "rle": masks.encode(mask)}


def _mask_world(client, url: str, store_root: Path, readers: int = 1):
    w = build_world(client, url, store_root, readers=readers, verification=0, n_items=1)
    ok(client.post(f"/api/projects/{w.project_id}/schema", headers=w.h("manager"), json=MASK_SCHEMA), 201)
    if readers > 2:  # the world has two annotators
        uid = ok(client.post("/api/users", headers=w.h("admin"), json={"username": "third", "password": PASSWORD}), 201)["id"]
        ok(client.post(f"/api/projects/{w.project_id}/members", headers=w.h("admin"),
                       json={"user_id": uid, "role": "annotator", "level": "senior"}), 201)
        w.tokens["third"] = w.login("third")
    return w


def _submit(client, w, who: str, rois: list[dict]):
    t = ok(client.post(f"/api/tasks/next?project_id={w.project_id}", headers=w.h(who)))["task"]
    body = {"labels": [{"label": "nodule", "value": True, "confidence": 80}], "rois": rois}
    return t, client.post(f"/api/tasks/{t['id']}/submit", headers=w.h(who), json=body)


@pytest.mark.parametrize("mask", [np.zeros((4, 5), bool), np.ones((4, 5), bool), disk(20, 30, 9),
                                  np.random.default_rng(3).random((33, 17)) > 0.5])
def test_run_length_encoding_round_trips_and_both_codecs_agree(mask: np.ndarray) -> None:
    runs = masks.encode(mask)
    assert runs == agreement.encode_runs(mask)  # the service and the library write the same runs
    assert np.array_equal(masks.decode(runs, *mask.shape), mask)
    assert np.array_equal(agreement.decode_runs(runs, *mask.shape), mask)
    assert sum(runs) == mask.size and all(n > 0 for n in runs[1:])


def test_mask_submission_is_validated_naming_the_label(database_url: str, store_root: Path) -> None:
    url = database_url  # SQLite and PostgreSQL: the runs live in the reading's JSON
    with make_client(url) as client:
        w = _mask_world(client, url, store_root)
        good = disk(30, 28, 8)
        t = ok(client.post(f"/api/tasks/next?project_id={w.project_id}", headers=w.h("junior")))["task"]
        submit = lambda rois: client.post(f"/api/tasks/{t['id']}/submit", headers=w.h("junior"),  # noqa: E731
                                          json={"labels": [{"label": "nodule", "value": True, "confidence": 80}], "rois": rois})
        wrong_size = mask_roi(np.pad(good, ((0, 1), (0, 0))))
        short = {**mask_roi(good), "rle": masks.encode(good)[:-1]}
        zero_run = {**mask_roi(good), "rle": [5, 0, *masks.encode(good)[1:]]}
        cases = [
            (wrong_size, "65 x 64 pixels, the image has 64 x 64"),
            (short, "runs cover"),
            (zero_run, "runs must be positive"),
            (mask_roi(np.zeros((SIZE, SIZE), bool)), "no pixel marked"),
            ({**mask_roi(good), "instance": 7}, "instance the item does not have"),
            ({**mask_roi(good), "label": "lesion_outline"}, "'lesion_outline' is not a mask label"),
        ]
        for bad, message in cases:
            r = submit([bad])
            assert r.status_code == 422, (message, r.text)
            assert message in r.text, r.text
            if "runs" in message or "pixel" in message:
                assert "mask 'Lesion mask' (lesion_mask) on image 1" in r.text
        r = submit([mask_roi(good), mask_roi(good)])
        assert r.status_code == 422 and "given twice" in r.text and "lesion_mask" in r.text
        for shape_error in ({**mask_roi(good), "points": [[1, 1], [2, 2]]}, {k: v for k, v in mask_roi(good).items() if k != "rle"},
                            {"label": "lesion_box", "kind": "box", "points": [[1, 1], [5, 5]], "rle": [4096]}):
            r = submit([shape_error])
            assert r.status_code == 422, shape_error
        assert ok(client.get(f"/api/tasks/{t['id']}", headers=w.h("junior")))["status"] == "assigned"
        ok(submit([mask_roi(good), mask_roi(disk(10, 10, 3), instance=2)]))
        stored = ok(client.get(f"/api/tasks/{t['id']}", headers=w.h("junior")))["annotation"]["rois"]
        assert [r["kind"] for r in stored] == ["mask", "mask"] and "points" not in stored[0]
        assert np.array_equal(masks.roi_mask(stored[0]), good)
        # the tabular export carries the bounding box and the encoding
        table = ok(client.get(f"/api/projects/{w.project_id}/export/csv", headers=w.h("manager"))).text
        row = next(r for r in csv.DictReader(io.StringIO(table)) if r["roi_kind"] == "mask" and r["instance"] == "0")
        assert (float(row["x_min"]), float(row["y_min"]), float(row["x_max"]), float(row["y_max"])) == masks.bounding_box(good)
        assert np.array_equal(masks.roi_mask(json.loads(row["points"])), good)


def _dciodvfy_errors(path: Path) -> set[str]:
    out = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    return {line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")}


def test_seg_export_gives_back_every_painted_pixel(tmp_path: Path, store_root: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    with make_client(url) as client:
        w = _mask_world(client, url, store_root)
        painted = {0: disk(30, 28, 8), 2: disk(12.5, 40, 5.5) | disk(50, 50, 3)}
        box = {"label": "lesion_box", "kind": "box", "instance": 1, "frame": 0, "points": [[10, 12], [30, 28]]}
        t, r = _submit(client, w, "junior", [mask_roi(m, i) for i, m in painted.items()] + [box])
        ok(r)
        uids = [i["sop_instance_uid"] for i in t["item"]["instances"]]
        blob = client.get(f"/api/projects/{w.project_id}/export/seg", headers=w.h("manager")).content
        archive = zipfile.ZipFile(io.BytesIO(blob))
        manifest = json.loads(archive.read("manifest.json"))
        assert manifest["skipped"] == [] and len(manifest["files"]) == 1
        raw = archive.read(manifest["files"][0]["file"])
        seg = hd.seg.Segmentation.from_dataset(pydicom.dcmread(io.BytesIO(raw)))
        labels = {s.segment_label: s.segment_number for s in seg.SegmentSequence}
        assert set(labels) == {"lesion_box", "lesion_mask"}
        assert seg.SegmentationType == "BINARY"
        assert {r.ReferencedSOPInstanceUID for se in seg.ReferencedSeriesSequence for r in se.ReferencedInstanceSequence} == set(uids)
        got = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, segment_numbers=[labels["lesion_mask"]],
                                                ignore_spatial_locations=True, assert_missing_frames_are_empty=True)
        for n in range(3):
            assert np.array_equal(got[n, :, :, 0].astype(bool), painted.get(n, np.zeros((SIZE, SIZE), bool))), n
        if shutil.which("dciodvfy"):
            path = tmp_path / "seg.dcm"
            path.write_bytes(raw)
            assert not _dciodvfy_errors(path)


def test_staple_consensus_from_submitted_masks(tmp_path: Path, store_root: Path) -> None:
    """Two readers paint the same lesion, the third a shifted one, on two slices: STAPLE's consensus is
    the two readers' lesion, pixel for pixel; their Dice with it is 1 and the third's its overlap."""
    url = f"sqlite:///{tmp_path / 'c.db'}"
    lesion = {0: disk(30, 30, 9), 1: disk(31, 29, 7)}
    shifted = {i: np.roll(m, 4, axis=1) for i, m in lesion.items()}
    with make_client(url) as client:
        w = _mask_world(client, url, store_root, readers=3)
        for who, drawn in (("junior", lesion), ("senior", lesion), ("third", shifted)):
            t, r = _submit(client, w, who, [mask_roi(m, i) for i, m in drawn.items()])
            ok(r)
        rows = ok(client.get(f"/api/projects/{w.project_id}/export/csv", headers=w.h("manager"))).text
        # the review compares masks by their pixels: a 4-pixel shift of a 9-pixel disk overlaps under IoU 0.6
        review = ok(client.get(f"/api/items/{t['item']['id']}/review?iou_threshold=0.6", headers=w.h("manager")))
        misplaced = {(d["label"], tuple(d["readers"])) for d in review["roi_disagreements"] if d["kind"] == "misplaced"}
        assert ("lesion_mask", ("junior", "third")) in misplaced and ("lesion_mask", ("junior", "senior")) not in misplaced
    tables = export_tables(csv.DictReader(io.StringIO(rows)), pseudonym=lambda name: name)
    painted = tables.boxes[tables.boxes["roi_kind"] == "mask"]
    assert len(painted) == 6
    result = agreement.mask_consensus(painted)
    assert result.skipped.empty
    assert sorted(zip(result.masks["instance"], result.masks["frame"])) == [(0, 0), (1, 0)]
    for rec in result.masks.to_dict(orient="records"):
        assert np.array_equal(agreement.decode_runs(rec["rle"], rec["rows"], rec["columns"]), lesion[rec["instance"]])
    dice = dict(zip(result.readers["annotator"], result.readers["dice"]))
    both = sum(int(m.sum()) for m in lesion.values())
    overlap = sum(int((lesion[i] & shifted[i]).sum()) for i in lesion)
    assert dice["junior"] == dice["senior"] == 1.0
    assert dice["third"] == pytest.approx(2 * overlap / (2 * both))
    assert result.summary()["mean_dice"]["third"] < 1.0
