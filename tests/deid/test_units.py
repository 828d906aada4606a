"""Table, profiles, pseudonyms, dates, scrubbing, vault, CLI and the tampering test."""
from __future__ import annotations

import io
import json
import os

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from deid.dates import shift_da, shift_dt
from deid.engine import Deidentifier
from deid.phi import PhiValues
from deid.profile import ProfileError, compile_plan, load_profile
from deid.pseudonym import Pseudonymizer
from deid.scrub import scrub_text
from deid.table import load_table
from deid.vault import SealedMap, generate_key_pair, load_or_create_secret, load_private_key, load_public_key, open_records

SECRET = b"unit-test-secret-0123456789abcdef"


def test_table_edition_and_option_columns():
    t = load_table()
    assert t.edition == "2026c" and t.edition_options_columns == "2020b"
    rows = {r.keyword: r for r in t.rows if r.keyword}
    assert len(t.rows) > 600
    assert rows["PatientName"].actions["basic"] == "Z"
    assert rows["SeriesDescription"].actions == {"basic": "X", "clean_descriptors": "C"}
    assert rows["StudyDate"].actions["retain_modified_dates"] == "C"
    assert rows["PatientAge"].actions["retain_patient_characteristics"] == "K"
    assert rows["DeviceSerialNumber"].actions["retain_device_identity"] == "K"
    assert any(r.mask != 0xFFFFFFFF and r.actions.get("clean_graphics") == "C" for r in t.rows)


def test_profiles_are_data_and_options_select_columns():
    default = load_profile()
    assert set(default.options) == {"clean_descriptors", "retain_modified_dates", "retain_patient_characteristics"}
    plan = compile_plan(default)
    sd = pydicom.datadict.tag_for_keyword
    assert plan.exact[sd("SeriesDescription")] == "C"
    assert plan.exact[sd("PatientSex")] == "K"
    assert plan.exact[sd("DeviceSerialNumber")] == "Z"
    dev = compile_plan(load_profile("default", ["retain_device_identity"]))
    assert dev.exact[sd("DeviceSerialNumber")] == "K"
    basic = compile_plan(load_profile("basic"))
    assert basic.exact[sd("SeriesDescription")] == "X" and basic.exact[sd("PatientSex")] == "Z"
    with pytest.raises(ProfileError):
        load_profile("default", ["retain_everything"])
    with pytest.raises(ProfileError):
        load_profile("nope")


def test_pseudonyms_keyed_deterministic_distinct():
    a, b = Pseudonymizer(SECRET), Pseudonymizer(SECRET + b"x")
    assert a.patient_id("id:1") == Pseudonymizer(SECRET).patient_id("id:1") != a.patient_id("id:2")
    assert a.patient_id("id:1") != b.patient_id("id:1")
    u = a.uid("1.2.3.4.5")
    assert u.startswith("2.25.") and len(u) <= 64 and u == a.uid("1.2.3.4.5") != a.uid("1.2.3.4.6")
    assert -36525 - 3653 <= a.date_shift_days("id:1") <= -36525


def test_date_shift_keeps_intervals():
    assert shift_da("20240131", -1) == "20240130"
    assert shift_da("20240101-20240131", -10) == "20231222-20240121"
    assert shift_dt("20240131235959", 0, 2) == "20240201000001"
    # fractions go (a shifted HHMMSS.F can spell another real time), the UTC offset stays
    assert shift_dt("20240131235959.5", 0, 2) == "20240201000001"
    assert shift_dt("20240131235959.123456+0100", -1, 2) == "20240131000001+0100"
    assert shift_da("garbage", 5) is None


def test_scrub_names_any_order_ids_dates_phones():
    phi = PhiValues()
    phi.add("PatientName", "PN", "Doe^John^Q")
    phi.add("PatientID", "LO", "MRN-0012345")
    phi.add("StudyDate", "DA", "20240131")
    for text, want in [("T1 MPRAGE john DOE", "T1 MPRAGE"), ("Doe, John t2_tse", "t2_tse"),
                       ("DWI b1000 2024-01-31", "DWI b1000"), ("FLAIR MRN-0012345", "FLAIR"),
                       ("call (555) 123-4567", "call"), ("t1_mprage_sag_p2_iso_0.9", "t1_mprage_sag_p2_iso_0.9"),
                       ("CT 31.01.2024 ID 99887766", "CT ID")]:
        assert scrub_text(text, phi)[0] == want, text


