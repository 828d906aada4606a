"""Planted PHI is where phi_locations says; burned-in text is where its boxes say."""
from __future__ import annotations

import re

import numpy as np
import pydicom

from tests.synth.helpers import patient_of


def _element(ds: pydicom.Dataset, path: str):
    """Follow 'Keyword[i].Keyword[j].(gggg,eeee)' from a dataset (file meta for group 0002)."""
    *seqs, leaf = path.split(".")
    cur = ds
    for part in seqs:
        name, idx = re.fullmatch(r"(.+)\[(\d+)\]", part).groups()
        cur = cur[name][int(idx)] if not name.startswith("(") else cur[_tag(name)].value[int(idx)]
    tag = _tag(leaf)
    if tag >> 16 == 0x0002:
        return ds.file_meta[tag]
    return cur[tag]


def _tag(text: str) -> int:
    g, e = text.strip("()").split(",")
    return int(g, 16) << 16 | int(e, 16)


def _as_text(elem) -> str:
    v = elem.value
    if isinstance(v, bytes):
        return v.decode("latin-1")
    if isinstance(v, (list, pydicom.multival.MultiValue)):
        return "\\".join(str(x) for x in v)
    return str(v)


def test_every_phi_location_holds_its_value(site):
    out, truth = site
    locs = truth["phi_locations"]
    assert len(locs) > 1000
    by_file: dict[str, list[dict]] = {}
    for loc in locs:
        by_file.setdefault(loc["file"], []).append(loc)
    sop_to_patient = {}
    for s in truth["series"]:
        for f in s["files"]:
            sop_to_patient[f] = s["patient_id"]
    for rel, entries in by_file.items():
        ds = pydicom.dcmread(out / rel)
        phi = set(patient_of(truth, sop_to_patient[rel])["phi_values"])
        for loc in entries:
            elem = _element(ds, loc["tag"])
            if loc.get("encoding") == "overlay_bitmap":
                assert np.frombuffer(elem.value, np.uint8).any()
            else:
                assert loc["value"].lower() in _as_text(elem).lower(), loc
            assert loc["value"] in phi, loc


def test_phi_planted_in_every_hiding_place(site):
    """Each kind of place a real export hides identifiers appears in phi_locations."""
    _, truth = site
    tags = {loc["tag"] for loc in truth["phi_locations"]}
    for needed in ("(0010,0010)", "(0010,0020)", "(0010,0030)", "(0010,1040)", "(0010,2154)", "(0008,0080)",
                   "(0008,0081)", "(0008,0090)", "(0008,1050)", "(0008,1070)", "(0008,0050)", "(0020,0010)",
                   "(0008,1030)", "(0020,4000)", "(0010,21B0)", "(0032,1060)", "(0008,0020)", "(0008,0030)",
                   "(0020,000D)", "(0020,000E)", "(0008,0018)", "(0002,0003)", "(0020,0052)",
                   "(6000,0022)", "(6000,3000)", "(0031,1010)", "(0031,1011)"):
        assert needed in tags, needed
    accessions = {loc["value"] for loc in truth["phi_locations"] if loc["tag"] == "(0008,0050)"}
    assert accessions == {st["accession_number"] for st in truth["studies"]}
    assert any(t.startswith("OtherPatientIDsSequence[0].") for t in tags)
    assert any(t.startswith("RequestAttributesSequence[0].") for t in tags)
    assert any(t.startswith("ReferencedPatientSequence[0].") for t in tags)
    assert any(t.startswith("ReferencedStudySequence[0].") for t in tags)


def test_patients_have_distinct_identities(site):
    _, truth = site
    pats = truth["patients"]
    assert len({p["patient_id"] for p in pats}) == len({p["patient_name"] for p in pats}) == len(pats)
    for p in pats:
        assert p["patient_name"] in p["phi_values"] and p["patient_id"] in p["phi_values"]
        assert p["birth_date"] in p["phi_values"]
        assert p["sex"] in ("F", "M") and 15 < p["age"] < 100


def test_non_identifying_text_holds_no_patient_value(site):
    """Series descriptions and protocol names carry no identifier: classification may keep them."""
    _, truth = site
    for s in truth["series"]:
        phi = patient_of(truth, s["patient_id"])["phi_values"]
        words = {v.lower() for v in phi if not v[:1].isdigit() and len(v) > 3}
        for text in (s["series_description"], s["protocol_name"]):
            assert not any(w in text.lower() for w in words), (text, s["kind"])


def test_burned_in_text_boxes_cover_bright_text(site):
    out, truth = site
    with_text = [s for s in truth["series"] if s["kind"] in ("US", "SC")]
    assert with_text and all(s["burned_in_text"] for s in with_text)
    for s in with_text:
        ds = pydicom.dcmread(out / s["files"][0])
        arr = ds.pixel_array  # pydicom converts YBR_FULL to RGB
        frames = int(ds.get("NumberOfFrames", 1))
        if frames == 1:
            arr = arr[None]
        assert {t["frame"] for t in s["burned_in_text"]} == set(range(frames))
        phi = patient_of(truth, s["patient_id"])["phi_values"]
        for t in s["burned_in_text"]:
            x, y, w, h = t["box"]
            assert 0 <= x and 0 <= y and x + w <= ds.Columns and y + h <= ds.Rows
            patch = arr[t["frame"], y:y + h, x:x + w]
            bright = patch.min(axis=-1) if patch.ndim == 3 else patch
            assert (bright >= 200).sum() >= 10, t["text"]
        texts = " ".join(t["text"] for t in s["burned_in_text"])
        assert any(v in texts for v in phi if len(v) > 4)
    flags = {s["burned_in_annotation_flag"] for s in with_text}
    assert flags == {"YES", "NO", None}
    for s in with_text:
        ds = pydicom.dcmread(out / s["files"][0], stop_before_pixels=True)
        assert ds.get("BurnedInAnnotation") == s["burned_in_annotation_flag"]


def test_lesion_boxes_lie_on_the_lesion(site):
    out, truth = site
    n = 0
    for s in truth["series"]:
        for les in s["lesions"]:
            ds = pydicom.dcmread(out / les["file"])
            x, y, w, h = les["box"]
            assert w > 0 and h > 0 and x + w <= ds.Columns and y + h <= ds.Rows
            assert les["file"] in s["files"]
            n += 1
    assert n > 0
