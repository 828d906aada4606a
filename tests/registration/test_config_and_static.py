"""Configuration (defaults + overrides, typos refused) and the interim static-series rule."""
from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from curation.confighash import config_hash
from curation.registration.config import load_config, parse_assignment
from curation.registration.static import SeriesInfo, choose_static


def test_defaults_overrides_and_typos(tmp_path):
    base = load_config()
    assert base["coregister"]["transform"] == "rigid" and base["coregister"]["backend"] == "simpleitk"
    over = load_config({"coregister": {"transform": "affine"}}, parse_assignment("motion_correction.reference_volume=2"))
    assert over["coregister"]["transform"] == "affine" and over["motion_correction"]["reference_volume"] == 2
    assert config_hash(over) != config_hash(base)
    f = tmp_path / "c.yaml"
    f.write_text("coregister:\n  sampling_percentage: [0.5, 0.3, 0.2]\n")
    assert load_config(f)["coregister"]["sampling_percentage"] == [0.5, 0.3, 0.2]
    with pytest.raises(ValueError, match="unknown registration setting"):
        load_config({"coregister": {"tranform": "affine"}})
    with pytest.raises(ValueError, match="choose one of"):
        load_config({"coregister": {"transform": "bspline"}})
    with pytest.raises(ValueError, match="one per level"):
        load_config({"coregister": {"shrink_factors": [2, 1]}})


def _info(key, desc, *, iop=(1, 0, 0, 0, 1, 0), mra="2D", derived=False, modality="MR", te=100.0, tr=4000.0,
          ti=None, slices=30, volumes=1, spacing=(1.0, 1.0, 3.0)):
    ds = Dataset()
    ds.Modality = modality
    ds.SeriesDescription = desc
    ds.ImageOrientationPatient = list(iop)
    ds.MRAcquisitionType = mra
    ds.ImageType = ["DERIVED" if derived else "ORIGINAL", "PRIMARY"]
    ds.EchoTime, ds.RepetitionTime = te, tr
    if ti:
        ds.InversionTime = ti
    return SeriesInfo(key, ds, slices, volumes, spacing[0] * spacing[1] * spacing[2])


SAG = (0, 1, 0, 0, 0, -1)


def test_static_rule_prefers_3d_axial_original_t2():
    series = [
        _info("t1", "t1_mprage_sag", iop=SAG, mra="3D", te=3.0, tr=2300.0),
        _info("flair", "t2_tirm_tra_dark-fluid", ti=2500.0),
        _info("t2_2d", "t2_tse_tra"),
        _info("t2_3d", "t2_spc_tra_iso", mra="3D", spacing=(1.0, 1.0, 1.0)),
        _info("t2_sag", "t2_spc_sag", iop=SAG, mra="3D", spacing=(0.9, 0.9, 0.9)),
        _info("dwi", "ep2d_diff", volumes=4),
        _info("loc", "localizer", slices=3),
    ]
    assert choose_static(series).key == "t2_3d"
    assert choose_static([s for s in series if s.key != "t2_3d"]).key == "t2_2d"  # axial before 3D
    no_t2 = [s for s in series if not s.key.startswith("t2")]
    assert choose_static(no_t2).key == "flair"  # no T2w: an original axial volume
    unnamed = _info("x", "", te=110.0, tr=5000.0)
    assert unnamed.t2_weighted  # no telling description: TE/TR decide
    assert choose_static([series[-2], series[-1]]) is None  # only 4D and localizer: nothing to register to