def test_vault_secret_0600_and_map_encrypted(tmp_path):
    s = load_or_create_secret(tmp_path / "v" / "secret")
    assert len(s) >= 32 and os.stat(tmp_path / "v" / "secret").st_mode & 0o777 == 0o600
    assert load_or_create_secret(tmp_path / "v" / "secret") == s
    priv, pub = generate_key_pair()
    m = SealedMap(tmp_path / "v" / "map")
    m.append({"ANONX": {"PatientID": "REAL-ID-77", "studies": {"2.25.1": {"AccessionNumber": "A1"}}}}, load_public_key(pub))
    m.append({"ANONX": {"PatientID": "REAL-ID-77", "studies": {"2.25.2": {"AccessionNumber": "A2"}}}}, load_public_key(pub))
    assert b"REAL-ID-77" not in (tmp_path / "v" / "map").read_bytes()
    assert set(open_records(m.records(), load_private_key(priv))["ANONX"]["studies"]) == {"2.25.1", "2.25.2"}
    with pytest.raises(PermissionError):
        open_records(m.records(), load_private_key(generate_key_pair()[0]))


def _planted() -> bytes:
    """CT_small with PHI planted in free text, a sequence, a private tag and the overlay description."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientName = "Zebulon^Quixote"
    ds.PatientID = "PID-4455667"
    ds.SeriesDescription = "CHEST Quixote Zebulon PID-4455667"
    ds.ImageComments = "seen 2003-12-09 by Dr House"
    ds.add_new(0x60000022, "LO", "Zebulon overlay")
    ds.add_new(0x00291010, "LO", "Quixote private")
    ds.ReferencedImageSequence = [Dataset()]
    ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID = ds.SOPInstanceUID + ".9"
    ds.ReferencedImageSequence[0].ReferencedSOPClassUID = ds.SOPClassUID
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue()


def test_planted_phi_removed_everywhere():
    r = Deidentifier("default", SECRET).deidentify(_planted())
    assert r.status == "written", r.reason
    low = r.data.lower()
    for v in (b"zebulon", b"quixote", b"4455667", b"20031209", b"2003-12-09"):
        assert v not in low
    out = pydicom.dcmread(io.BytesIO(r.data))
    assert out.SeriesDescription == "CHEST"
    ref = out.ReferencedImageSequence[0].ReferencedSOPInstanceUID
    assert ref.startswith("2.25.")


def test_tampering_leak_is_quarantined_not_written(tmp_path, monkeypatch):
    """Simulate a broken header step that leaves the name in place: verification must catch it
    and the batch must not write the file."""
    import deid.engine as engine
    from deid.batch import deidentify_tree

    real = engine.apply_plan

    def leaky(ds, ctx):
        name = str(ds.PatientName)
        real(ds, ctx)
        ds.ImageComments = f"x {name}"

    monkeypatch.setattr(engine, "apply_plan", leaky)
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.dcm").write_bytes(_planted())
    rep = deidentify_tree(src, tmp_path / "out", secret_file=tmp_path / "vault" / "s", workers=1).as_dict()
    assert rep["written"] == 0 and rep["quarantined_count"] == 1
    q = rep["quarantined"][0]
    assert q["findings"] and q["findings"][0]["source_attribute"] == "PatientName"
    assert "zebulon" not in json.dumps(rep).lower()
    assert not list((tmp_path / "out").rglob("*.dcm"))


def test_tampering_pixel_text_left_is_quarantined(monkeypatch):
    """Masking switched off on an at-risk image with burned-in text: the OCR verification must
    quarantine it."""
    import cv2

    import deid.engine as engine
    from deid.pixels import PixelResult

    ds = pydicom.dcmread(get_testdata_file("examples_rgb_color.dcm"))
    img = np.zeros((240, 320, 3), np.uint8)
    cv2.putText(img, "QUIXOTE ZEBULON 4455667", (10, 120), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2)
    ds.PixelData = img.tobytes()
    ds.PatientName = "Quixote^Zebulon"
    buf = io.BytesIO()
    ds.save_as(buf)
    monkeypatch.setattr(engine, "scrub_frames", lambda frames, risky, *a, **k: (PixelResult(scanned=True, at_risk=risky), []))
    r = Deidentifier("default", SECRET).deidentify(buf.getvalue())
    assert r.status == "quarantined" and r.data is None
    assert any(f.kind == "pixel_text" for f in r.findings)
    monkeypatch.undo()
    r2 = Deidentifier("default", SECRET).deidentify(buf.getvalue())
    assert r2.status == "written"


def test_cli_runs_and_reports(tmp_path, capsys):
    from curate.main import main

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.dcm").write_bytes(_planted())
    (src / "notes.txt").write_text("not dicom")
    rc = main(["deid", str(src), str(tmp_path / "out"), "--secret-file", str(tmp_path / "vault" / "s"),
               "--report", str(tmp_path / "r.json"), "--json", "--quiet", "--workers", "1"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["written"] == 1 and summary["quarantined_count"] == 1
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["standard"]["edition"] == "2026c" and rep["actions"]["P"] == 2
    assert main(["deid", str(tmp_path / "missing"), str(tmp_path / "o2")]) == 2
    assert main(["deid", str(src), str(tmp_path / "o3"), "--option", "bogus"]) == 2


def test_monochrome1_text_found_and_masked_black():
    """MONOCHROME1: text burned in at the minimum stored value (white on screen) is masked with the
    maximum (black on screen)."""
    import cv2

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    img = np.full((128, 128), 3000, np.uint16)
    mask = np.zeros((128, 128), np.uint8)
    cv2.putText(mask, "ZEBULON 44", (4, 60), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 255, 1)
    img[mask > 0] = 0
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.Modality = "CR"
    ds.PixelRepresentation = 0
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelData = img.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf)
    r = Deidentifier("default", SECRET).deidentify(buf.getvalue())
    assert r.status == "written", r.reason
    out = pydicom.dcmread(io.BytesIO(r.data)).pixel_array
    assert (out[mask > 0] == 3000).all() and r.pixels["masked_boxes"] >= 1


def test_retain_safe_private_keeps_only_the_allow_list():
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    blk = ds.private_block(0x0019, "SIEMENS MR HEADER", create=True)
    blk.add_new(0x0C, "IS", "1000")
    blk.add_new(0x20, "LO", "Zebulon^Quixote")  # not on the list
    ris = ds.private_block(0x0031, "HOSPITAL RIS", create=True)
    ris.add_new(0x10, "LO", "Zebulon Quixote")
    ds.PatientName = "Quixote^Zebulon"
    buf = io.BytesIO()
    ds.save_as(buf)
    default = pydicom.dcmread(io.BytesIO(Deidentifier("default", SECRET).deidentify(buf.getvalue()).data))
    assert not any(e.tag.is_private for e in default)
    r = Deidentifier("research", SECRET).deidentify(buf.getvalue())
    assert r.status == "written", r.reason
    out = pydicom.dcmread(io.BytesIO(r.data))
    kept = {(e.tag.group, e.tag.element) for e in out if e.tag.is_private}
    assert kept == {(0x0019, 0x0010), (0x0019, 0x100C)}
    assert "113111" in [c.CodeValue for c in out.DeidentificationMethodCodeSequence]


def test_address_street_designator_is_not_a_leak_but_address_words_are():
    """Seed 7 of the synthetic site: PatientAddress '... Old Mill Row ...' and the MR attribute
    InPlanePhaseEncodingDirection 'ROW' (a kept defined term). 'Row' names no one: the object is
    written with ROW kept, while the address's own words are still scrubbed from kept text."""
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ds.PatientAddress = "751 Old Mill Row, Riverton, WY 82501"
    ds.InPlanePhaseEncodingDirection = "ROW"
    ds.ImageComments = "moved to Riverton"
    buf = io.BytesIO()
    ds.save_as(buf)
    r = Deidentifier("default", SECRET).deidentify(buf.getvalue())
    assert r.status == "written", r.reason
    out = pydicom.dcmread(io.BytesIO(r.data))
    assert out.InPlanePhaseEncodingDirection == "ROW"
    assert b"riverton" not in r.data.lower() and "PatientAddress" not in out


