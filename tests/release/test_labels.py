"""The release's label objects: SR TID 1500 and SEG pass dciodvfy, re-read with highdicom,
reference exactly the released instances, keep box coordinates, and rebuild byte-identically."""
from __future__ import annotations

import copy
import shutil
import subprocess
from datetime import date
from pathlib import Path

import highdicom as hd
import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from curation.release.labels import (Box, Finding, ReleaseIdentity, boxes_to_masks, consensus_findings,
                                     consensus_segs, findings_sr, in_patient_space, label_code)

IDENTITY = ReleaseIdentity("demo", "1.0.0", date(2026, 1, 2))
DCIODVFY = shutil.which("dciodvfy")


def dx_series(n: int = 2, rows: int = 48, cols: int = 40) -> list[Dataset]:
    """A de-identified DX series (no names, no dates, pseudonymous IDs), generated with pydicom."""
    study, series = generate_uid(), generate_uid()
    out = []
    for i in range(n):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = DigitalXRayImageStorageForPresentation
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "", "PSEUDO-0001", "", "O"
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "", "", "", "", ""
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "DX", 1, i + 1
        ds.PatientIdentityRemoved, ds.DeidentificationMethod = "YES", "test series"
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = rows, cols, 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelSpacing, ds.PatientOrientation = [0.2, 0.2], ["P", "F"]
        ds.PixelData = (np.arange(rows * cols, dtype=np.uint16).reshape(rows, cols) % 4096).tobytes()
        out.append(ds)
    return out


def sc_series(n: int = 2) -> list[Dataset]:
    """A secondary capture series carrying a Frame of Reference UID but no plane position or
    orientation (the SC IOD has no Image Plane module): nothing places its pixels in patient space."""
    out = dx_series(n)
    for ds in out:
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
        ds.Modality, ds.ConversionType, ds.FrameOfReferenceUID = "OT", "WSD", "2.25.7001"
        del ds.PixelSpacing
    return out


def ct_series() -> list[Dataset]:
    return [pydicom.dcmread(get_testdata_file("CT_small.dcm"))]


def write(ds: Dataset, path: Path) -> bytes:
    ds.save_as(path, enforce_file_format=True)
    return path.read_bytes()


def dciodvfy_errors(path: Path) -> list[str]:
    out = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]


def build(sources: list[Dataset], tmp: Path) -> tuple[Path, list[Path], list[Box]]:
    first, last = sources[0], sources[-1]
    findings = [Finding("nodule", 1, "dawid_skene", 3, 0.93), Finding("effusion", 0, "majority", 3, None),
                Finding("fracture", None, "majority", 2, 0.5)]
    boxes = [Box("nodule", str(first.SOPInstanceUID), 3.5, 4.0, 20.25, 30.0, n_readers=3),
             Box("nodule", str(last.SOPInstanceUID), 1.0, 2.0, 9.0, 7.5, n_readers=2)]
    series_uid = str(first.SeriesInstanceUID)
    sr = findings_sr(sources, findings, boxes, identity=IDENTITY, series_uid=series_uid)
    segs = consensus_segs(sources, boxes_to_masks(boxes, sources), identity=IDENTITY, series_uid=series_uid,
                          method="box", n_readers=3)
    tmp.mkdir(parents=True, exist_ok=True)
    write(sr, tmp / "sr.dcm")
    for n, seg in enumerate(segs, start=1):
        write(seg, tmp / f"seg{n}.dcm")
    return tmp / "sr.dcm", [tmp / f"seg{n}.dcm" for n in range(1, len(segs) + 1)], boxes


def emptied_series(n: int = 2) -> list[Dataset]:
    """A DX series as the platform's de-identifier leaves it: the Referenced Study and Patient
    sequences present but emptied (PS3.15 Annex E), which the label objects must not copy as is."""
    out = dx_series(n)
    for ds in out:
        ds.ReferencedStudySequence, ds.ReferencedPatientSequence = Sequence([]), Sequence([])
    return out


@pytest.fixture(params=["dx", "ct", "sc", "emptied"])
def sources(request) -> list[Dataset]:
    return {"dx": dx_series, "ct": ct_series, "sc": sc_series, "emptied": emptied_series}[request.param]()


@pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy (dicom3tools) is not installed")
def test_sr_and_seg_pass_dciodvfy(sources, tmp_path):
    sr, segs, _ = build(sources, tmp_path)
    assert segs
    for path in [sr, *segs]:
        assert dciodvfy_errors(path) == [], path.name


