"""End to end on the synthetic hospital (synth): the register stage on a whole MR study
picks the T2w series, motion-corrects DWI and DCE, co-registers every volume series and writes
derived series that reference their sources; the DWI/DCE motion planted by the generator is found.

The generator samples the phantom at voxel centres (no partial-volume averaging), so its 4D series
are aliased and registration ground truth there holds to about 1-2 mm rather than the sub-0.3 mm
reached on partial-volume phantoms (tests/registration/test_motion.py); the bound below is relative.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from curation.registration import register_study
from synth.registration_pairs import head_mask_points
from curation.registration.transforms import target_registration_error
from curation.volume import load_volume, read_dicom_series

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from synth.site import generate_site

    out = tmp_path_factory.mktemp("site")
    truth = generate_site(out, patients=1, seed=3, matrix=64, slices=40, slices_4d=32, matrix_4d=64,
                          progress=lambda _msg: None)
    mr = [s for s in truth["series"] if s["modality"] == "MR"]
    folders = sorted({out / Path(s["files"][0]).parent for s in mr})
    result = register_study(folders, out / "derived")
    return {"root": out, "truth": truth, "mr": mr, "result": result, "folders": folders}


def _truth_of(site, uid):
    return next(s for s in site["truth"]["series"] if s["series_instance_uid"] == uid)


def test_t2w_is_the_static_series_and_non_volumes_are_skipped(site):
    r = site["result"]
    assert _truth_of(site, r.fixed_series_uid)["kind"] == "T2W"
    roles = {}
    for s in r.series:
        kind = _truth_of(site, s.series_instance_uid)["kind"] if s.series_instance_uid else "?"
        roles.setdefault(kind, set()).add(s.role)
    assert roles["LOCALIZER"] == {"skipped"}
    for kind in ("T1W", "FLAIR", "PDW", "SWI", "ADC", "DWI", "DCE"):
        assert roles[kind] == {"registered"}, (kind, roles[kind])
    four_d = [s for s in r.series if s.motion]
    assert sorted(_truth_of(site, s.series_instance_uid)["kind"] for s in four_d) == ["DCE", "DWI"]
    for s in four_d:
        assert sorted(d.kind for d in s.derived) == ["coregistered", "motion_corrected"]


def test_planted_motion_is_found(site):
    for s in (s for s in site["result"].series if s.motion):
        truth = _truth_of(site, s.series_instance_uid)
        pts = head_mask_points(read_dicom_series(s.source).volumes[0], stride=2)
        errors, moved = [], []
        for vol, gt in zip(s.motion["volumes"][1:], truth["motion"][1:]):
            errors.append(target_registration_error(np.array(gt["matrix"]), np.array(vol["matrix"]), pts))
            moved.append(target_registration_error(np.array(gt["matrix"]), np.eye(4), pts))
        print(f"{truth['kind']}: TRE {np.round(errors, 2).tolist()} mm for motions {np.round(moved, 2).tolist()} mm; "
              f"temporal SD {s.motion['temporal_sd_in_head_before']:.1f} -> {s.motion['temporal_sd_in_head_after']:.1f}")
        assert np.mean(errors) < 0.4 * np.mean(moved)
        assert s.motion["temporal_sd_in_head_after"] < s.motion["temporal_sd_in_head_before"]
        assert s.motion["flagged_volumes"]  # the generator moves every volume by millimetres


def test_derived_series_are_on_the_fixed_grid_and_reference_their_source(site):
    r = site["result"]
    fixed_dir = next(s.source for s in r.series if s.role == "fixed")
    fixed = load_volume(fixed_dir)
    for d in (d for d in r.derived if d.kind == "coregistered"):
        img = load_volume(d.path)
        assert img.GetSize() == fixed.GetSize()
        assert np.allclose(img.GetOrigin(), fixed.GetOrigin(), atol=1e-3)
        assert np.allclose(img.GetDirection(), fixed.GetDirection(), atol=1e-5)
        h = pydicom.dcmread(next(Path(d.path).iterdir()), stop_before_pixels=True)
        assert h.ReferencedSeriesSequence[0].SeriesInstanceUID == d.source_series_uid
        assert h.StudyInstanceUID == _truth_of(site, d.source_series_uid)["study_instance_uid"]
    summary = json.loads((site["root"] / "derived" / "registration.json").read_text())
    assert summary["key"] == r.key and len(summary["derived"]) == len(r.derived)