def test_name_words_that_are_address_words_are_still_searched():
    """Generic address words are dropped only from addresses and institutions: a patient called
    Lane is still scrubbed from free text as a single word."""
    phi = PhiValues()
    phi.add("PatientName", "PN", "Lane^Josephine")
    phi.add("PatientAddress", "LO", "12 Juniper Lane, Glenwood")
    assert scrub_text("follow-up lane", phi)[0] == "follow-up"
    assert scrub_text("Juniper", phi)[0] == "" and scrub_text("Glenwood", phi)[0] == ""


def test_an_id_inside_a_new_uid_by_chance_is_not_a_leak():
    """Seed 10 of the synthetic site: the 8-digit PatientID occurred by chance inside the keyed-hash
    UID written as MediaStorageSOPInstanceUID. New UIDs are random digits; the byte scan blanks
    exactly those, and still finds the ID anywhere else."""
    from deid.verify import scan_bytes

    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    new_sop = Pseudonymizer(SECRET).uid(str(ds.SOPInstanceUID))
    ds.PatientID = new_sop[12:20]
    buf = io.BytesIO()
    ds.save_as(buf)
    r = Deidentifier("default", SECRET).deidentify(buf.getvalue())
    assert r.status == "written", r.reason
    assert r.sop_uid == new_sop and ds.PatientID.encode() in r.data
    phi = PhiValues()
    phi.add("PatientID", "LO", ds.PatientID)
    out = b"\x00UI" + new_sop.encode() + b"\x00"
    assert scan_bytes(out, phi, own_uids={new_sop}) == []
    assert [f.source_attribute for f in scan_bytes(out + b"LO" + ds.PatientID.encode(), phi, own_uids={new_sop})] == ["PatientID"]
    assert [f.source_attribute for f in scan_bytes(out, phi)] == ["PatientID"]


