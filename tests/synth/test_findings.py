"""Findings with known truth: every finding has positives and negatives on the 3-patient site, each
region lies where the truth says and shows its planted contrast in the pixels as written, masks are
the phantom's labels read back through the headers, and the truth is found again from de-identified
items (pseudonymised UIDs, decoded pixels and voxels)."""
from __future__ import annotations

import io

import hypothesis.strategies as st
import nibabel as nib
import numpy as np
import pydicom
import pytest
from hypothesis import given, settings
from PIL import Image

from synth.chest import ChestFindings, ChestTissue, Effusion, Opacity, chest_labels_at, findings_delta, shadow_masks
from synth.findings import (
    FINDINGS,
    chest_findings,
    chest_from_geometry,
    findings_from_truth,
    load_findings,
    pixel_key,
)
from synth.phantom import Tissue
from synth.regions import box_of, contrast, inside_and_surround, rle_decode, rle_encode
from synth.ct import ROUTINE_NOISE_HU
from synth.degrade import BASELINE_NOISE_SIGMA
from synth.mr import PEAK_STORED
from synth.xray import XR_NOISE, XRAY_EXTENT_MM
from tests.synth.helpers import header_labels, header_points, patient_of

CHEST_TISSUE = {"nodule": ChestTissue.NODULE, "opacity": ChestTissue.OPACITY, "effusion": ChestTissue.EFFUSION}


def _items(truth):
    """(record, is_picture) of everything that carries findings."""
    return [(s, False) for s in truth["series"] if "findings" in s] + [(p, True) for p in truth["images"]]


def _pixels(out, rel, picture):
    if picture:
        with Image.open(out / rel) as im:
            return np.asarray(im.convert("L")).astype(np.float64)
    return pydicom.dcmread(out / rel).pixel_array.astype(np.float64)


def test_every_finding_has_positives_and_negatives_with_the_documented_prevalence(site):
    _, truth = site
    counts = truth["findings"]["counts"]
    assert set(counts) == set(FINDINGS)
    for name in ("nodule", "opacity", "effusion"):
        assert counts[name]["positive_series"] > 0 and counts[name]["negative_series"] > 0, (name, counts[name])
    expected = {"nodule": [0, 1], "opacity": [0], "effusion": [1]}  # index % 3 rules of FINDINGS
    for name, patients in expected.items():
        assert [c["patient_index"] for c in truth["findings"]["chest"] if name in c] == patients
    # the brain lesion is in every head; its negatives are the slices without it
    index = findings_from_truth(truth)
    brain = [s for s in truth["series"] if "brain_lesion" in s.get("findings", {})]
    assert {s["kind"] for s in brain} == {"T2W", "FLAIR", "CT"} and all(s["findings"]["brain_lesion"]["present"]
                                                                        for s in brain)
    shown = [index.instances[truth["files"][f]["sop_instance_uid"]]["brain_lesion"].present
             for s in brain for f in s["files"]]
    assert any(shown) and not all(shown)


def _noise_sigma(rec: dict, picture: bool) -> float:
    """The quantum/thermal noise the site adds to an undegraded image, in stored units (an upper
    bound for MR: sigma is 0.8 % of the clean 99th percentile, which is below the peak)."""
    if picture:
        return XR_NOISE * 255
    return {"CT_LOCALIZER": 0.0, "CR": XR_NOISE * 4095, "DX": XR_NOISE * 4095,
            "CT": ROUTINE_NOISE_HU.get(rec["body_part"], 10.0)}.get(rec["kind"], BASELINE_NOISE_SIGMA * PEAK_STORED)


