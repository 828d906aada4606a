"""Rule engine, attributes and the real series bundled with pydicom, nibabel and dipy."""
from __future__ import annotations

import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from curation.classify import classify_series
from curation.classify.attributes import plane_of_orientation
from curation.classify.header import SeriesHeader
from curation.classify.classifier import classify_header
from curation.classify.rules import RuleEngine, normalise_text

SITE = Path(pydicom.__file__).parent.parent
NIBABEL = Path(__import__("nibabel").__file__).parent
DIPY = Path(__import__("dipy").__file__).parent / "data" / "files"

#: (file, acceptable kinds) -- what a radiologist would call each bundled real series.
REAL_DICOM = [
    ("CT_small.dcm", {"CT"}),
    ("693_J2KI.dcm", {"CT"}),
    ("J2K_pixelrep_mismatch.dcm", {"CT"}),
    ("MR_small.dcm", {"T2W"}),  # SE, TR 4000 ms, TE 240 ms
    ("examples_overlay.dcm", {"DCE", "T1W"}),  # MPR of t1_vibe_fs_tra_bh_dyn
    ("examples_rgb_color.dcm", {"US"}),
    ("examples_palette.dcm", {"US"}),
    ("examples_jpeg2k.dcm", {"US"}),
    ("examples_ybr_color.dcm", {"US"}),
    ("ExplVR_BigEnd.dcm", {"US"}),
    ("SC_rgb_rle.dcm", {"SC"}),
    ("SC_rgb_rle_16bit.dcm", {"SC"}),
    ("JPEG2000.dcm", {"SC", "OTHER"}),  # an NM whole-body stored as secondary capture
    ("rtdose.dcm", {"OTHER"}),
]
REAL_NIBABEL = [
    ("nicom/tests/data/0.dcm", {"DWI"}),  # Siemens DTI mosaic
    ("nicom/tests/data/csa_slice_norm.dcm", {"OTHER_MR"}),  # resting-state EPI (BOLD)
    ("nicom/tests/data/slicethickness_empty_string.dcm", {"OTHER_MR"}),  # TOF MIP
    ("nicom/tests/data/decimal_rescale.dcm", {"T1W", "OTHER_MR"}),  # quantitative T1 map (GR/IR)
    ("tests/data/anatomical.nii", {"T1W"}),
    ("tests/data/functional.nii", {"OTHER_MR"}),
]
REAL_DIPY = [("small_25.nii.gz", {"DWI"}), ("small_64D.nii", {"DWI"}), ("small_101D.nii.gz", {"DWI"})]


def _classify(path: Path) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return classify_series([path])


@pytest.mark.parametrize("name,kinds", REAL_DICOM)
def test_bundled_pydicom_series_get_a_sensible_kind(name, kinds):
    path = Path(get_testdata_file(name))
    r = _classify(path)
    print(f"{name}: {r['kind']} ({r['confidence']:.2f}, {r['rule']})")
    assert r["kind"] in kinds, r


@pytest.mark.parametrize("rel,kinds", REAL_NIBABEL)
def test_bundled_nibabel_series_get_a_sensible_kind(rel, kinds):
    r = _classify(NIBABEL / rel)
    print(f"{rel}: {r['kind']} ({r['confidence']:.2f}, {r['rule']})")
    assert r["kind"] in kinds, r


@pytest.mark.parametrize("name,kinds", REAL_DIPY)
def test_bundled_dipy_diffusion_volumes_are_dwi(name, kinds):
    r = _classify(DIPY / name)
    assert r["kind"] in kinds, r
    assert r["dimensions"] == "4D"
    assert r["rule"] == "mr.dwi.b_values"


def test_real_attributes_follow_the_headers():
    ct = _classify(Path(get_testdata_file("CT_small.dcm")))
    assert ct["plane"] == "axial" and ct["contrast"] is True  # ContrastBolusAgent ISOVUE300/100
    overlay = _classify(Path(get_testdata_file("examples_overlay.dcm")))
    assert overlay["derived"] is True and overlay["body_part"] == "ABDOMEN"
    tof = _classify(NIBABEL / "nicom/tests/data/slicethickness_empty_string.dcm")
    assert tof["plane"] == "oblique" and tof["dimensions"] == "3D"


@pytest.mark.parametrize("iop,plane", [
    ([1, 0, 0, 0, 1, 0], "axial"),
    ([0, 1, 0, 0, 0, -1], "sagittal"),
    ([1, 0, 0, 0, 0, -1], "coronal"),
    ([1, 0, 0, 0, 0.995, -0.105], "axial"),  # 6 degree angulation stays axial
    ([1, 0, 0, 0, 0.707, -0.707], "oblique"),  # 45 degrees
])
def test_plane_from_orientation(iop, plane):
    assert plane_of_orientation(iop) == plane