@pytest.mark.parametrize("search", ["hyperscan", "bytes.find"])
def test_patient_identifiers_found_inside_pixel_data_in_any_case(search, monkeypatch):
    """Inside Pixel Data the patient's identifiers are searched in one Hyperscan pass (or with
    lowercased bytes.find without it): a name stored there in any case is found, at its offset;
    random pixels are not a finding."""
    import struct

    import deid.verify
    from deid.verify import scan_bytes

    if search == "hyperscan":
        pytest.importorskip("hyperscan", reason="Hyperscan is in requirements.txt for x86-64 only")
        deid.verify._pixel_matcher.cache_clear()
    else:
        monkeypatch.setattr(deid.verify, "_pixel_matcher", lambda values, thread: None)

    phi = PhiValues()
    phi.add("PatientName", "PN", "Quixote^Zebulon")
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 4096, 20000, dtype=np.uint16).tobytes() + rng.integers(0, 256, 20000, dtype=np.uint8).tobytes()
    head = b"\x00" * 132 + b"\xe0\x7f\x10\x00OB\x00\x00"
    clean = head + struct.pack("<I", len(pixels)) + pixels
    assert scan_bytes(clean, phi) == []
    for spelled in (b"QUIXOTE^ZEBULON", b"Quixote^Zebulon", b"qUIXOTE^zEBULON"):
        leaky = head + struct.pack("<I", len(pixels) + 16) + pixels[:7001] + spelled + b"\x00" + pixels[7001:]
        found = scan_bytes(leaky, phi)
        assert [f.source_attribute for f in found] == ["PatientName"], spelled
        assert found[0].where == f"byte {len(head) + 4 + 7001}"


