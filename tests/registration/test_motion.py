"""Acceptance: 4D motion correction recovers every volume's motion (same accuracy as co-registration)
and lowers the temporal SD inside the head; framewise displacement flags the volumes that moved."""
from __future__ import annotations

import numpy as np
import pytest

from curation.registration import load_config, motion_correct
from synth.registration_pairs import axial_grid, head_mask_points, random_rigid, sample_head
from curation.registration.transforms import framewise_displacement, rotation_error_deg, target_registration_error

GRID = ((56, 64, 64), (3.0, 3.0, 3.0))


def _series(contrasts: list[str], seed: int) -> tuple[list, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    grid = axial_grid(*GRID)
    truths = [np.eye(4)] + [random_rigid(rng, 10.0, 15.0) for _ in contrasts[1:]]
    vols = [sample_head(grid, c, m, noise=0.02, supersample=2, seed=seed * 100 + i)
            for i, (c, m) in enumerate(zip(contrasts, truths))]
    return vols, truths


@pytest.fixture(scope="module")
def fmri_like():
    return _series(["T2"] * 5, seed=11)


def test_same_contrast_series_every_volume_recovered(fmri_like):
    vols, truths = fmri_like
    mc = motion_correct(vols, load_config()["motion_correction"])
    pts = head_mask_points(vols[0], stride=2)
    for i, (true, est) in enumerate(zip(truths, mc.matrices)):
        tre = target_registration_error(true, est, pts)
        rot = rotation_error_deg(true, est)
        print(f"volume {i}: TRE {tre:.3f} mm, rotation error {rot:.3f} deg")
        assert tre <= 0.3 and rot <= 0.3
    print(f"temporal SD in the head {mc.temporal_sd_before:.1f} -> {mc.temporal_sd_after:.1f}")
    assert mc.temporal_sd_after < 0.5 * mc.temporal_sd_before
    true_fd = framewise_displacement(truths, mc.centre_mm)
    assert np.allclose(mc.framewise_displacement_mm, true_fd, atol=0.5)
    assert mc.flagged == [i for i in range(1, 5)]  # every moved volume moved more than 0.5 mm
    d = mc.to_dict()
    assert len(d["matrices"]) == 5 and d["flagged_volumes"] == mc.flagged
    assert d["matrices"][0] == np.eye(4).tolist()


def test_dwi_like_series_b0_and_b1000_volumes_recovered():
    vols, truths = _series(["DWI_B0", "DWI_B1000", "DWI_B1000", "DWI_B1000"], seed=12)
    mc = motion_correct(vols, load_config()["motion_correction"])
    pts = head_mask_points(vols[0], stride=2)
    for i, (true, est) in enumerate(zip(truths, mc.matrices)):
        tre = target_registration_error(true, est, pts)
        print(f"volume {i}: TRE {tre:.3f} mm, rotation error {rotation_error_deg(true, est):.3f} deg")
        assert tre <= 0.5
    print(f"temporal SD in the head {mc.temporal_sd_before:.1f} -> {mc.temporal_sd_after:.1f}")
    assert mc.temporal_sd_after < mc.temporal_sd_before


def test_still_series_flags_nothing_and_other_reference_works(fmri_like):
    vols, _ = fmri_like
    still = [vols[0]] * 3
    mc = motion_correct(still, dict(load_config()["motion_correction"], reference_volume=1))
    assert mc.reference == 1
    assert mc.flagged == []
    assert max(mc.framewise_displacement_mm) < 0.05


def test_one_volume_is_not_a_4d_series(fmri_like):
    with pytest.raises(ValueError, match="4D"):
        motion_correct(fmri_like[0][:1], load_config()["motion_correction"])
