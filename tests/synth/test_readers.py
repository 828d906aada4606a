"""Simulated reader profiles: measured sensitivity/specificity within binomial bounds, random near
one half, straight-lining gives one answer, box noise as designed, answers fixed by (seed, reader,
item, label), and the reader spec's errors."""
from __future__ import annotations

import math

import numpy as np
import pytest

from synth.reader_truth import ItemLabelTruth, TruthRegion, label_truth, truth_from_json
from synth.readers import (CONFIDENCE_STEPS, PROFILES, Box, LabelTruth, answer, item_reading, parse_readers,
                           reading_rng)

N = 4000
BOX = Box(100, 120, 40, 30)
POSITIVE = LabelTruth(True, (BOX,))
NEGATIVE = LabelTruth(False)


def _rate(profile: str, truth: LabelTruth, seed: int = 0) -> float:
    p = PROFILES[profile]
    return float(np.mean([answer(p, truth, "nodule", reading_rng(seed, "r1", f"item-{i}", "nodule"), (512, 512)).value
                          for i in range(N)]))


def _within_binomial(measured: float, p: float, n: int = N, z: float = 4.0) -> bool:
    return abs(measured - p) <= z * math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("profile", ["careful", "hasty", "slow"])
def test_sensitivity_and_specificity_within_binomial_bounds(profile: str) -> None:
    p = PROFILES[profile]
    sens, spec = _rate(profile, POSITIVE), 1 - _rate(profile, NEGATIVE)
    assert _within_binomial(sens, p.sensitivity), (profile, sens)
    assert _within_binomial(spec, p.specificity), (profile, spec)


def test_careful_is_0_9_and_random_ignores_the_truth() -> None:
    assert (PROFILES["careful"].sensitivity, PROFILES["careful"].specificity) == (0.9, 0.9)
    yes_on_positive, yes_on_negative = _rate("random", POSITIVE), _rate("random", NEGATIVE)
    assert _within_binomial(yes_on_positive, 0.5) and _within_binomial(yes_on_negative, 0.5)
    assert abs(_rate("careful", POSITIVE) - _rate("careful", NEGATIVE)) > 0.7


def test_flat_reader_gives_one_answer_and_one_confidence() -> None:
    p = PROFILES["flat"]
    readings = [answer(p, t, "x", reading_rng(3, "f", f"i{i}", "x"), (64, 64)) for i in range(300)
                for t in (POSITIVE, NEGATIVE)]
    assert {(r.value, r.confidence, r.boxes) for r in readings} == {(False, 60, ())}


def test_box_noise_iou_distribution() -> None:
    """Careful boxes overlap the truth closely (edge noise 5 % of the size: IoU median > 0.85), hasty
    ones less (15 %), random ones hardly at all."""
    def ious(profile: str) -> np.ndarray:
        out = []
        for i in range(1500):
            r = answer(PROFILES[profile], POSITIVE, "n", reading_rng(1, profile, f"i{i}", "n"), (512, 512))
            out += [b.iou(BOX) for b in r.boxes]
        return np.array(out)
    careful, hasty, random = ious("careful"), ious("hasty"), ious("random")
    assert np.median(careful) > 0.85 and np.quantile(careful, 0.05) > 0.7
    assert 0.5 < np.median(hasty) < np.median(careful)
    assert np.median(random) < 0.05
    assert len(hasty) < 0.85 * len(careful)  # the hasty reader forgets a fifth of its boxes


def test_boxes_stay_inside_the_image_and_only_on_yes() -> None:
    edge = LabelTruth(True, (Box(0, 0, 20, 20),))
    for i in range(500):
        r = answer(PROFILES["hasty"], edge, "n", reading_rng(0, "h", f"i{i}", "n"), (64, 48))
        assert r.value or not r.boxes
        for b in r.boxes:
            assert b.x >= 0 and b.y >= 0 and b.x + b.w <= 64 and b.y + b.h <= 48 and b.w >= 1 and b.h >= 1


def test_confidence_habits_and_reading_time() -> None:
    careful = [answer(PROFILES["careful"], POSITIVE, "n", reading_rng(0, "c", f"i{i}", "n")) for i in range(2000)]
    right = [r.confidence for r in careful if r.value]
    wrong = [r.confidence for r in careful if not r.value]
    assert set(right) | set(wrong) <= set(CONFIDENCE_STEPS)
    assert np.mean(right) > np.mean(wrong) + 20  # careful readers know when they are unsure
    seconds = {name: np.median([answer(p, POSITIVE, "n", reading_rng(0, name, f"i{i}", "n"), (64, 64)).seconds
                                for i in range(1000)]) for name, p in PROFILES.items()}
    assert seconds["slow"] > 3 * seconds["careful"] > 3 * seconds["hasty"]
    assert seconds["careful"] == pytest.approx(PROFILES["careful"].seconds_median, rel=0.1)  # lognormal median