def test_shifted_datetime_never_spells_another_real_time_of_the_patient():
    """Benchmark corpus, new secret: AcquisitionDateTime 07:21:09.5 shifted by the patient's
    seconds landed on the real AcquisitionTime of another series of the same patient. The
    fraction is dropped, so the shifted time of day no longer stands as a time value."""
    import datetime as dt

    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    shift = Pseudonymizer(SECRET).time_shift_seconds("id:" + str(ds.PatientID).strip())
    t = dt.datetime(2024, 1, 31, 7, 21, 9)
    ds.AcquisitionDateTime = t.strftime("%Y%m%d%H%M%S") + ".500000"
    other_series_time = (t + dt.timedelta(seconds=shift)).strftime("%H%M%S") + ".500000"
    buf = io.BytesIO()
    ds.save_as(buf)
    r = Deidentifier("default", SECRET).deidentify(buf.getvalue())
    assert r.status == "written", r.reason
    out = pydicom.dcmread(io.BytesIO(r.data))
    assert out.AcquisitionDateTime.endswith(other_series_time[:6])  # shifted by days and seconds
    assert other_series_time.encode() not in r.data


def test_pixel_search_from_several_threads_at_once():
    """Each thread gets its own Hyperscan database (scratch space must not be shared)."""
    import struct
    from concurrent.futures import ThreadPoolExecutor

    from deid.verify import scan_bytes

    phi = PhiValues()
    phi.add("PatientName", "PN", "Quixote^Zebulon")
    pixels = np.random.default_rng(1).integers(0, 256, 400_000, dtype=np.uint8).tobytes()
    head = b"\x00" * 132 + b"\xe0\x7f\x10\x00OB\x00\x00"
    leaky = head + struct.pack("<I", len(pixels) + 15) + pixels[:9000] + b"QUIXOTE^ZEBULON" + pixels[9000:]

    def names(_: int) -> list[str]:
        return [f.source_attribute for f in scan_bytes(leaky, phi)]

    with ThreadPoolExecutor(4) as pool:
        assert all(found == ["PatientName"] for found in pool.map(names, range(40)))


def test_profiles_in_one_process_keep_their_own_walk_decisions():
    """The header walk caches its per-(tag, VR) decision on the compiled plan: a basic run after
    a default run (and back) in one process still applies each profile's own actions."""
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ds.SeriesDescription = "T1 SE AX"
    ds.PatientSex = "F"
    buf = io.BytesIO()
    ds.save_as(buf)
    data = buf.getvalue()
    # both shift dates (the decision also depends on that); only default keeps descriptors
    for _ in range(2):
        for name, kept in (("default", True), ("basic", False)):
            d = Deidentifier(name, SECRET, options=("retain_modified_dates",))
            out = pydicom.dcmread(io.BytesIO(d.deidentify(data).data))
            assert ("SeriesDescription" in out) == kept, name
            assert (out.get("PatientSex") == "F") == kept, name


@pytest.mark.parametrize("name", ["MR_small.dcm", "MR_small_implicit.dcm", "CT_small.dcm", "JPEG2000.dcm", "MR_small_RLE.dcm", "rtplan.dcm"])
def test_writer_tells_where_pixel_data_begins(name):
    """The lean writer reports where the Pixel Data value starts, so the byte scan need not
    search the whole object for its tag: the same place as that search, or no Pixel Data."""
    from deid.engine import _serialize
    from deid.verify import pixel_value_span

    ds = pydicom.dcmread(get_testdata_file(name))
    ts = str(ds.file_meta.TransferSyntaxUID)
    span: list[int] = []
    out = _serialize(ds, ts, str(ds.SOPClassUID), str(ds.SOPInstanceUID), [], span)
    if "PixelData" in ds:
        assert span == [pixel_value_span(out)[0]] and span[0] < len(out)
        assert out[span[0] - 12:span[0] - 8] == b"\xe0\x7f\x10\x00" or out[span[0] - 8:span[0] - 4] == b"\xe0\x7f\x10\x00"
    else:
        assert span == [] and pixel_value_span(out) == (len(out), len(out))
