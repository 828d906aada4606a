"""Graded defects of CT, radiographs and ultrasound (issue 11, point 7): planted in the site with
their ground truth, deterministic per seed, and shaped by their physics."""
from __future__ import annotations

import hashlib
import math

import numpy as np
import pydicom
import pytest

from synth import degrade as dg
from synth.site import defect_study, modality_defect_plan

MR_DEFECTS = {"noise", "ghosting", "blur", "bias"}


def _hu(path) -> np.ndarray:
    ds = pydicom.dcmread(path)
    return ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def test_site_plants_and_records_defects_in_every_modality(site):
    _, truth = site
    by_kind: dict[str, list[dict]] = {}
    for s in truth["series"]:
        by_kind.setdefault(s["kind"], []).append(s)
    planted = {k: {s["degradation"]["type"] for s in v if s["degradation"]["type"]} for k, v in by_kind.items()}
    assert planted["CT"] and planted["CT"] <= set(dg.CT_DEFECTS)
    assert planted.get("CR", set()) | planted.get("DX", set()) <= set(dg.XR_DEFECTS)
    assert planted["CR"] and planted["DX"]  # patients 0 (CR) and 1 (DX) of the 3
    assert planted["US"] and planted["US"] <= set(dg.US_DEFECTS)
    for kind in ("CT", "US"):  # clean ones stay
        assert any(not s["degradation"]["type"] for s in by_kind[kind])
    for s in truth["series"]:
        d = s["degradation"]
        if d["type"] and s["kind"] in ("CT", "CR", "DX", "US"):
            assert d["severity"] in dg.SEVERITIES and len(d) > 2, d  # type, severity and the parameters
        if s["kind"] in ("T1W", "T2W", "FLAIR", "PDW", "SWI"):
            assert d["type"] in MR_DEFECTS | {None}
    us = [s for s in by_kind["US"] if s["degradation"]["type"]]
    assert all(s["n_frames"] == 1 for s in us)  # only the single-frame variant: the cines stay clean


def test_plan_covers_every_defect_and_spreads_severities():
    plans = [modality_defect_plan(0, i) for i in range(40)]
    types = {t for p in plans for t, _ in p.values()}
    assert types == set(dg.CT_DEFECTS) | set(dg.XR_DEFECTS) | set(dg.US_DEFECTS)
    assert {s for p in plans for _, s in p.values()} == set(dg.SEVERITIES)
    assert {k for p in plans for k in p} == {"CT HEAD", "CT CHEST", "XR", "US"}
    assert plans == [modality_defect_plan(0, i) for i in range(40)]


def test_defect_study_is_deterministic(tmp_path):
    def digest(out):
        rec = defect_study(out, 11, 2, "CT HEAD", ("streaks", 3), matrix=96, slices=6)
        return rec["degradation"], [hashlib.sha256((out / f).read_bytes()).hexdigest() for f in rec["files"]]

    assert digest(tmp_path / "a") == digest(tmp_path / "b")


def test_ct_noise_grows_as_one_over_root_mas(tmp_path):
    """Quantum noise in HU ~ 1/sqrt(mAs); the header's tube current says the same."""
    sd = {}
    for sev in (0, 2, 4):
        out = tmp_path / str(sev)
        rec = defect_study(out, 3, 0, "CT HEAD", ("low_mas", sev) if sev else None, matrix=128, slices=4)
        hu = _hu(out / rec["files"][0])
        air = hu[:12, :12]  # a corner: air only
        sd[sev] = float(air.std())
        ds = pydicom.dcmread(out / rec["files"][0], stop_before_pixels=True)
        f = dg.CT_MAS_FRACTION[sev] if sev else 1.0
        assert int(ds.XRayTubeCurrent) == round(250 * f)
    for sev in (2, 4):
        expected = sd[0] / math.sqrt(dg.CT_MAS_FRACTION[sev])
        assert abs(sd[sev] - expected) < 0.15 * expected, (sev, sd)


def test_ct_truncation_cuts_the_body_at_the_field_edge(tmp_path):
    edge_body = {}
    for sev in (0, 1, 3):
        out = tmp_path / str(sev)
        rec = defect_study(out, 3, 0, "CT CHEST", ("truncation", sev) if sev else None, matrix=96, slices=4)
        hu = _hu(out / rec["files"][2])
        edge = np.concatenate([hu[0], hu[-1], hu[:, 0], hu[:, -1]])
        edge_body[sev] = float((edge > -500).mean())
    assert edge_body[0] == 0 < edge_body[1] < edge_body[3]


def test_radiograph_exposure_index_follows_the_dose(tmp_path):
    di = {}
    for t, sev in ((None, 0), ("underexposure", 2), ("overexposure", 2)):
        out = tmp_path / f"{t}{sev}"
        rec = defect_study(out, 5, 1, "DX", (t, sev) if t else None, matrix=128)
        ds = pydicom.dcmread(out / rec["files"][0], stop_before_pixels=True)
        di[t] = float(ds.DeviationIndex)
        assert abs(10 * math.log10(float(ds.ExposureIndex) / float(ds.TargetExposureIndex)) - di[t]) < 0.01
    assert abs(di[None]) < 1 and di["underexposure"] < -3 and di["overexposure"] > 3


@pytest.mark.parametrize("t", dg.US_DEFECTS)
def test_ultrasound_defects_grow_with_severity(tmp_path, t):
    """Gain: more of the fan clipped; dropout: a darker shadow; reverberation: brighter bands."""
    change = []
    clean = None
    for sev in (0, 1, 3, 5):
        out = tmp_path / f"{t}{sev}"
        rec = defect_study(out, 9, 0, "US", (t, sev) if sev else None)
        img = pydicom.dcmread(out / rec["files"][0]).pixel_array.astype(float)
        if clean is None:
            clean = img
            continue
        if t == "gain_saturation":
            change.append(float((img >= 255).mean()))
        else:
            change.append(float(np.abs(img - clean).mean()))
    assert change == sorted(change) and change[0] > 0, change
