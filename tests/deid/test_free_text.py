"""Free-text comments (issue 11, point 2): the default profile removes them; the explicit
``clean_comments`` option keeps them and then removes people who appear nowhere else in the
object (names found by vocabulary, titles and relatives), dates, long numbers, phones, e-mail and
postal addresses, while the medical words stay."""
from __future__ import annotations

import io
import re
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset

from deid.engine import Deidentifier
from deid.phi import PhiValues
from deid.profile import comment_keywords, compile_plan, load_profile
from deid.scrub import clean_comment

SECRET = b"unit-test-secret-0123456789abcdef"
README = Path(__file__).resolve().parents[2] / "deid" / "README.md"

#: the comment of the issue: a relative's name that no other attribute holds
RELATIVE = "Lives with Margaret"
#: a comment whose every identifying part is known nowhere else in the object
COMMENT = ("Lives with Margaret. Claustrophobic, needs sedation; seen by Dr Okafor. Call 0161 496 0345 "
           "or j.smith@example.org, 12 Baker Street. Allergic to penicillin; metformin stopped 2024-03-05 "
           "and on 3rd March 2024, Hodgkin lymphoma in remission. Ref 98765432.")
IDENTIFYING = ["Margaret", "Okafor", "0161", "496", "0345", "j.smith", "example.org", "Baker", "12 ",
               "2024", "3rd March", "98765432"]
MEDICAL = ["Lives with", "Claustrophobic", "needs sedation", "seen by", "Allergic to penicillin",
           "metformin stopped", "Hodgkin lymphoma in remission"]


def _with_comments(text: str) -> bytes:
    """CT_small with every comment attribute of include/deid/comments.yaml holding ``text``."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientName = "Zebulon^Quixote"
    for kw in comment_keywords():
        tag = tag_for_keyword(kw)
        vr = dictionary_VR(tag)
        if vr == "SQ":
            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "123", "99LOCAL", text[:64]
            ds.add_new(tag, vr, [item])
        else:
            ds.add_new(tag, vr, text[:64] if vr == "LO" else text[:16] if vr == "SH" else text)
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue()


@pytest.mark.parametrize("profile", ["default", "research", "basic"])
def test_every_profile_removes_every_comment_attribute(profile):
    """The Basic Profile's action (X, or Z where Table E.1-1 says so) for every comment, whatever
    the profile's Clean Descriptors or Retain Patient Characteristics would keep."""
    r = Deidentifier(profile, SECRET).deidentify(_with_comments(RELATIVE))
    assert r.status == "written", r.reason
    assert b"margaret" not in r.data.lower()
    out = pydicom.dcmread(io.BytesIO(r.data))
    for kw in comment_keywords():
        assert kw not in out or not out[kw].value, f"{profile} kept {kw}"


def test_default_profile_removes_patient_comments_of_the_synthetic_site_kind():
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ds.PatientComments = RELATIVE
    ds.AdditionalPatientHistory = "Wife Rosalind phoned, seen by Dr Okafor"
    ds.SeriesDescription = "T1 SE AX"
    buf = io.BytesIO()
    ds.save_as(buf)
    r = Deidentifier("default", SECRET).deidentify(buf.getvalue())
    out = pydicom.dcmread(io.BytesIO(r.data))
    assert "PatientComments" not in out and "AdditionalPatientHistory" not in out
    assert out.SeriesDescription == "T1 SE AX"  # descriptors are still kept for classification


def test_clean_comments_option_keeps_medical_words_removes_people_and_numbers():
    r = Deidentifier("default", SECRET, options=("clean_comments",)).deidentify(_with_comments(COMMENT))
    assert r.status == "written", r.reason
    out = pydicom.dcmread(io.BytesIO(r.data))
    text = str(out.PatientComments)
    for word in MEDICAL:
        assert word in text, (word, text)
    for value in IDENTIFYING:
        assert value not in text, (value, text)
    assert "Zebulon" not in r.data.decode("latin-1")
    assert ("113105", "Clean Descriptors Option") in Deidentifier("basic", SECRET, options=("clean_comments",)).profile.method_codes


