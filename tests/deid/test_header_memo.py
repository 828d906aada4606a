"""The header walk's memo (deid.header._record/_replay, deid.engine.Deidentifier._memo): the
objects of a series replay the recorded outcome of every value met before. Replaying must give
exactly what computing gives, whatever the order of patients and values."""
from __future__ import annotations

import copy
import io

import pydicom
from pydicom.data import get_testdata_file

from deid.engine import Deidentifier

SECRET = b"memo-test-secret-0123456789abcdef"


def _series() -> list[bytes]:
    """Two patients' objects, interleaved: the same study-level values (dates, descriptions
    naming the patient, institution) in each patient's objects, per-object values (UIDs,
    instance numbers, times) different; one value shared by both patients."""
    base = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    out = []
    for i in range(8):
        ds = copy.deepcopy(base)
        patient = i % 2
        ds.PatientID = f"MRN-00{patient}4711"
        ds.PatientName = ("Doe^Jane", "Roe^Richard")[patient]
        ds.PatientBirthDate = ("19700305", "19811224")[patient]
        ds.StudyDate = ds.SeriesDate = "20240117"  # both patients: shifted by each one's own days
        ds.StudyDescription = ("MR head Jane Doe", "MR knee for ROE")[patient]  # cleaned per object
        ds.ImageComments = "seen by Dr Smith"
        ds.InstitutionName = "St Mary Hospital"
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.2.1125.{patient}.{i}"
        ds.StudyInstanceUID = f"1.2.826.0.1.3680043.2.1125.{patient}"
        ds.InstanceNumber = i
        ds.ContentTime = f"1201{i:02d}"
        buf = io.BytesIO()
        ds.save_as(buf)
        out.append(buf.getvalue())
    return out


def test_a_memoised_series_equals_each_object_computed_alone():
    files = _series()
    for profile in ("default", "basic", "research"):
        shared = Deidentifier(profile, SECRET)
        for data in files:
            alone = Deidentifier(profile, SECRET)  # a fresh memo: every value computed
            got, want = shared.deidentify(data), alone.deidentify(data)
            assert got.status == want.status == "written", (profile, got.reason, want.reason)
            assert got.data == want.data, profile
            assert got.counts == want.counts and list(got.counts) == list(want.counts), profile
            assert got.reid == want.reid, profile
        # the shared one did replay: both patients' contexts hold the values they met
        assert len(shared._memos) == 2
        assert all(len(m) > 20 for m in shared._memos.values())


def test_the_memo_is_bounded(monkeypatch):
    import deid.engine as engine

    monkeypatch.setattr(engine, "MEMO_CONTEXTS", 1)
    monkeypatch.setattr(engine, "MEMO_ENTRIES", 5)
    d = Deidentifier("default", SECRET)
    files = _series()
    for data in files:
        assert d.deidentify(data).status == "written"
        assert len(d._memos) == 1
    # cleared when over its bound at the start of an object: at most one object's new values
    assert len(next(iter(d._memos.values()))) < 200