def test_vendor_naming_styles():
    """Siemens, GE and Philips names for the same weightings, and the traps between them."""
    engine = RuleEngine.from_file()
    cases = {
        "t1_mprage_sag_p2_iso": "T1W", "Sag 3D T1 BRAVO +C": "T1W", "T1W_3D_TFE_Gd": "T1W",
        "Sag T1 FLAIR": "T1W",  # GE T1-FLAIR is T1-weighted, not a FLAIR
        "t2_tse_tra": "T2W", "Ax T2 FSE": "T2W", "T2W_TSE": "T2W", "Sag CUBE T2": "T2W",
        "t2_tirm_tra_dark-fluid": "FLAIR", "Ax T2 FLAIR": "FLAIR", "FLAIR_LongTR": "FLAIR", "VISTA_FLAIR": "FLAIR",
        "pd_tse_tra": "PDW", "Ax PD FSE": "PDW", "PDW_TSE": "PDW",
        "ep2d_diff_3scan_trace": "DWI", "Ax DWI 1000b": "DWI", "DWI_SENSE": "DWI",
        "ep2d_diff_3scan_trace_ADC": "ADC", "Apparent Diffusion Coefficient (mm2/s)": "ADC", "dADC": "ADC",
        "swi_tra": "SWI", "Ax SWAN": "SWI", "SWIp": "SWI",
        "t1_vibe_fs_tra_dyn": "DCE", "Ax LAVA DCE": "DCE", "T1_THRIVE_DYN": "DCE",
        "localizer": "LOCALIZER", "3-Plane Loc": "LOCALIZER", "Survey": "LOCALIZER", "AAHead_Scout_64ch": "LOCALIZER",
    }
    wrong = {}
    for desc, kind in cases.items():
        m = engine.evaluate(SeriesHeader(modality="MR", series_description=desc)).get("naming")
        if m is None or m.kind != kind:
            wrong[desc] = (m.kind if m else None, kind)
    assert not wrong, wrong


def test_normalise_text_turns_vendor_separators_into_spaces():
    assert normalise_text("t2_tirm_tra_dark-fluid") == "t2 tirm tra dark fluid"


def test_physics_decides_when_the_description_is_blank():
    base = dict(modality="MR", n_files=20, n_positions=20, orientations=[[1, 0, 0, 0, 1, 0]])
    cases = [
        (dict(scanning_sequence=["SE"], repetition_time=500, echo_time=12), "T1W"),
        (dict(scanning_sequence=["SE"], repetition_time=4500, echo_time=100), "T2W"),
        (dict(scanning_sequence=["SE"], repetition_time=3000, echo_time=12), "PDW"),
        (dict(scanning_sequence=["SE", "IR"], repetition_time=9000, echo_time=90, inversion_time=2500), "FLAIR"),
        (dict(scanning_sequence=["GR", "IR"], repetition_time=2300, echo_time=3, inversion_time=900), "T1W"),
        (dict(scanning_sequence=["EP"], repetition_time=4000, echo_time=90, b_values=[0.0, 1000.0]), "DWI"),
        (dict(scanning_sequence=["GR"], repetition_time=4.5, echo_time=1.8, temporal_positions=6), "DCE"),
        (dict(scanning_sequence=["GR"], repetition_time=30, echo_time=20, flip_angle=15, mr_acquisition_type="3D"),
         "SWI"),
    ]
    for fields, kind in cases:
        r = classify_header(SeriesHeader(**base, **fields), model=None)
        assert r["kind"] == kind, (fields, r["kind"], r["rule"])
        assert r["stage"] in ("physics", "evidence")


def test_every_answer_names_its_rule_and_a_confidence_in_0_1():
    r = classify_header(SeriesHeader(modality="MR"), model=None)
    assert r["kind"] == "OTHER_MR" and 0 < r["confidence"] <= 0.5
    assert r["rule"]
    r = classify_header(SeriesHeader(modality="NM"), model=None)
    assert r["kind"] == "OTHER" and r["rule"] == "other.modality"


def test_rules_yaml_rejects_unknown_kinds_and_conditions(tmp_path):
    bad = tmp_path / "rules.yaml"
    bad.write_text("stages:\n  - name: x\n    rules:\n      - {id: a, kind: T3W, confidence: 0.5}\n")
    with pytest.raises(ValueError, match="unknown kind"):
        RuleEngine.from_file(bad)
    bad.write_text("stages:\n  - name: x\n    rules:\n      - {id: a, kind: T1W, confidence: 0.5, colour: red}\n")
    with pytest.raises(ValueError, match="unknown condition"):
        RuleEngine.from_file(bad)


def test_stage_result_flags_low_confidence_for_review():
    from curation.classify import stage_result

    sure = stage_result(_classify(Path(get_testdata_file("CT_small.dcm"))))
    assert sure["status"] == "ok" and sure["reason"].startswith("CT")
    unsure = stage_result(classify_header(SeriesHeader(modality="MR"), model=None))
    assert unsure["status"] == "review" and "low confidence" in unsure["reason"]
