"""The synthetic site: determinism, coverage, ground truth against the files, decodability."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.errors import InvalidDicomError

from synth import generate_site
from tests.synth.conftest import SITE_ARGS

MR_KINDS = {"T1W", "T2W", "FLAIR", "PDW", "DWI", "ADC", "DCE", "SWI", "LOCALIZER"}
ALL_KINDS = MR_KINDS | {"CT", "CT_LOCALIZER", "CR", "DX", "US", "SC"}
BAD_TYPES = {"corrupt", "truncated", "non_dicom", "duplicate", "conflict", "missing_uid"}


def _hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.mark.slow
def test_same_arguments_give_identical_bytes(site, tmp_path):
    out, _ = site
    generate_site(tmp_path / "again", progress=lambda m: None, **SITE_ARGS)
    first, second = _hashes(out), _hashes(tmp_path / "again")
    assert len(first) > 500
    assert first == second


def test_first_patients_do_not_depend_on_site_size(site, tmp_path):
    out, _ = site
    generate_site(tmp_path / "one", progress=lambda m: None, **dict(SITE_ARGS, patients=1))
    one = {k: v for k, v in _hashes(tmp_path / "one").items() if k.startswith(("dicom/P00001/", "nifti/P00001/"))}
    full = _hashes(out)
    assert one and all(full[k] == v for k, v in one.items())


def test_every_kind_modality_defect_and_bad_input_present(site):
    _, truth = site
    series = truth["series"]
    assert {s["kind"] for s in series} >= ALL_KINDS
    assert {s["modality"] for s in series} >= {"MR", "CT", "CR", "DX", "US", "OT"}
    assert {s["degradation"]["type"] for s in series} >= {None, "noise", "ghosting", "blur", "bias"}
    assert {s["degradation"]["severity"] for s in series if s["degradation"]["type"]} <= {1, 2, 3, 4, 5}
    assert {f["type"] for f in truth["files"].values()} >= BAD_TYPES | {"dicom", "png", "jpeg", "nifti"}
    assert {s["plane"] for s in series} >= {"axial", "sagittal", "coronal", None}
    assert {s["dimensions"] for s in series} == {"2D", "3D", "4D"}
    assert {s["contrast"] for s in series if s["modality"] == "MR"} == {True, False}
    assert {s["contrast"] for s in series if s["modality"] == "CT"} == {True, False}
    assert any(s["derived"] for s in series if s["kind"] == "ADC")
    assert {s["vendor"] for s in series if s["modality"] == "MR"} == {"siemens", "ge", "philips"}
    assert {s["burned_in_annotation_flag"] for s in series if s["kind"] == "US"} == {"YES", "NO", None}
    assert {s.get("photometric_interpretation") for s in series if s["kind"] == "US"} >= {"MONOCHROME2", "RGB", "YBR_FULL"}
    assert any(s.get("n_frames", 1) > 1 for s in series if s["kind"] == "US")
    ts = {s["transfer_syntax"] for s in series}
    assert ts >= {pydicom.uid.ExplicitVRLittleEndian, pydicom.uid.ImplicitVRLittleEndian, pydicom.uid.RLELossless,
                  pydicom.uid.JPEGLSLossless, pydicom.uid.JPEG2000Lossless}
    # issue 4 trains clean vs degraded: enough of both among the structural MR series
    structural = [s for s in series if s["kind"] in ("T1W", "T2W", "FLAIR", "PDW", "SWI")]
    degraded = sum(1 for s in structural if s["degradation"]["type"])
    assert 0.3 * len(structural) <= degraded <= 0.7 * len(structural)
    assert all(len(s["motion"]) == s["n_volumes"] for s in series if s["kind"] in ("DWI", "DCE"))
    assert any(s["lesions"] for s in series if s["modality"] == "MR")
    assert any(s["lesions"] for s in series if s["kind"] in ("CR", "DX"))
    assert truth["images"] and truth["nifti"]


def test_ground_truth_matches_files(site):
    out, truth = site
    files = truth["files"]
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {"ground_truth.json"}
    assert on_disk == set(files)
    for rel, f in files.items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == f["sha256"], rel
    by_uid = {s["series_instance_uid"]: s for s in truth["series"]}
    listed = set()
    for s in truth["series"]:
        assert s["n_instances"] == len(s["files"]) > 0
        listed.update(s["files"])
    for rel, f in files.items():
        if f["type"] != "dicom":
            assert rel not in listed
            continue
        assert rel in listed
        ds = pydicom.dcmread(out / rel, stop_before_pixels=True)
        s = by_uid[f["series_instance_uid"]]
        assert ds.SOPInstanceUID == f["sop_instance_uid"] == ds.file_meta.MediaStorageSOPInstanceUID
        assert ds.SeriesInstanceUID == s["series_instance_uid"]
        assert ds.StudyInstanceUID == s["study_instance_uid"]
        assert ds.Modality == s["modality"]
        assert ds.PatientID == s["patient_id"]
        assert ds.file_meta.TransferSyntaxUID == s["transfer_syntax"]
    sops = [f["sop_instance_uid"] for f in files.values() if f["type"] == "dicom"]
    assert len(sops) == len(set(sops))
    studies = {st["study_instance_uid"] for st in truth["studies"]}
    assert {s["study_instance_uid"] for s in truth["series"]} <= studies


def test_frame_of_reference_shared_within_a_study(site):
    out, truth = site
    for_by_study: dict[str, set] = {}
    for s in truth["series"]:
        if s["modality"] not in ("MR", "CT"):
            continue
        for rel in (s["files"][0], s["files"][-1]):
            ds = pydicom.dcmread(out / rel, stop_before_pixels=True)
            for_by_study.setdefault(s["study_instance_uid"], set()).add(ds.FrameOfReferenceUID)
    assert for_by_study and all(len(v) == 1 for v in for_by_study.values())


def test_every_good_dicom_decodes(site):
    out, truth = site
    n = 0
    for rel, f in truth["files"].items():
        if f["type"] != "dicom":
            continue
        ds = pydicom.dcmread(out / rel)
        arr = ds.pixel_array
        frames = int(ds.get("NumberOfFrames", 1))
        assert arr.size == frames * ds.Rows * ds.Columns * ds.SamplesPerPixel
        n += 1
    assert n > 400


def test_bad_inputs_are_bad_in_the_way_recorded(site):
    out, truth = site
    files = truth["files"]
    by_type: dict[str, list[str]] = {}
    for rel, f in files.items():
        by_type.setdefault(f["type"], []).append(rel)
    for rel in by_type["corrupt"]:
        data = (out / rel).read_bytes()
        assert data[128:132] == b"DICM"
        with pytest.raises(Exception):
            pydicom.dcmread(out / rel).pixel_array  # noqa: B018
    for rel in by_type["truncated"]:
        with pytest.raises(Exception):
            pydicom.dcmread(out / rel).pixel_array  # noqa: B018
    assert {files[r]["truncated_in"] for r in by_type["truncated"]} == {"pixel_data", "header"}
    for rel in by_type["non_dicom"]:
        with pytest.raises(InvalidDicomError):
            pydicom.dcmread(out / rel)
    for rel in by_type["duplicate"]:
        original = files[rel]["duplicate_of"]
        assert (out / rel).read_bytes() == (out / original).read_bytes()
        assert files[rel]["expected"] == "skip_duplicate" and files[original]["expected"] == "ingest"
        assert rel > original  # a sorted walk meets the original first
    for rel in by_type["conflict"]:
        other = files[rel]["conflicts_with"]
        a, b = pydicom.dcmread(out / rel), pydicom.dcmread(out / other)
        assert a.SOPInstanceUID == b.SOPInstanceUID
        assert (out / rel).read_bytes() != (out / other).read_bytes()
        assert rel > other
    for rel in by_type["missing_uid"]:
        ds = pydicom.dcmread(out / rel)
        assert "SOPInstanceUID" not in ds
        assert ds.pixel_array.size > 0  # the only defect is the missing UID
    for t in ("corrupt", "truncated", "non_dicom", "conflict", "missing_uid"):
        assert all(files[r]["expected"] == "quarantine" for r in by_type[t])