def test_each_region_shows_its_planted_contrast_where_the_truth_says(site):
    """Measured on the written pixels of every image without a defect: mean inside the mask minus
    mean of the 3-pixel ring around it equals the noise-free planted contrast within four standard
    errors of the site's noise (plus rounding, and JPEG's loss), and stands at least four standard
    errors clear of zero: a reader can see it there."""
    out, truth = site
    checked = set()
    for rec, picture in _items(truth):
        if not picture and rec["degradation"]["type"] is not None:
            continue
        for name, entry in rec["findings"].items():
            assert entry["present"] == bool(entry["regions"])
            for region in entry["regions"]:
                for inst in region["instances"]:
                    img = _pixels(out, inst["file"], picture)
                    mask = rle_decode(inst["mask"])
                    inside, around = inside_and_surround(img.shape, inst["box"], mask)
                    se = _noise_sigma(rec, picture) * np.sqrt(1 / inside.sum() + 1 / around.sum())
                    loss = 0.5 + (1.0 if inst["file"].endswith(".jpg") else 0.0)
                    measured = contrast(img, inst["box"], mask)
                    assert abs(measured - inst["contrast"]) <= 4 * se + loss, (name, inst["file"], measured, inst)
                    assert abs(inst["contrast"]) >= 4 * se, (name, inst["file"], se, inst)
                    checked.add((name, "picture" if picture else rec["kind"]))
    for name in ("nodule", "opacity", "effusion"):
        assert {(name, "picture"), (name, "CT_LOCALIZER"), (name, "CT")} <= checked, (name, checked)
    assert {("brain_lesion", "T2W"), ("brain_lesion", "FLAIR"), ("brain_lesion", "CT")} <= checked


def test_findings_change_the_pixels_only_in_their_boxes(site):
    """The finding's shadow on a projection is inside its box, and the box holds a clear change."""
    _, truth = site
    n = truth["options"]["xray_matrix"]
    for geometry in truth["findings"]["chest"]:
        chest = chest_from_geometry(geometry)
        boxes = {k: box_of(m) for k, m in shadow_masks(chest, n, XRAY_EXTENT_MM).items()}
        for name, one in (("opacity", ChestFindings(opacity=chest.opacity)), ("effusion", ChestFindings(effusion=chest.effusion))):
            if getattr(chest, name) is None:
                assert name not in boxes
                continue
            delta = findings_delta(n, XRAY_EXTENT_MM, one)
            x, y, w, h = boxes[name]
            inside = np.zeros(delta.shape, bool)
            inside[y:y + h, x:x + w] = True
            assert np.abs(delta[~inside]).max() == 0 and delta[inside].max() > 0.3  # >= ~15 mm of fluid for lung


def test_projection_regions_lie_over_the_planted_findings_per_the_topogram_header(site):
    """On the topogram (whose IPP/IOP/PixelSpacing place every pixel in LPS) a nodule's or opacity's
    mask is centred on the planted centre (x, z); the radiograph and the pictures of the same
    patient (same grid) carry the very same masks."""
    out, truth = site
    chests = {c["patient_index"]: c for c in truth["findings"]["chest"]}
    masks: dict[tuple[str, str], list] = {}
    for rec, picture in _items(truth):
        if not picture and rec["kind"] not in ("CT_LOCALIZER", "CR", "DX"):
            continue
        patient = rec["patient_index"] if picture else patient_of(truth, rec["patient_id"])["index"]
        for name, entry in rec["findings"].items():
            for inst in (i for r in entry["regions"] for i in r["instances"]):
                masks.setdefault((patient, name), []).append(rle_decode(inst["mask"]))
                if picture or rec["kind"] != "CT_LOCALIZER" or name == "effusion":
                    continue
                pts = header_points(pydicom.dcmread(out / inst["file"], stop_before_pixels=True))
                centre = pts[rle_decode(inst["mask"])].mean(axis=0)
                planted = chests[patient][name]["centre_mm"]
                spacing = XRAY_EXTENT_MM / (truth["options"]["xray_matrix"] - 1)
                assert abs(centre[0] - planted[0]) < 1.5 * spacing and abs(centre[2] - planted[2]) < 1.5 * spacing
    assert {name for _, name in masks} == {"nodule", "opacity", "effusion"}
    for key, same in masks.items():
        assert len(same) >= 3 and all(np.array_equal(m, same[0]) for m in same), key


