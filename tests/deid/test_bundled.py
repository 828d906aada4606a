"""pydicom's bundled real files: MR_small in every transfer syntax, multi-frame YBR ultrasound,
RGB ultrasound, the overlay example. Each must come out valid, decodable and clean."""
from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file, get_testdata_files

from deid.engine import Deidentifier
from deid.leakscan import scan_file

SECRET = b"bundled-test-secret-0123456789ab"

MR_SMALL = sorted(p for p in get_testdata_files("MR_small*.dcm"))


@pytest.fixture(scope="module")
def deider() -> Deidentifier:
    return Deidentifier("default", SECRET)


def _source_values(ds) -> list[str]:
    vals = [str(ds.PatientName), str(ds.get("PatientID", "")), str(ds.SOPInstanceUID), str(ds.StudyInstanceUID),
            str(ds.SeriesInstanceUID), str(ds.get("StudyDate", "")), str(ds.get("InstitutionName", "")),
            str(ds.get("ReferringPhysicianName", ""))]
    vals += [p for p in str(ds.PatientName).replace("^", " ").split() if len(p) >= 3]
    return [v for v in vals if v]


def _check(deider, path, expect_mask: bool | None = None):
    data = open(path, "rb").read()
    src = pydicom.dcmread(io.BytesIO(data))
    r = deider.deidentify(data, path)
    assert r.status == "written", (path, r.reason, [f.as_dict() for f in r.findings])
    out = pydicom.dcmread(io.BytesIO(r.data))
    assert not scan_file(r.data, _source_values(src)), path
    assert out.PatientIdentityRemoved == "YES"
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID != src.SOPInstanceUID
    assert out.PatientID.startswith("ANON")
    a, b = src.pixel_array, out.pixel_array  # every frame decodes
    assert a.shape == b.shape
    if expect_mask is False:
        assert np.array_equal(a, b)
        assert out.file_meta.TransferSyntaxUID == src.file_meta.TransferSyntaxUID
    if expect_mask:
        assert r.pixels["masked_boxes"] > 0
        assert out.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert out.BurnedInAnnotation == "NO"
    return src, out, r


@pytest.mark.parametrize("path", MR_SMALL, ids=lambda p: p.rsplit("/", 1)[-1])
def test_mr_small_every_transfer_syntax(deider, path):
    src, out, _ = _check(deider, path, expect_mask=False)
    for kw in ("Rows", "Columns", "PixelSpacing", "SliceThickness", "RepetitionTime", "EchoTime", "ImagePositionPatient"):
        if kw in src:
            assert out[kw].value == src[kw].value


def test_mr_small_same_patient_same_pseudonym(deider):
    outs = {pydicom.dcmread(io.BytesIO(deider.deidentify(open(p, "rb").read()).data)).PatientID for p in MR_SMALL}
    assert len(outs) == 1


def test_multiframe_ybr_ultrasound(deider):
    src, out, r = _check(deider, get_testdata_file("examples_ybr_color.dcm"))
    assert int(out.NumberOfFrames) == int(src.NumberOfFrames) == 30
    if r.pixels.get("masked_boxes"):
        assert out.PhotometricInterpretation == "RGB"  # decoded from JPEG YBR, stored uncompressed
        assert out.LossyImageCompression == "01"
    assert out.BurnedInAnnotation == "NO"  # at risk (US): verified


def test_rgb_ultrasound(deider):
    src, out, _ = _check(deider, get_testdata_file("examples_rgb_color.dcm"))
    assert out.BurnedInAnnotation == "NO"


def test_overlay_example_overlay_removed(deider):
    src, out, _ = _check(deider, get_testdata_file("examples_overlay.dcm"))
    assert any(e.tag.group == 0x6000 for e in src)
    assert not any(e.tag.group & 0xFF00 == 0x6000 for e in out.iterall())


def test_ct_small_private_removed(deider):
    src, out, _ = _check(deider, get_testdata_file("CT_small.dcm"), expect_mask=False)
    assert any(e.tag.is_private for e in src.iterall())
    assert not any(e.tag.is_private for e in out.iterall())


def test_rt_dose_with_uids_stored_as_un(deider):
    """rtdose_rle_1frame.dcm writes SOPInstanceUID and StudyInstanceUID with VR UN: they are UIDs
    all the same and must be remapped (they used to be emptied)."""
    path = get_testdata_file("rtdose_rle_1frame.dcm")
    raw = pydicom.dcmread(path)
    assert raw.get_item(0x00080018).VR == "UN"
    src, out, _ = _check(deider, path, expect_mask=False)
    assert out.SOPInstanceUID.startswith("2.25.") and out.StudyInstanceUID.startswith("2.25.")


def test_private_tag_in_a_sequence_item_is_found_by_the_writer(monkeypatch):
    """The structure check runs inside the writer: a private element left deep in a sequence (a
    broken header step, simulated) must still quarantine the object."""
    import deid.engine as engine

    real = engine.apply_plan

    def leaky(ds, ctx):
        real(ds, ctx)
        item = pydicom.Dataset()
        item.add_new(0x00291010, "LO", "kept by mistake")
        ds.ReferencedImageSequence = [item]

    monkeypatch.setattr(engine, "apply_plan", leaky)
    r = Deidentifier("default", SECRET).deidentify(open(MR_SMALL[0], "rb").read())
    assert r.status == "quarantined" and r.data is None
    assert [f.where for f in r.findings if f.kind == "private"] == ["(0008,1140)[0].(0029,1010)"]
