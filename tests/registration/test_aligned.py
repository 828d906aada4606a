"""The alignment check (issue 16, throughput): images that share a scanner frame stop at identity only
when a coarse registration measured that they did not move, and the measurement is recorded; a series
or volume that moved, even by under a millimetre, is still registered to the usual accuracy."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from curation.registration import load_config, motion_correct, register_images, register_study
from synth.registration_pairs import axial_grid, head_mask_points, make_pair, rigid_matrix, sample_head
from curation.registration.transforms import target_registration_error
from tests.registration.conftest import SMALL
from tests.registration.dicom_helpers import study_header, write_series


def _small_motion(k: float) -> np.ndarray:
    """About k mm of mean head displacement: k/2 degrees about an oblique axis plus a k-mm shift."""
    return rigid_matrix((0.4 * k, -0.3 * k, 0.3 * k), (0.6 * k, -0.5 * k, 0.5 * k))


def test_a_still_pair_in_one_frame_keeps_identity_and_records_the_measurement():
    pair = make_pair(fixed_contrast="T2", moving_contrast="FLAIR", true_matrix=np.eye(4), seed=5, **SMALL)
    reg = register_images(pair.fixed, pair.moving, load_config()["coregister"], same_frame=True)
    aligned = reg.details["aligned"]
    assert aligned["kept_identity"] and aligned["coarse_moved_mm"] < aligned["below_mm"] == 1.0
    assert np.array_equal(reg.matrix, np.eye(4))
    assert len(reg.details["iterations"]) == 1  # only the coarsest level ran
    assert "aligned in scanner coordinates" in reg.details["stop_condition"]
    assert reg.to_dict()["optimizer"]["aligned"] == aligned


def test_without_a_shared_frame_the_same_pair_is_registered_in_full():
    pair = make_pair(fixed_contrast="T2", moving_contrast="FLAIR", true_matrix=np.eye(4), seed=5, **SMALL)
    reg = register_images(pair.fixed, pair.moving, load_config()["coregister"], similarity=False)
    assert "aligned" not in reg.details and len(reg.details["iterations"]) >= 3


@pytest.mark.parametrize("moving_contrast,k", [("T2", 1.0), ("T1", 0.75), ("FLAIR", 1.0), ("DWI_B0", 1.5)])
def test_a_series_moved_by_about_a_millimetre_in_one_frame_is_still_registered(moving_contrast, k):
    truth = _small_motion(k)
    pair = make_pair(fixed_contrast="T2", moving_contrast=moving_contrast, true_matrix=truth, seed=5, **SMALL)
    moved = target_registration_error(truth, np.eye(4), pair.head_points)
    reg = register_images(pair.fixed, pair.moving, load_config()["coregister"], same_frame=True, similarity=False)
    tre = target_registration_error(truth, reg.matrix, pair.head_points)
    print(f"T2 <- {moving_contrast}: moved {moved:.2f} mm, coarse check {reg.details['aligned']['coarse_moved_mm']:.2f} mm, "
          f"TRE {tre:.3f} mm")
    assert moved > 0.75
    assert not reg.details["aligned"]["kept_identity"]
    assert len(reg.details["iterations"]) >= 3
    assert tre <= 0.3


def test_motion_correction_registers_only_the_volumes_that_moved():
    grid = axial_grid(*((56, 64, 64), (3.0, 3.0, 3.0)))
    truths = [np.eye(4), np.eye(4), _small_motion(2.0), np.eye(4)]
    vols = [sample_head(grid, "T2", None if np.array_equal(m, np.eye(4)) else m, noise=0.02, supersample=2, seed=40 + i)
            for i, m in enumerate(truths)]
    mc = motion_correct(vols, load_config()["motion_correction"])
    assert mc.still == [1, 3] and mc.moved == [2]
    pts = head_mask_points(vols[0], stride=2)
    assert target_registration_error(truths[2], mc.matrices[2], pts) <= 0.3
    for i in mc.still:
        assert np.array_equal(mc.matrices[i], np.eye(4))
        # kept as acquired: the very voxels of the volume, not a resampled copy
        assert np.array_equal(sitk.GetArrayFromImage(mc.corrected[i]),
                              sitk.GetArrayFromImage(vols[i]).astype(np.float32))
    d = mc.to_dict()
    assert d["still_volumes"] == [1, 3] and d["moved_volumes"] == [2]
    assert d["volumes"][1]["aligned"]["kept_identity"] and not d["volumes"][2]["aligned"]["kept_identity"]
    assert d["volumes"][1]["aligned"]["coarse_moved_mm"] < 0.5


def test_a_still_study_writes_no_motion_corrected_copy_and_says_why(tmp_path):
    """One frame of reference, nothing moved: co-registration keeps identity (recorded per series), the
    still 4D series gets its co-registered copy but no motion-corrected one; a series moved in the same
    frame is registered in full. (On coarser grids than this the coarse check can measure a still series
    as moved: it then costs a full registration, as before, never accuracy.)"""
    header = study_header(seed=31)
    grid = axial_grid(SMALL["fixed_shape_zyx"], SMALL["fixed_spacing_zyx"])
    truth = _small_motion(3.0)
    write_series(sample_head(grid, "T2", None, seed=1), tmp_path / "t2", header, 2, "t2_spc_tra_iso")
    write_series(sample_head(grid, "FLAIR", None, seed=2), tmp_path / "flair", header, 3, "flair_tra")
    write_series(sample_head(grid, "T1", truth, seed=3), tmp_path / "t1", header, 4, "t1_tra", te=12.0, tr=500.0)
    write_series([sample_head(grid, c, None, seed=4 + i) for i, c in enumerate(["DWI_B1000", "DWI_B1000"])],
                 tmp_path / "dwi", header, 5, "ep2d_diff", b_values=[1000, 1000], acquisition_3d=False)
    result = register_study([tmp_path / n for n in ("t2", "flair", "t1", "dwi")], tmp_path / "out",
                            fixed=tmp_path / "t2")
    by = {s.source.rsplit("/", 1)[-1]: s for s in result.series}
    assert by["flair"].coregistration["optimizer"]["aligned"]["kept_identity"]
    assert "aligned in scanner coordinates" in by["flair"].reason
    assert [d.kind for d in by["flair"].derived] == ["coregistered"]
    assert not by["t1"].coregistration["optimizer"]["aligned"]["kept_identity"] and by["t1"].reason is None
    assert by["t1"].coregistration["rotation_deg"] > 1.0
    dwi = by["dwi"]
    assert dwi.motion["moved_volumes"] == [] and dwi.motion["still_volumes"] == [1]
    assert [d.kind for d in dwi.derived] == ["coregistered"]
    assert dwi.reason.startswith("no motion") and "aligned in scanner coordinates" in dwi.reason