def test_ct_masks_are_the_phantom_read_back_through_the_headers(site):
    out, truth = site
    chests = {c["patient_index"]: chest_from_geometry(c) for c in truth["findings"]["chest"]}
    n = 0
    for s in truth["series"]:
        if s["kind"] != "CT" or "findings" not in s:
            continue
        head = s["body_part"] == "HEAD"
        p = patient_of(truth, s["patient_id"])
        for k, rel in enumerate(s["files"]):
            ds = pydicom.dcmread(out / rel, stop_before_pixels=True)
            labels = (header_labels(ds, p["head_scale"]) if head
                      else chest_labels_at(header_points(ds), findings=chests[p["index"]]))
            for name, entry in s["findings"].items():
                tissue = Tissue.LESION if head else CHEST_TISSUE[name]
                got = [i for r in entry["regions"] for i in r["instances"] if i["file"] == rel]
                want = labels == tissue
                assert (rle_decode(got[0]["mask"]) == want).all() if got else not want.any(), (name, rel)
                n += bool(got)
    assert n > 5


def test_mr_lesion_masks_are_the_phantom_and_nifti_copies_match(site):
    out, truth = site
    for s in truth["series"]:
        if s["kind"] not in ("T2W", "FLAIR"):
            continue
        scale = patient_of(truth, s["patient_id"])["head_scale"]
        entry = s["findings"]["brain_lesion"]
        by_file = {i["file"]: i for r in entry["regions"] for i in r["instances"]}
        for rel in s["files"]:
            want = header_labels(pydicom.dcmread(out / rel, stop_before_pixels=True), scale) == Tissue.LESION
            assert (rle_decode(by_file[rel]["mask"]) == want).all() if rel in by_file else not want.any()
        nii = next(v for v in truth["nifti"] if v["degradation"]["series_instance_uid"] == s["series_instance_uid"])
        vol = np.asanyarray(nib.load(out / nii["file"]).dataobj)
        assert pixel_key(vol) == nii["voxel_sha256"]
        for r in nii["findings"]["brain_lesion"]["regions"]:
            for inst in r["instances"]:  # voxel (i, j, k) = (column, row, slice)
                mask = rle_decode(inst["mask"])
                dicom = pydicom.dcmread(out / s["files"][inst["slice"]]).pixel_array
                assert np.array_equal(vol[:, :, inst["slice"]].T, dicom) and mask.shape == dicom.shape


def test_degraded_radiographs_say_whether_the_finding_survived(site):
    """Every radiograph region says if it can be seen: a clean one always can; where the defect left
    less than half of the finding's change (a severe under-exposure clips the lung white), the
    written pixels show less than half of the planted contrast, and where it left more, more."""
    out, truth = site
    seen = set()
    for s in truth["series"]:
        if s["kind"] not in ("CR", "DX"):
            continue
        for entry in s["findings"].values():
            for inst in (i for r in entry["regions"] for i in r["instances"]):
                img = pydicom.dcmread(out / inst["file"]).pixel_array.astype(np.float64)
                mask = rle_decode(inst["mask"])
                inside, frame = inside_and_surround(img.shape, inst["box"], mask)
                se = np.sqrt(img[inside].var() / inside.sum() + img[frame].var() / frame.sum())
                signed = contrast(img, inst["box"], mask)
                measured = abs(signed)
                if s["degradation"]["type"] is None:
                    assert inst["visible"]
                elif inst["visible"]:
                    assert measured > 0.5 * abs(inst["contrast"]) - 4 * se, (inst, measured)
                    assert np.sign(signed) == np.sign(inst["contrast"]), (inst, signed)  # CR: MONOCHROME1
                else:
                    assert measured < 0.5 * abs(inst["contrast"]) + 4 * se, (inst, measured)
                seen.add(inst["visible"])
    assert seen == {True, False}  # seed 7: patient 1's DX is under-exposed to white


