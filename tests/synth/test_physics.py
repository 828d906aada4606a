"""Geometry and contrast of the synthetic images, checked from the headers alone."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from synth.motion import apply_inverse, euler_matrix
from synth.phantom import Tissue, head_labels_at
from tests.synth.helpers import header_labels, header_points, patient_of, read_series


def _stacks(series: dict, datasets: list[pydicom.Dataset]) -> list[list[pydicom.Dataset]]:
    if series["dimensions"] != "4D":
        return [datasets]
    n = series["slices_per_volume"]
    return [datasets[i:i + n] for i in range(0, len(datasets), n)]


def test_positions_step_along_the_normal_by_the_spacing(site):
    out, truth = site
    checked = 0
    for s in truth["series"]:
        if s["modality"] not in ("MR", "CT") or s["kind"] in ("LOCALIZER", "CT_LOCALIZER"):
            continue
        dss = read_series(out, s)
        for stack in _stacks(s, dss):
            iop = np.array([float(v) for v in stack[0].ImageOrientationPatient])
            x, y = iop[:3], iop[3:]
            assert abs(np.dot(x, y)) < 1e-6 and np.allclose([np.linalg.norm(x), np.linalg.norm(y)], 1, atol=1e-6)
            normal = np.cross(x, y)
            spacing = float(stack[0].SpacingBetweenSlices)
            assert float(stack[0].SliceThickness) <= spacing + 1e-6
            ipp = np.array([[float(v) for v in d.ImagePositionPatient] for d in stack])
            steps = np.diff(ipp, axis=0)
            assert np.allclose(steps, spacing * normal, atol=2e-3), s["series_description"]
            assert all(list(d.ImageOrientationPatient) == list(stack[0].ImageOrientationPatient) for d in stack)
            checked += 1
    assert checked >= 20


def test_plane_in_truth_matches_orientation(site):
    out, truth = site
    axis_to_plane = {2: "axial", 0: "sagittal", 1: "coronal"}
    for s in truth["series"]:
        if s["modality"] != "MR" or s["plane"] is None:
            continue
        ds = pydicom.dcmread(out / s["files"][0], stop_before_pixels=True)
        iop = np.array([float(v) for v in ds.ImageOrientationPatient])
        normal = np.cross(iop[:3], iop[3:])
        assert axis_to_plane[int(np.argmax(np.abs(normal)))] == s["plane"]


def _tissue_means(out, truth, s, frames=None) -> dict[int, float]:
    """Mean stored value per tissue label, the labels computed from each slice's header."""
    scale = patient_of(truth, s["patient_id"])["head_scale"]
    dss = read_series(out, s)
    if frames is not None:
        dss = [dss[i] for i in frames]
    sums: dict[int, list[float]] = {}
    for ds in dss:
        labels = header_labels(ds, scale)
        px = ds.pixel_array.astype(np.float64)
        for t in (Tissue.CSF, Tissue.GM, Tissue.WM, Tissue.LESION, Tissue.BACKGROUND):
            m = labels == t
            if m.any():
                sums.setdefault(int(t), []).extend(px[m].tolist())
    return {t: float(np.mean(v)) for t, v in sums.items()}


@pytest.mark.parametrize("kind", ["T1W", "T2W", "FLAIR", "PDW"])
def test_contrast_follows_the_physics(site, kind):
    out, truth = site
    clean = [s for s in truth["series"] if s["kind"] == kind and not s["contrast"]
             and s["degradation"]["type"] in (None, "noise")]
    assert clean, f"no clean {kind} series"
    for s in clean:
        m = _tissue_means(out, truth, s)
        csf, gm, wm, bg = m[Tissue.CSF], m[Tissue.GM], m[Tissue.WM], m[Tissue.BACKGROUND]
        if s["degradation"]["type"] is None:
            assert bg < 0.1 * max(csf, gm, wm)
        if kind == "T1W":
            assert wm > gm > csf, (s["series_description"], m)
        elif kind == "T2W":
            assert csf > gm > wm, (s["series_description"], m)
        elif kind == "FLAIR":
            assert csf < 0.5 * wm and gm > wm, (s["series_description"], m)
            assert m[Tissue.LESION] > wm  # the lesion stays bright while fluid is suppressed
        elif kind == "PDW":
            assert abs(gm - wm) < 0.35 * max(gm, wm)  # little T1/T2 weighting


def test_diffusion_and_adc(site):
    out, truth = site
    for s in (s for s in truth["series"] if s["kind"] == "DWI"):
        n = s["slices_per_volume"]
        assert s["b_values"][0] == 0 and all(b == 1000 for b in s["b_values"][1:])
        dss = read_series(out, s)
        for v, b in enumerate(s["b_values"]):
            ds = dss[v * n]
            assert float(ds.DiffusionBValue) == b
            if b:
                assert list(ds.DiffusionGradientOrientation) == s["gradient_directions"][v]
        b0 = _tissue_means(out, truth, s, range(0, n))
        assert b0[Tissue.CSF] > b0[Tissue.WM]
        # A diffusion-weighted volume, read through its motion: CSF (ADC 3e-3) keeps ~5 % of its b=0
        # signal, white matter (0.72e-3) about half.
        scale = patient_of(truth, s["patient_id"])["head_scale"]
        m = s["motion"][1]
        vals: dict[int, list] = {}
        for ds in dss[n:2 * n]:
            lab = head_labels_at(apply_inverse(np.array(m["matrix"]), header_points(ds)) / scale)
            for t in (Tissue.CSF, Tissue.WM):
                vals.setdefault(int(t), []).extend(ds.pixel_array[lab == t].tolist())
        assert np.mean(vals[Tissue.CSF]) / b0[Tissue.CSF] < 0.15
        assert 0.35 < np.mean(vals[Tissue.WM]) / b0[Tissue.WM] < 0.65
    for s in (s for s in truth["series"] if s["kind"] == "ADC"):
        m = _tissue_means(out, truth, s)
        assert m[Tissue.CSF] > 2500 and 600 < m[Tissue.WM] < 850 and m[Tissue.GM] > m[Tissue.WM]


