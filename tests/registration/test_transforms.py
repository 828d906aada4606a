"""The matrix convention (fixed -> moving, LPS mm) agrees with SimpleITK's resampling and with the
phantom's ground truth; the derived numbers (angles, FD, TRE) are what they claim."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from curation.registration.similarity import normalized_cross_correlation, resample
from synth.registration_pairs import axial_grid, head_mask_points, sample_head
from curation.registration.transforms import (
    euler_angles_deg,
    framewise_displacement,
    matrix_to_transform,
    rigid_matrix,
    rotation_angle_deg,
    rotation_error_deg,
    target_registration_error,
    transform_to_matrix,
    translation_about,
)


def test_rigid_matrix_round_trips_through_euler_angles_and_simpleitk():
    m = rigid_matrix((5.0, -3.0, 8.0), (10.0, -4.0, 2.0), (3.0, 4.0, 5.0))
    assert np.allclose(euler_angles_deg(m), (5.0, -3.0, 8.0))
    assert np.allclose(translation_about(m, (3.0, 4.0, 5.0)), (10.0, -4.0, 2.0))
    e = sitk.Euler3DTransform()
    e.SetComputeZYX(True)
    e.SetCenter((3.0, 4.0, 5.0))
    e.SetRotation(*np.deg2rad((5.0, -3.0, 8.0)))
    e.SetTranslation((10.0, -4.0, 2.0))
    assert np.allclose(transform_to_matrix(e), m)
    p = (10.0, 20.0, 30.0)
    assert np.allclose(matrix_to_transform(m).TransformPoint(p), e.TransformPoint(p))
    composite = sitk.CompositeTransform([e, sitk.TranslationTransform(3, (1.0, 2.0, 3.0))])
    assert np.allclose(transform_to_matrix(composite) @ np.array([*p, 1.0]),
                       np.array([*composite.TransformPoint(p), 1.0]))


def test_resampling_the_moved_head_through_the_true_matrix_gives_back_the_fixed_head():
    grid = axial_grid((44, 56, 56), (4.0, 4.0, 4.0))  # the whole head, moved or not
    true = rigid_matrix((4.0, -3.0, 6.0), (6.0, -5.0, 4.0))
    fixed = sample_head(grid, "T1", None, noise=0.0, supersample=2)
    moving = sample_head(grid, "T1", true, noise=0.0, supersample=2)
    f = sitk.GetArrayFromImage(fixed)
    good = sitk.GetArrayFromImage(resample(moving, fixed, true))
    inverse = sitk.GetArrayFromImage(resample(moving, fixed, np.linalg.inv(true)))
    mask = f > 0.2 * f.max()
    ncc_good = normalized_cross_correlation(f[mask], good[mask])
    ncc_inverse = normalized_cross_correlation(f[mask], inverse[mask])
    print(f"NCC through the true matrix {ncc_good:.3f}, through its inverse {ncc_inverse:.3f}")
    assert ncc_good > 0.9
    assert ncc_good > ncc_inverse + 0.1


def test_tre_and_rotation_error_measure_the_difference_between_mappings():
    pts = head_mask_points(axial_grid((12, 24, 24), (8.0, 8.0, 8.0)))
    m = rigid_matrix((3.0, 0.0, 0.0), (1.0, 2.0, 2.0))
    assert target_registration_error(m, m, pts) == 0.0
    shifted = rigid_matrix((0.0, 0.0, 0.0), (0.0, 0.0, 0.5)) @ m
    assert target_registration_error(m, shifted, pts) == pytest.approx(0.5)
    assert rotation_error_deg(m, rigid_matrix((3.0, 0.0, 0.2), (0.0, 0.0, 0.0))) == pytest.approx(0.2, abs=1e-3)
    assert rotation_angle_deg(m) == pytest.approx(3.0)


def test_framewise_displacement_follows_power_2012():
    centre = (0.0, 0.0, 0.0)
    mats = [np.eye(4), rigid_matrix((0.0, 0.0, 0.0), (1.0, 0.0, 0.0)), rigid_matrix((1.0, 0.0, 0.0), (1.0, 0.0, 0.0))]
    fd = framewise_displacement(mats, centre, radius_mm=50.0)
    assert fd[0] == 0.0
    assert fd[1] == pytest.approx(1.0)
    assert fd[2] == pytest.approx(50.0 * np.deg2rad(1.0))