def test_truth_is_found_from_pseudonymised_uids_of_the_real_deidentifier(site, tmp_path):
    from deid.engine import Deidentifier
    from deid.pseudonym import Pseudonymizer

    out, truth = site
    secret = b"synthetic-site-secret-for-tests!"
    raw = load_findings(out)
    deid = raw.pseudonymised(Pseudonymizer(secret).uid)
    engine = Deidentifier("default", secret)
    series = next(s for s in truth["series"] if s["kind"] == "CT" and s["findings"].get("nodule", {}).get("present"))
    for rel in series["files"]:
        res = engine.deidentify((out / rel).read_bytes())
        assert res.status == "written", res.reason
        ds = pydicom.dcmread(io.BytesIO(res.data))
        sop = truth["files"][rel]["sop_instance_uid"]
        assert str(ds.SOPInstanceUID) != sop
        for name in ("nodule", "opacity", "effusion"):
            got, want = deid.shows(str(ds.SOPInstanceUID), name), raw.shows(sop, name)
            assert got.present == want.present
            assert [(r.id, r.box, r.contrast) for r in got.regions] == [(r.id, r.box, r.contrast) for r in want.regions]
            assert all(r.instance == str(ds.SOPInstanceUID) for r in got.regions)
            assert deid.shows(str(ds.SeriesInstanceUID), name).present == series["findings"][name]["present"]
        # the grid the regions refer to is the de-identified image's
        assert np.array_equal(ds.pixel_array, pydicom.dcmread(out / rel).pixel_array)
    with pytest.raises(KeyError):
        deid.shows(truth["files"][series["files"][0]]["sop_instance_uid"], "nodule")  # raw UIDs are gone


def test_pictures_and_volumes_are_found_from_their_deidentified_pixels(site):
    from deid.nifti import deidentify_nifti
    from deid.raster import deidentify_raster

    out, truth = site
    index = load_findings(out)
    for pic in truth["images"]:
        res = deidentify_raster((out / pic["file"]).read_bytes())
        assert res.status == "written", res.reason
        with Image.open(io.BytesIO(res.data)) as im:
            key = pixel_key(np.asarray(im.convert("L")))
        for name in ("nodule", "opacity", "effusion"):
            assert index.shows(key, name).present == pic["findings"][name]["present"]
    for vol in (v for v in truth["nifti"] if "findings" in v):
        res = deidentify_nifti((out / vol["file"]).read_bytes())
        assert res.status == "written", res.reason
        key = pixel_key(np.asanyarray(nib.Nifti1Image.from_bytes(_gunzip(res.data)).dataobj))
        assert index.shows(key, "brain_lesion").present


def _gunzip(data: bytes) -> bytes:
    import gzip

    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def test_findings_are_deterministic_and_per_patient():
    a = [chest_findings(5, i, None) for i in range(6)]
    assert a == [chest_findings(5, i, None) for i in range(6)]
    assert a[0].opacity is not None and a[0].effusion is None and a[1].effusion is not None and not a[2].any()
    assert a[0].opacity != chest_findings(6, 0, None).opacity


def test_opacity_and_effusion_replace_lung_only():
    chest = ChestFindings(opacity=Opacity((75.0, 10.0, 60.0), (20.0, 26.0, 26.0)), effusion=Effusion("right", 40.0))
    rng = np.random.default_rng(0)
    pts = np.stack([rng.uniform(-160, 160, 200_000), rng.uniform(-105, 105, 200_000), rng.uniform(-150, 150, 200_000)],
                   axis=-1)
    bare, with_ = chest_labels_at(pts), chest_labels_at(pts, findings=chest)
    changed = bare != with_
    assert changed.sum() > 1000
    assert (bare[changed] == ChestTissue.LUNG).all()
    assert set(np.unique(with_[changed])) == {ChestTissue.OPACITY, ChestTissue.EFFUSION}
    assert (pts[with_ == ChestTissue.EFFUSION, 0] < 0).all()  # the right lung is on the patient's right (-x)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12), st.integers(0, 2**31 - 1), st.floats(0.0, 1.0))
def test_rle_round_trip(rows, cols, seed, density):
    mask = np.random.default_rng(seed).random((rows, cols)) < density
    rle = rle_encode(mask)
    assert sum(rle["counts"]) == rows * cols and rle["size"] == [rows, cols]
    assert all(c > 0 for c in rle["counts"][1:])
    assert np.array_equal(rle_decode(rle), mask)