def test_dce_enhancement_curve(site):
    out, truth = site
    for s in (s for s in truth["series"] if s["kind"] == "DCE"):
        n = s["slices_per_volume"]
        dss = read_series(out, s)
        scale = patient_of(truth, s["patient_id"])["head_scale"]
        means = []
        for phase, motion in enumerate(s["motion"]):
            vals = []
            for ds in dss[phase * n:(phase + 1) * n]:
                pts = apply_inverse(np.array(motion["matrix"]), header_points(ds))
                lab = head_labels_at(pts / scale)
                vals.extend(ds.pixel_array[lab == Tissue.SCALP].tolist())  # enhances in every slice
            means.append(np.mean(vals))
        assert means[0] < means[1] < means[2], means  # wash-in
        assert means[2] == max(means)  # the peak phase of the curve
        assert "ContrastBolusAgent" in dss[0]


def test_motion_matrix_is_simpleitk_euler3d(site):
    _, truth = site
    for s in (s for s in truth["series"] if s["kind"] in ("DWI", "DCE")):
        assert s["motion"][0]["matrix"] == np.eye(4).tolist()
        for m in s["motion"][1:]:
            t = sitk.Euler3DTransform((0, 0, 0), *np.deg2rad(m["rotation_deg"]), m["translation_mm"])
            mat = np.array(m["matrix"])
            assert np.allclose(mat[:3, :3], np.array(t.GetMatrix()).reshape(3, 3), atol=1e-9)
            assert np.allclose(mat[:3, 3], t.GetTranslation())
            assert np.allclose(mat, euler_matrix(m["rotation_deg"], m["translation_mm"]))
        assert any(any(m["rotation_deg"]) for m in s["motion"][1:])


def test_moved_volumes_show_the_anatomy_where_the_matrix_says(site):
    """Volume i at y shows the reference anatomy at T^-1(y): labels at T^-1(y) explain the pixels far
    better than the unmoved labels do (b=0 reference vs a DCE phase, same contrast model)."""
    out, truth = site
    s = next(s for s in truth["series"] if s["kind"] == "DCE")
    n = s["slices_per_volume"]
    scale = patient_of(truth, s["patient_id"])["head_scale"]
    motion = max(s["motion"], key=lambda m: np.abs(m["translation_mm"]).sum())
    dss = read_series(out, s)[motion["volume"] * n:(motion["volume"] + 1) * n]
    px = np.concatenate([d.pixel_array.ravel() for d in dss]).astype(float)
    pts = np.concatenate([header_points(d).reshape(-1, 3) for d in dss])
    moved = head_labels_at(apply_inverse(np.array(motion["matrix"]), pts) / scale)
    still = head_labels_at(pts / scale)

    def explained(labels):  # fraction of variance explained by per-label means
        means = np.array([px[labels == t].mean() if (labels == t).any() else 0 for t in range(7)])
        return 1 - np.var(px - means[labels]) / np.var(px)

    assert explained(moved) > 0.97
    assert explained(moved) > explained(still) + 0.02


def test_ct_hounsfield_units(site):
    out, truth = site
    for s in (s for s in truth["series"] if s["kind"] == "CT" and s["body_part"] == "HEAD"):
        scale = patient_of(truth, s["patient_id"])["head_scale"]
        ds = pydicom.dcmread(out / s["files"][len(s["files"]) // 2])
        hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        labels = header_labels(ds, scale)
        assert abs(hu[labels == Tissue.BACKGROUND].mean() + 1000) < 5
        assert abs(hu[labels == Tissue.WM].mean() - 28) < 5
        assert hu[labels == Tissue.SKULL].mean() > 1000
        assert (ds.PixelRepresentation == 1) == (s["pixel_representation"] == 1)
    assert {s.get("pixel_representation") for s in truth["series"] if s["kind"] == "CT"} == {0, 1}


def test_head_lesion_boxes_are_the_lesion_bounding_boxes(site):
    out, truth = site
    n = 0
    for s in truth["series"]:
        if s["modality"] not in ("MR", "CT") or s["body_part"] == "CHEST":
            continue
        scale = patient_of(truth, s["patient_id"])["head_scale"]
        for les in s["lesions"]:
            ds = pydicom.dcmread(out / les["file"], stop_before_pixels=True)
            rr, cc = np.nonzero(header_labels(ds, scale) == Tissue.LESION)
            assert les["box"] == [cc.min(), rr.min(), np.ptp(cc) + 1, np.ptp(rr) + 1]
            n += 1
    assert n > 0
