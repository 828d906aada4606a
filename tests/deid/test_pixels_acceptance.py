"""Issue 11 acceptance for pixels: the de-identified synthetic site (the session's `deid_site`,
what `curate deid` writes) and pydicom's bundled images carry zero readable fragments of 4+
characters of any identifying value, checked by an OCR pass independent of the de-identifier's
(tests/deid/pixel_frames.independent_ocr: the tesseract CLI over whole frames in sparse-text
mode, upscaled and binarised; the de-identifier reads line crops in-process in single-line
mode)."""
from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from deid.engine import Deidentifier
from tests.deid.pixel_frames import fragments, independent_ocr

pytestmark = pytest.mark.slow

SECRET = b"acceptance-secret-0123456789abcd"


def _frames(ds) -> list[np.ndarray]:
    arr = ds.pixel_array
    n = int(ds.get("NumberOfFrames", 1) or 1)
    arr = arr if n > 1 else arr[None]
    return [arr[0]] if n == 1 else [arr[0], arr[-1]]  # burned-in text is the same in every frame


def test_site_outputs_hold_no_readable_identifier_fragment(deid_site):
    values = sorted({v for p in deid_site.truth["patients"] for v in p["phi_values"]})
    values += [deid_site.truth["site"][k] for k in ("institution_name", "phone")]
    with_text = {t["file"][len("dicom/"):] for s in deid_site.truth["series"] for t in s["burned_in_text"]}
    recs = {r["file"]: r for r in deid_site.report["files"]}
    assert len(with_text) >= 10
    # sanity: the same OCR pass reads the planted text in the inputs
    some_src = pydicom.dcmread(deid_site.src / sorted(with_text)[0])
    assert fragments(independent_ocr(_frames(some_src)[0]), values)
    found = {}
    for rel in sorted(with_text):
        r = recs[rel]
        assert r["status"] == "written", r
        out = pydicom.dcmread(deid_site.dst / r["output"])
        for k, frame in enumerate(_frames(out)):
            hits = fragments(independent_ocr(frame), values)
            if hits:
                found[f"{rel}#{k}"] = hits
    assert not found, found


BUNDLED = ["examples_rgb_color.dcm", "examples_ybr_color.dcm", "SC_rgb_rle.dcm", "SC_rgb_rle_2frame.dcm",
           "SC_rgb_jpeg_dcmtk.dcm", "examples_overlay.dcm", "CT_small.dcm", "MR_small.dcm"]


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_outputs_hold_no_readable_identifier_fragment(name):
    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} is download-only")
    data = open(path, "rb").read()
    src = pydicom.dcmread(io.BytesIO(data))
    values = [str(src.get(k, "")) for k in ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber",
                                            "InstitutionName", "ReferringPhysicianName", "OtherPatientIDs")]
    values = [w for v in values for w in v.replace("^", " ").split() if len(w) >= 4]
    r = Deidentifier("default", SECRET).deidentify(data, name)
    assert r.status == "written", r.reason
    out = pydicom.dcmread(io.BytesIO(r.data))
    for frame in _frames(out):
        assert not fragments(independent_ocr(frame), values), name