def test_sr_references_released_instances_and_keeps_boxes(sources, tmp_path):
    sr_path, _, boxes = build(sources, tmp_path)
    sr = hd.sr.srread(sr_path)
    released = {str(s.SOPInstanceUID) for s in sources}
    evidence = {str(i.ReferencedSOPInstanceUID) for st in sr.CurrentRequestedProcedureEvidenceSequence
                for se in st.ReferencedSeriesSequence for i in se.ReferencedSOPSequence}
    assert evidence == released
    report = sr.content
    planar = report.get_planar_roi_measurement_groups()
    assert len(planar) == len(boxes)
    for group, box in zip(sorted(planar, key=lambda g: str(g.tracking_identifier)), boxes):
        region = group.roi
        assert region.GraphicType == "POLYLINE"
        got = np.asarray(region.value, dtype=float)
        assert got.tolist() == [[box.x0, box.y0], [box.x1, box.y0], [box.x1, box.y1], [box.x0, box.y1],
                                [box.x0, box.y0]]
        assert str(region.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID) == box.sop_instance_uid
    groups = report.get_image_measurement_groups()
    values = {str(g.finding_type.meaning): g.get_qualitative_evaluations()[0].value.meaning for g in groups}
    assert values == {"nodule": "Present", "effusion": "Absent", "fracture": "Indeterminate"}
    context = {str(i.ConceptNameCodeSequence[0].CodeValue): i for i in sr.ContentSequence}
    assert context["121005"].ConceptCodeSequence[0].CodeValue == "121007"  # observer type: device
    assert "121008" not in context  # no person observer name: readers stay pseudonymous
    assert context["121013"].TextValue == "consensus of 3 readers"  # device observer name


def test_seg_references_released_instances(sources, tmp_path):
    _, seg_paths, boxes = build(sources, tmp_path)
    segs = [hd.seg.segread(p) for p in seg_paths]
    released = [str(s.SOPInstanceUID) for s in sources]
    referenced = [str(uid) for seg in segs for _, _, uid in seg.get_source_image_uids()]
    assert sorted(referenced) == sorted(released)
    assert len({str(seg.SeriesInstanceUID) for seg in segs}) == 1
    expected = boxes_to_masks(boxes, sources)["nodule"]
    for seg in segs:
        assert [seg.get_segment_description(n).segment_label for n in seg.segment_numbers] == ["nodule"]
        for _, _, uid in seg.get_source_image_uids():
            got = seg.get_pixels_by_source_instance(
                source_sop_instance_uids=[str(uid)], segment_numbers=[1], ignore_spatial_locations=True)[0, :, :, 0]
            assert np.array_equal(got.astype(bool), expected[released.index(str(uid))])


def test_rebuild_is_byte_identical_and_identity_changes_uids(tmp_path):
    sources = dx_series()
    sr_a, segs_a, _ = build(sources, tmp_path / "a")
    sr_b, segs_b, _ = build(sources, tmp_path / "b")
    assert sr_a.read_bytes() == sr_b.read_bytes()
    assert [p.read_bytes() for p in segs_a] == [p.read_bytes() for p in segs_b]
    assert pydicom.dcmread(sr_a).ContentDate == "20260102"
    other = ReleaseIdentity("demo", "1.0.1", date(2026, 1, 2))
    sr = findings_sr(sources, [Finding("nodule", 1, "majority", 3)], identity=other,
                     series_uid=str(sources[0].SeriesInstanceUID))
    assert str(sr.SOPInstanceUID) != str(pydicom.dcmread(sr_a).SOPInstanceUID)


def test_box_on_an_unreleased_instance_is_refused():
    sources = dx_series(1)
    with pytest.raises(ValueError, match="not a released instance"):
        findings_sr(sources, [], [Box("nodule", generate_uid(), 0, 0, 1, 1)], identity=IDENTITY,
                    series_uid=str(sources[0].SeriesInstanceUID))


def test_consensus_findings_from_consensus_tables():
    columns = ["item", "label", "value", "posterior", "n_readers", "x0", "y0", "x1", "y1"]
    labels = pd.DataFrame([["1.2.3", "nodule", 1, 0.9, 3, None, None, None, None],
                           ["1.2.3", "effusion", None, 0.5, 2, None, None, None, None],
                           ["9.9", "nodule", 0, 0.1, 3, None, None, None, None]], columns=columns)
    boxes = pd.DataFrame([["1.2.3", "nodule", None, None, 3, 1.0, 2.0, 3.0, 4.0]], columns=columns)
    findings, none = consensus_findings(labels, "1.2.3", method="dawid_skene")
    assert none == []
    assert findings == [Finding("nodule", 1, "dawid_skene", 3, 0.9), Finding("effusion", None, "dawid_skene", 2, 0.5)]
    both = pd.concat([labels.assign(method="dawid_skene"), boxes.assign(method="box")])
    findings, found = consensus_findings(both, "1.2.3", instance_uid="1.2.3.4")
    assert len(findings) == 2
    assert found == [Box("nodule", "1.2.3.4", 1.0, 2.0, 3.0, 4.0, method="box", n_readers=3)]
    with pytest.raises(ValueError, match="name the instance"):
        consensus_findings(boxes, "1.2.3", method="box")
    with pytest.raises(ValueError, match="name the consensus method"):
        consensus_findings(labels, "1.2.3")