def test_answers_are_fixed_by_seed_reader_item_label() -> None:
    truth = {"nodule": POSITIVE, "effusion": NEGATIVE}
    a = item_reading(PROFILES["hasty"], "sim-hasty-1", 7, "item-1", truth, ["nodule", "effusion"], (512, 512))
    assert a == item_reading(PROFILES["hasty"], "sim-hasty-1", 7, "item-1", truth, ["effusion", "nodule"], (512, 512))
    draws = {tuple(sorted(item_reading(PROFILES["random"], r, s, i, truth, ["nodule", "effusion"], (512, 512)).items()))
             for r, s, i in [("a", 7, "x"), ("b", 7, "x"), ("a", 8, "x"), ("a", 7, "y")]}
    assert len(draws) == 4  # each of reader, seed and item changes the stream


def test_reader_spec() -> None:
    readers = parse_readers("careful:3,random:1,straight-lining")
    assert [r.username for r in readers] == ["sim-careful-1", "sim-careful-2", "sim-careful-3", "sim-random-1",
                                             "sim-flat-1"]
    for bad, words in [("careful:3,sloppy:1", "unknown profile 'sloppy'"), ("careful:x", "not a whole number"),
                       ("careful:0", "1 to 1000"), ("careful,careful:2", "given twice"), ("", "expected PROFILE"),
                       ("careful:1,,flat", "expected PROFILE")]:
        with pytest.raises(ValueError, match=words):
            parse_readers(bad)


def test_truth_regions_land_on_the_items_instances(tmp_path) -> None:
    t = ItemLabelTruth(True, (TruthRegion((1, 2, 3, 4), "1.2.3"), TruthRegion((5, 6, 7, 8), "9.9"),
                              TruthRegion((0, 0, 2, 2), 4)))
    placed = label_truth(t, ["1.0", "1.2.3"])
    assert placed.boxes == (Box(1, 2, 3, 4, instance=1), Box(0, 0, 2, 2, instance=4))
    assert label_truth(t, ["1.0"]).boxes[-1] == Box(0, 0, 2, 2, instance=0, frame=4)  # a volume: slice = frame
    path = tmp_path / "truth.json"
    path.write_text('{"a": {"nodule": {"value": true, "boxes": [[1, 2, 3, 4], {"box": [0, 0, 1, 1], "instance": 2}]}}}')
    assert truth_from_json(path)["a"]["nodule"].regions[1] == TruthRegion((0, 0, 1, 1), 2)
    path.write_text('{"a": {"nodule": {"value": "yes"}}}')
    with pytest.raises(ValueError, match="item 'a' label 'nodule'"):
        truth_from_json(path)


def test_truth_of_a_site_is_found_by_the_items_keys_after_deidentification(site, tmp_path) -> None:
    """The pipeline's item keys: the de-identified SeriesInstanceUID (regions placed on the
    de-identified instances) and the content-hash folder of a picture or volume in the deid zone."""
    import io

    import pydicom

    from deid.engine import Deidentifier
    from deid.nifti import deidentify_nifti
    from deid.raster import deidentify_raster
    from synth.reader_truth import truth_from_site

    out, truth = site
    secret = b"synthetic-site-secret-for-tests!"
    deid_root = tmp_path / "deid"
    pic = next(p for p in truth["images"] if p["findings"]["nodule"]["present"])
    (deid_root / "images" / "h1").mkdir(parents=True)
    (deid_root / "images" / "h1" / "h1.png").write_bytes(deidentify_raster((out / pic["file"]).read_bytes()).data)
    vol = next(v for v in truth["nifti"] if "findings" in v)
    (deid_root / "volumes" / "h2").mkdir(parents=True)
    (deid_root / "volumes" / "h2" / "h2.nii.gz").write_bytes(deidentify_nifti((out / vol["file"]).read_bytes()).data)
    found = truth_from_site(out, secret, deid_root)

    series = next(s for s in truth["series"] if s["kind"] in ("CR", "DX") and s["findings"]["nodule"]["present"])
    engine = Deidentifier("default", secret)
    deid = [pydicom.dcmread(io.BytesIO(engine.deidentify((out / rel).read_bytes()).data)) for rel in series["files"]]
    item = found[str(deid[0].SeriesInstanceUID)]
    for name in ("nodule", "opacity", "effusion"):
        assert item[name].present == (series["findings"][name]["present"]
                                       and all(i["visible"] for r in series["findings"][name]["regions"]
                                               for i in r["instances"]))
    placed = label_truth(item["nodule"], [str(ds.SOPInstanceUID) for ds in deid])
    want = series["findings"]["nodule"]["regions"][0]["instances"][0]
    assert placed.boxes == (Box(*map(float, want["box"]), instance=series["files"].index(want["file"])),)
    pic_box = pic["findings"]["nodule"]["regions"][0]["instances"][0]["box"]
    assert found["h1"]["nodule"].present and found["h1"]["nodule"].regions[0].box == tuple(map(float, pic_box))
    assert found["h2"]["brain_lesion"].present and found["h2"]["brain_lesion"].regions[0].instance is not None