@pytest.mark.parametrize("text, gone, kept", [
    ("Lives with Margaret", ["Margaret"], ["Lives with"]),
    ("seen by Dr Okafor on the ward", ["Okafor"], ["seen by", "on the ward"]),
    ("seen by dr okafor", ["okafor"], ["seen by"]),
    ("Mrs J. Smith's husband phoned", ["Smith", "J."], ["husband phoned"]),
    ("Referred by Dr. Van der Berg for mri brain", ["Van", "der", "Berg", "Dr"], ["Referred by", "for mri brain"]),
    ("Wife Anne-Marie present, son Thaddeus waiting", ["Anne-Marie", "Thaddeus"], ["present", "waiting"]),
    ("daughter: Adaeze Okonkwo attended", ["Adaeze", "Okonkwo"], ["daughter", "attended"]),
    ("call 0161 496 0345 before the scan", ["0161", "0345"], ["call", "before the scan"]),
    ("email j.smith@example.org or www.example.org/p", ["smith", "example"], ["email"]),
    ("moved to 12 Baker Street, Manchester M1 2AB", ["Baker", "Manchester", "M1", "12"], ["moved to"]),
    ("scanned 05/03/2024, rescan 3rd March 2024 and March 2025", ["2024", "2025", "3rd"], ["scanned", "rescan"]),
    ("NHS 943 476 5919, insurance 1234567", ["943", "5919", "1234567"], ["NHS", "insurance"]),
    ("Known Parkinson's disease and Crohn's disease after Whipple procedure", [],
     ["Parkinson's disease", "Crohn's disease", "Whipple procedure"]),
    ("Metformin stopped 48 h before CT; Pacemaker MRI conditional", [],
     ["Metformin stopped 48 h before CT", "Pacemaker MRI conditional"]),
    ("Dr on call informed, T2 FLAIR stable", [], ["Dr on call informed", "T2 FLAIR stable"]),
])
def test_clean_comment_finds_people_known_nowhere_else(text, gone, kept):
    out, n = clean_comment(text, PhiValues())
    for g in gone:
        assert g not in out, (text, out)
    for k in kept:
        assert k in out, (text, out)
    assert (n > 0) == bool(gone)


def test_clean_comment_still_removes_the_objects_known_values():
    phi = PhiValues()
    phi.add("PatientName", "PN", "Baker^May")  # English words: only known values can find them
    assert clean_comment("May Baker lives alone", phi)[0] == "lives alone"


def test_unlisted_free_text_gets_the_comment_cleaner():
    """Free text Table E.1-1 does not list (here an SR TextValue under Clean Structured Content)
    may name anyone: it is cleaned like a kept comment."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    item = Dataset()
    item.ValueType = "TEXT"
    item.TextValue = "Discussed with Dr Okafor, wife Margaret present"
    ds.ContentSequence = [item]
    buf = io.BytesIO()
    ds.save_as(buf)
    r = Deidentifier("default", SECRET, options=("clean_structured_content",)).deidentify(buf.getvalue())
    assert r.status == "written", r.reason
    text = str(pydicom.dcmread(io.BytesIO(r.data)).ContentSequence[0].TextValue)
    assert "Okafor" not in text and "Margaret" not in text and "present" in text


def test_readme_lists_every_free_text_attribute_the_default_profile_keeps():
    """deid/README.md names every text attribute the default profile keeps (cleaned), and no
    comment attribute among them."""
    plan = compile_plan(load_profile("default"))
    kept = set()
    for tag, action in plan.exact.items():
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            continue
        if action == "C" and vr in ("LO", "SH", "ST", "LT", "UT", "UC"):
            kept.add(pydicom.datadict.keyword_for_tag(tag))
    section = README.read_text().split("### Free text the default profile keeps", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`([A-Za-z]+)`", section))
    assert kept <= listed, sorted(kept - listed)
    assert not kept & set(comment_keywords())