def enhanced_ct() -> Dataset:
    """One multi-frame instance: three slices of pydicom's CT_small converted by highdicom."""
    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    slices = []
    for i in range(3):
        s = copy.deepcopy(ct)
        s.SOPInstanceUID, s.InstanceNumber = generate_uid(), i + 1
        s.ImagePositionPatient = [*ct.ImagePositionPatient[:2], float(ct.ImagePositionPatient[2]) + 5 * i]
        slices.append(s)
    return hd.legacy.LegacyConvertedEnhancedCTImage(slices, series_instance_uid=generate_uid(), series_number=1,
                                                    sop_instance_uid=generate_uid(), instance_number=1)


def test_multiframe_boxes_reference_their_frame(tmp_path):
    mf = enhanced_ct()
    box = Box("nodule", str(mf.SOPInstanceUID), 3.0, 4.0, 20.0, 30.0, n_readers=3, frame=2)
    series_uid = str(mf.SeriesInstanceUID)
    sr = findings_sr([mf], [Finding("nodule", 1, "majority", 3)], [box], identity=IDENTITY, series_uid=series_uid)
    (seg,) = consensus_segs([mf], boxes_to_masks([box], [mf]), identity=IDENTITY, series_uid=series_uid,
                            method="box", n_readers=3)
    write(sr, tmp_path / "sr.dcm")
    write(seg, tmp_path / "seg.dcm")
    if DCIODVFY is not None:
        assert dciodvfy_errors(tmp_path / "sr.dcm") == []
        assert dciodvfy_errors(tmp_path / "seg.dcm") == []
    region = hd.sr.srread(tmp_path / "sr.dcm").content.get_planar_roi_measurement_groups()[0].roi
    ref = region.ContentSequence[0].ReferencedSOPSequence[0]
    assert (str(ref.ReferencedSOPInstanceUID), int(ref.ReferencedFrameNumber)) == (box.sop_instance_uid, 2)
    read = hd.seg.segread(tmp_path / "seg.dcm")
    assert int(read.NumberOfFrames) == 1  # empty frames left out
    source = read.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0].SourceImageSequence[0]
    assert (str(source.ReferencedSOPInstanceUID), int(source.ReferencedFrameNumber)) == (box.sop_instance_uid, 2)
    with pytest.raises(ValueError, match="name its frame"):
        findings_sr([mf], [], [Box("nodule", str(mf.SOPInstanceUID), 0, 0, 1, 1)], identity=IDENTITY,
                    series_uid=series_uid)


def test_a_frame_of_reference_alone_places_nothing(tmp_path):
    """The SC defect: a Frame of Reference UID without plane geometry is not patient space, so each
    touched instance gets its own SEG with Patient Orientation (Type 2C there), which dciodvfy wants."""
    sources = sc_series(2)
    assert not any(in_patient_space(s) for s in sources) and all(in_patient_space(s) for s in ct_series())
    _, segs, _ = build(sources, tmp_path)
    assert len(segs) == 2
    for path in segs:
        seg = pydicom.dcmread(path)
        assert "PatientOrientation" in seg and "PlanePositionSequence" not in seg.PerFrameFunctionalGroupsSequence[0]
        if DCIODVFY is not None:
            assert dciodvfy_errors(path) == [], path.name


def test_plane_geometry_without_slice_thickness_is_refused_as_a_value_error(tmp_path):
    """A build skips (and records) a series whose labels cannot be DICOM; it must not crash on one."""
    sources = sc_series(1)
    sources[0].ImagePositionPatient, sources[0].ImageOrientationPatient = [0, 0, 0], [1, 0, 0, 0, 1, 0]
    sources[0].PixelSpacing = [0.5, 0.5]
    with pytest.raises(ValueError, match="no Slice Thickness"):
        build(sources, tmp_path)


def test_long_labels_keep_distinct_codes():
    a, b = label_code("pulmonary_nodule_solid"), label_code("pulmonary_nodule_subsolid")
    assert a.value != b.value and len(a.value) <= 16 and len(b.value) <= 16
    assert label_code("nodule").value == "nodule"


def test_the_deidentifier_empties_the_study_reference_the_labels_must_not_copy():
    """Why the `emptied` sources above exist: the platform's de-identifier keeps an emptied Referenced
    Study Sequence (the demo's real release failed dciodvfy on its label objects before they dropped it)."""
    import io

    from tests.release.world import DEIDENTIFIER

    ds = dx_series(1)[0]
    ds.PatientName = "Doe^Jane"
    del ds.PatientIdentityRemoved, ds.DeidentificationMethod
    item = Dataset()
    item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = "1.2.840.10008.3.1.2.3.1", generate_uid()
    ds.ReferencedStudySequence = Sequence([item])
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    released = pydicom.dcmread(io.BytesIO(DEIDENTIFIER.deidentify(buf.getvalue()).data))
    assert "ReferencedStudySequence" in released and len(released.ReferencedStudySequence) == 0
    sr = findings_sr([released], [Finding("nodule", 1, "majority", 3, None)], identity=IDENTITY,
                     series_uid=str(released.SeriesInstanceUID))
    assert "ReferencedStudySequence" not in sr