def test_quality_review_answers() -> None:
    from synth.readers import QualityTruth, quality_answer

    bad, good = QualityTruth("exclude", "ghosting (severity 4)"), QualityTruth("approve")

    def decisions(profile: str, truth: QualityTruth) -> list:
        return [quality_answer(PROFILES[profile], truth, reading_rng(0, profile, f"i{i}", "quality")) for i in range(N)]
    careful_bad, careful_good = decisions("careful", bad), decisions("careful", good)
    assert _within_binomial(np.mean([q.decision == "exclude" for q in careful_bad]), 0.9)
    assert _within_binomial(np.mean([q.decision == "approve" for q in careful_good]), 0.9)
    assert all(q.reason == "ghosting (severity 4)" for q in careful_bad if q.decision == "exclude")
    assert {q.decision for q in decisions("flat", bad)} == {"approve"}
    shares = [np.mean([q.decision == d for q in decisions("random", bad)]) for d in ("approve", "exclude", "quarantine")]
    assert all(_within_binomial(s, 1 / 3) for s in shares)
    assert all(q.reason for q in decisions("random", good) if q.decision != "approve")  # the service requires one
    with pytest.raises(ValueError, match="not one of"):
        QualityTruth("maybe")


def test_cli_reads_a_deidentified_site_against_its_truth(site, tmp_path) -> None:
    """`curate annotators simulate --site`: radiographs de-identified by the real engine, registered
    as the pipeline registers them (external id = de-identified SeriesInstanceUID) in a project with
    the shipped chest schema on a live service; careful readers' boxes land on the truth's regions."""
    import io
    import json
    import subprocess
    import sys

    import httpx
    import pydicom
    import yaml

    from annotation.admin import create_admin
    from deid.engine import Deidentifier
    from tests.annotation.conftest import ROOT, LiveServer

    out, truth = site
    secret = b"synthetic-site-secret-for-tests!"
    (tmp_path / "secret").write_bytes(secret)
    engine = Deidentifier("default", secret)
    items, expected = [], {}
    for s in (s for s in truth["series"] if s["kind"] in ("CR", "DX")):
        uris = []
        for rel in s["files"]:
            data = engine.deidentify((out / rel).read_bytes()).data
            ds = pydicom.dcmread(io.BytesIO(data))
            path = tmp_path / "deid" / str(ds.SeriesInstanceUID) / f"{ds.SOPInstanceUID}.dcm"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            uris.append(path.as_uri())
        items.append({"external_id": str(ds.SeriesInstanceUID), "uris": uris, "modality": s["modality"]})
        expected[str(ds.SeriesInstanceUID)] = s["findings"]
    assert items
    schema = yaml.safe_load((ROOT / "include/annotation/schemas/chest_findings_v1.yaml").read_text())["schema"]
    server = LiveServer(f"sqlite:///{tmp_path / 'a.db'}", tmp_path / "service.log")
    try:
        create_admin(server.database_url, "admin", "correct-horse-battery")
        token = httpx.post(server.url + "/api/auth/login",
                           json={"username": "admin", "password": "correct-horse-battery"}).json()["token"]
        admin = {"Authorization": f"Bearer {token}"}
        pid = httpx.post(server.url + "/api/projects", headers=admin,
                         json={"name": "cr", "readers_per_item": 2, "schema": schema}).json()["id"]
        assert httpx.post(f"{server.url}/api/projects/{pid}/rounds", headers=admin,
                          json={"name": "r1", "readers_per_item": 2, "items": items}).status_code == 201
        proc = subprocess.run(
            [sys.executable, "-m", "curate.main", "annotators", "simulate", "--url", server.url, "--project", "cr",
             "--readers", "careful:2", "--site", str(out), "--truth-secret-file", str(tmp_path / "secret"),
             "--admin-token", token, "--json", "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert json.loads(proc.stdout)["tasks_done"] == 2 * len(items)
        readings = httpx.get(f"{server.url}/api/projects/{pid}/export/json", headers=admin).json()["readings"]
    finally:
        server.stop()
    ious = []
    for r in readings:
        found = expected[r["item"]["external_id"]]
        assert {lv["label"] for lv in r["labels"]} == {"nodule", "opacity", "effusion"}
        for roi in r["rois"]:
            finding = roi["label"].removesuffix("_box")
            inst = found[finding]["regions"][0]["instances"][0]
            x, y, w, h = inst["box"]
            (x0, y0), (x1, y1) = roi["points"]
            ious.append(Box(x0, y0, x1 - x0, y1 - y0).iou(Box(x, y, w, h)))
    assert ious and np.median(ious) > 0.7


@pytest.mark.parametrize("args, words", [
    (["--readers", "careful:3,sloppy:1", "--truth-json", "t.json"], "unknown profile 'sloppy'"),
    (["--site", "nowhere"], "needs the de-identification secret"),
    (["--truth-json", "t.json", "--concurrency", "0"], "--concurrency must be at least 1"),
])
def test_cli_errors_name_the_problem(args, words, capsys, monkeypatch) -> None:
    from curate.main import main

    monkeypatch.delenv("CURATE_PSEUDONYM_SECRET", raising=False)
    assert main(["annotators", "simulate", "--url", "http://127.0.0.1:9", "--project", "p", *args]) == 2
    assert words in capsys.readouterr().err
