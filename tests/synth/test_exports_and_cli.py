"""NIfTI and PNG/JPEG exports, and the `curate synth` command."""
from __future__ import annotations

import json

import cv2
import nibabel as nib
import numpy as np
import pydicom

from curate.main import main
from synth.chest import Nodule, nodule_box, projection
from synth.xray import XRAY_EXTENT_MM
from tests.synth.helpers import read_series


def test_nifti_matches_its_dicom_series_voxel_for_voxel(site):
    out, truth = site
    by_uid = {s["series_instance_uid"]: s for s in truth["series"]}
    assert {n["kind"] for n in truth["nifti"]} == {"T1W", "T2W", "FLAIR"}
    for entry in truth["nifti"]:
        img = nib.load(out / entry["file"])
        series = by_uid[entry["degradation"]["series_instance_uid"]]
        dss = read_series(out, series)
        stack = np.stack([d.pixel_array for d in dss])  # (slice, row, column)
        assert np.array_equal(np.asarray(img.dataobj), np.transpose(stack, (2, 1, 0)))
        aff = img.affine
        assert np.allclose(aff, entry["affine_ras"], atol=1e-5)
        # voxel (i=column, j=row, k=slice) -> RAS must equal the DICOM position with x, y negated
        for k in (0, len(dss) - 1):
            for i, j in ((0, 0), (5, 9)):
                ras = aff @ np.array([i, j, k, 1.0])
                ipp = np.array([float(v) for v in dss[k].ImagePositionPatient])
                iop = np.array([float(v) for v in dss[k].ImageOrientationPatient])
                dr, dc = (float(v) for v in dss[k].PixelSpacing)
                lps = ipp + i * dc * iop[:3] + j * dr * iop[3:]
                assert np.allclose(ras[:3], lps * [-1, -1, 1], atol=1e-3)
        assert img.header.get_xyzt_units()[0] == "mm"
        assert int(img.header["sform_code"]) == 1


def test_chest_pictures_are_8_bit_with_boxes_inside(site):
    out, truth = site
    formats = {p["format"] for p in truth["images"]}
    assert formats == {"png", "jpeg"}
    assert any(p["lesions"] for p in truth["images"])
    for pic in truth["images"]:
        img = cv2.imread(str(out / pic["file"]), cv2.IMREAD_UNCHANGED)
        assert img.dtype == np.uint8 and img.ndim == 2 and list(img.shape) == pic["shape"]
        for les in pic["lesions"]:
            x, y, w, h = les["box"]
            assert 0 <= x and 0 <= y and x + w <= img.shape[1] and y + h <= img.shape[0]


def test_nodule_shadow_lies_in_its_box():
    n, extent = 128, XRAY_EXTENT_MM
    nod = Nodule((-70.0, 5.0, 40.0), 9.0)
    diff = projection(n, extent, nod) - projection(n, extent, None)
    x, y, w, h = nodule_box(nod, n, extent)
    inside = np.zeros_like(diff, bool)
    inside[y:y + h, x:x + w] = True
    assert diff[inside].max() > 0.3  # ~18 mm of nodule instead of lung
    assert np.abs(diff[~inside]).max() == 0


def test_cli_writes_a_site_and_refuses_a_non_empty_folder(tmp_path, capsys):
    out = tmp_path / "site"
    rc = main(["synth", str(out), "--patients", "1", "--seed", "3", "--matrix", "32", "--slices", "6", "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    truth = json.loads((out / "ground_truth.json").read_text())
    assert summary["patients"] == 1 and summary["instances"] == sum(s["n_instances"] for s in truth["series"])
    assert truth["schema"] == "curate-synth-ground-truth/1" and truth["seed"] == 3
    first = next(r for r, f in truth["files"].items() if f["type"] == "dicom")
    assert pydicom.dcmread(out / first).Rows in (32, 64, 24, 360, 384)
    rc = main(["synth", str(out), "--patients", "1"])
    assert rc == 2
    assert "not empty" in capsys.readouterr().err


def test_cli_without_phi_locations(tmp_path, capsys):
    out = tmp_path / "site"
    assert main(["synth", str(out), "--patients", "1", "--matrix", "32", "--slices", "6", "--no-phi-locations"]) == 0
    truth = json.loads((out / "ground_truth.json").read_text())
    assert truth["phi_locations"] == [] and truth["patients"][0]["phi_values"]
