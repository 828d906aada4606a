"""curation.volume: DICOM series and NIfTI files read into the same patient space, 4D series split
into volumes, derived series written with the right geometry and references."""
from __future__ import annotations


import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from synth.registration_pairs import axial_grid, sample_head
from curation.volume import load_volume, load_volumes, read_dicom_series, write_dicom_series
from tests.registration.dicom_helpers import oblique_direction, study_header, write_series


def _oblique_head(shape=(20, 40, 36), spacing=(4.0, 5.0, 5.5), seed=0) -> sitk.Image:
    grid = axial_grid(shape, spacing, direction=oblique_direction())
    img = sample_head(grid, "T1", None, noise=0.01, supersample=1, seed=seed)
    return sitk.Cast(sitk.Round(img), sitk.sitkFloat32)


def _same_geometry(a: sitk.Image, b: sitk.Image, tol: float = 1e-4) -> bool:
    return (a.GetSize() == b.GetSize()
            and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=tol)
            and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=tol)
            and np.allclose(a.GetDirection(), b.GetDirection(), atol=tol))


def test_oblique_anisotropic_series_loads_with_its_geometry_whatever_the_file_order(tmp_path):
    vol = _oblique_head()
    write_series(vol, tmp_path / "s", study_header(), slope=2.0, intercept=-10.0)
    loaded = load_volume(tmp_path / "s")
    assert _same_geometry(loaded, vol)
    # Rescale applied: stored = (value + 10) / 2, read back as value (to the rounding of the storage).
    assert np.abs(sitk.GetArrayFromImage(loaded) - sitk.GetArrayFromImage(vol)).max() <= 1.0 + 1e-4


def test_4d_series_splits_by_b_value_and_by_temporal_position(tmp_path):
    vols = [_oblique_head(seed=s) for s in range(4)]
    write_series(vols, tmp_path / "dwi", study_header(), b_values=[0, 1000, 1000, 1000])
    dwi = read_dicom_series(tmp_path / "dwi")
    assert dwi.split_by in ("b_value+gradient", "acquisition_number")
    assert [lab.get("b_value") for lab in dwi.labels] == [0.0, 1000.0, 1000.0, 1000.0]
    for got, want in zip(dwi.volumes, vols):
        assert _same_geometry(got, want)
        assert np.array_equal(sitk.GetArrayFromImage(got), sitk.GetArrayFromImage(want))
    write_series(vols[:3], tmp_path / "dce", study_header(), temporal=True)
    dce = read_dicom_series(tmp_path / "dce")
    assert dce.split_by == "temporal_position" and len(dce.volumes) == 3
    assert len(load_volumes(tmp_path / "dce")) == 3
    assert np.array_equal(sitk.GetArrayFromImage(load_volume(tmp_path / "dce", 2)), sitk.GetArrayFromImage(vols[2]))


def test_nifti_and_dicom_of_the_same_scan_overlay_in_patient_space(tmp_path):
    vol = _oblique_head()
    write_series(vol, tmp_path / "s", study_header())
    # NIfTI written by nibabel in its own (RAS) convention, as another tool would.
    lps = np.eye(4)
    d = np.asarray(vol.GetDirection()).reshape(3, 3)
    lps[:3, :3] = d @ np.diag(vol.GetSpacing())
    lps[:3, 3] = vol.GetOrigin()
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    data = sitk.GetArrayFromImage(vol).transpose(2, 1, 0)  # (i, j, k)
    nib.save(nib.Nifti1Image(data.astype(np.float32), ras), str(tmp_path / "s.nii.gz"))
    from_dicom = load_volume(tmp_path / "s")
    from_nifti = load_volume(tmp_path / "s.nii.gz")
    for idx in [(0, 0, 0), (35, 0, 0), (3, 39, 19), (17, 21, 9)]:
        assert np.allclose(from_dicom.TransformIndexToPhysicalPoint(idx),
                           from_nifti.TransformIndexToPhysicalPoint(idx), atol=1e-3)
        assert from_dicom[idx] == pytest.approx(from_nifti[idx])


def test_derived_series_has_new_uids_references_and_the_resampled_geometry(tmp_path):
    vol = _oblique_head()
    src_uid = write_series(vol, tmp_path / "src", study_header(seed=3))
    source = read_dicom_series(tmp_path / "src")
    # A new grid: axial, other spacing and size, as after resampling onto a fixed series.
    target = axial_grid((30, 44, 40), (4.5, 4.2, 4.4))
    resampled = sitk.Resample(vol, target, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    written = write_dicom_series(resampled, tmp_path / "out", source.datasets[0], "test: resampled",
                                 series_description="REG", uid_seed="x")
    assert len(written.files) == 30
    headers = [pydicom.dcmread(f) for f in written.files]
    h = headers[0]
    assert h.SeriesInstanceUID == written.series_instance_uid != src_uid
    assert h.StudyInstanceUID == source.datasets[0][0].StudyInstanceUID
    assert len({x.SOPInstanceUID for x in headers}) == 30
    assert not set(x.SOPInstanceUID for x in headers) & {d.SOPInstanceUID for d in source.datasets[0]}
    assert list(h.ImageType[:2]) == ["DERIVED", "SECONDARY"]
    assert [item.SeriesInstanceUID for item in h.ReferencedSeriesSequence] == [src_uid]
    assert h.DerivationDescription == "test: resampled"
    assert h.DerivationCodeSequence[0].CodeValue == "113085"
    assert "PixelData" in h and h.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    back = load_volume(tmp_path / "out")
    assert _same_geometry(back, resampled)
    err = np.abs(sitk.GetArrayFromImage(back) - sitk.GetArrayFromImage(resampled)).max()
    assert err <= 0.5 + 1e-3  # integer storage of values in the thousands
    again = write_dicom_series(resampled, tmp_path / "out2", source.datasets[0], "test: resampled", uid_seed="x")
    assert again.series_instance_uid == written.series_instance_uid  # same seed, same UIDs (idempotent reruns)


def test_small_valued_images_keep_their_precision(tmp_path):
    vol = _oblique_head()
    write_series(vol, tmp_path / "src", study_header())
    source = read_dicom_series(tmp_path / "src")
    tiny = sitk.Cast(vol, sitk.sitkFloat32) * 1e-4  # e.g. an ADC map in mm^2/s
    write_dicom_series(tiny, tmp_path / "out", source.datasets[0], "test")
    back = sitk.GetArrayFromImage(load_volume(tmp_path / "out"))
    ref = sitk.GetArrayFromImage(tiny)
    assert np.abs(back - ref).max() <= 1e-4 * ref.max()


def test_a_folder_of_two_series_or_of_non_images_is_refused(tmp_path):
    vol = _oblique_head()
    write_series(vol, tmp_path / "mix" / "a", study_header(), description="a")
    write_series(vol, tmp_path / "mix" / "b", study_header(), description="b", series_number=4)
    with pytest.raises(ValueError, match="2 series"):
        load_volume(tmp_path / "mix")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "README.txt").write_text("not DICOM")
    with pytest.raises(ValueError, match="no DICOM image"):
        load_volume(tmp_path / "empty")
