"""`curate register` and `curate motion-correct`: JSON output in the documented convention, output of
the same kind as the input (DICOM folder -> derived series, NIfTI -> NIfTI)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from curate.main import main
from synth.registration_pairs import axial_grid, random_rigid, sample_head
from curation.registration.transforms import target_registration_error
from curation.volume import load_volume, load_volumes
from tests.registration.dicom_helpers import study_header, write_series


def _run(capsys, argv) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_register_nifti_prints_the_matrix_and_writes_nifti(small_pair, tmp_path, capsys):
    pair = small_pair("T2", "FLAIR", 7)
    sitk.WriteImage(pair.fixed, str(tmp_path / "fixed.nii.gz"))
    sitk.WriteImage(pair.moving, str(tmp_path / "moving.nii.gz"))
    out = _run(capsys, ["register", "--moving", str(tmp_path / "moving.nii.gz"), "--fixed",
                        str(tmp_path / "fixed.nii.gz"), "--out", str(tmp_path / "reg.nii.gz"),
                        "--review", str(tmp_path / "review.png"), "--json"])
    matrix = np.array(out["matrix"])
    assert matrix.shape == (4, 4) and np.allclose(matrix[3], [0, 0, 0, 1])
    assert target_registration_error(pair.true_matrix, matrix, pair.head_points) <= 0.5
    assert out["translation_mm"] == pytest.approx(matrix[:3, 3].tolist(), abs=1e-5)
    assert 0 < out["rotation_deg"] <= 10.5
    assert set(out["metrics"]) >= {"mi_before", "mi_after", "ncc_before", "ncc_after"}
    assert out["format"] == "nifti"
    reg = load_volume(tmp_path / "reg.nii.gz")
    assert reg.GetSize() == pair.fixed.GetSize()
    assert np.allclose(reg.GetOrigin(), pair.fixed.GetOrigin(), atol=1e-3)
    assert (tmp_path / "review.png").stat().st_size > 1000


def test_register_dicom_writes_a_derived_series_and_rejects_a_nifti_out_for_nothing(small_pair, tmp_path, capsys):
    pair = small_pair("T2", "T2", 8)
    header = study_header(seed=8)
    write_series(pair.fixed, tmp_path / "fixed", header, 2, "t2_fixed")
    write_series(pair.moving, tmp_path / "moving", header, 3, "t2_moving")
    out = _run(capsys, ["register", "--moving", str(tmp_path / "moving"), "--fixed", str(tmp_path / "fixed"),
                        "--out", str(tmp_path / "out"), "--transform", "rigid", "--json"])
    assert out["format"] == "dicom" and out["instances"] == pair.fixed.GetSize()[2]
    assert target_registration_error(pair.true_matrix, np.array(out["matrix"]), pair.head_points) <= 0.3
    derived = load_volume(tmp_path / "out")
    assert np.allclose(derived.GetOrigin(), pair.fixed.GetOrigin(), atol=1e-3)
    # A user error is reported without a traceback (exit 2).
    assert main(["register", "--moving", str(tmp_path / "nope"), "--fixed", str(tmp_path / "fixed"),
                 "--out", str(tmp_path / "o")]) == 2
    assert main(["register", "--moving", str(tmp_path / "moving"), "--fixed", str(tmp_path / "fixed"),
                 "--out", str(tmp_path / "o"), "--set", "coregister.tranform=affine"]) == 2
    assert "unknown registration setting" in capsys.readouterr().err


def test_motion_correct_prints_per_volume_matrices_fd_and_flags(tmp_path, capsys):
    rng = np.random.default_rng(9)
    grid = axial_grid((40, 48, 48), (4.0, 4.0, 4.0))
    truths = [np.eye(4), random_rigid(rng, 3.0, 3.0), np.eye(4) @ random_rigid(rng, 0.05, 0.1)]
    vols = [sample_head(grid, "T2", m, seed=i) for i, m in enumerate(truths)]
    write_series(vols, tmp_path / "dce", study_header(seed=9), 5, "t1_dyn", temporal=True)
    out = _run(capsys, ["motion-correct", str(tmp_path / "dce"), "--out", str(tmp_path / "moco"), "--json"])
    assert len(out["matrices"]) == 3 and out["matrices"][0] == np.eye(4).tolist()
    assert len(out["framewise_displacement_mm"]) == 3
    assert out["flagged_volumes"] == [1, 2]  # volume 2 jumps back from volume 1's pose: FD is large too
    assert out["temporal_sd_in_head_after"] < out["temporal_sd_in_head_before"]
    assert len(load_volumes(tmp_path / "moco")) == 3
    sitk.WriteImage(sitk.JoinSeries(vols), str(tmp_path / "dce.nii.gz"))
    out = _run(capsys, ["motion-correct", str(tmp_path / "dce.nii.gz"), "--out", str(tmp_path / "moco.nii.gz"),
                        "--reference", "1", "--json"])
    assert out["reference_volume"] == 1 and out["format"] == "nifti"
    assert sitk.ReadImage(str(tmp_path / "moco.nii.gz")).GetDimension() == 4
