"""The opt-in acquisition distribution (synth.acquisitions): held-back settings never drawn for
training, geometry as asked, and field-strength physics from the textbook (T1 ~ B0^0.35, Rooney 2007;
SNR ~ B0 sqrt(averages))."""
from __future__ import annotations

import numpy as np

from synth import acquisitions as acq
from synth.phantom import MR_TISSUES


def test_training_and_heldout_settings_are_disjoint_and_seeded():
    train = acq.settings("train", 60, 1)
    held = acq.settings("heldout", 16, 1)
    assert {s.matrix for s in train}.isdisjoint({s.matrix for s in held})
    assert {s.slice_mm for s in train}.isdisjoint({s.slice_mm for s in held})
    assert {s.field_t for s in held} == {1.5, 3.0} and {s.three_d for s in train} == {False, True}
    assert acq.settings("train", 60, 1) == train and acq.settings("train", 60, 2) != train
    assert min(s.matrix for s in train) == 96 and max(s.matrix for s in train) == 512


def test_geometry_follows_the_setting():
    for st in (acq.Setting(96, 6.0, 1.5, False), acq.Setting(320, 1.5, 3.0, True)):
        vol, spacing, facts = acq.structural_volume("T2W", st, 3, "ge")
        assert vol.shape[1:] == (st.matrix, st.matrix) and vol.shape[0] == st.slices()
        assert np.isclose(spacing[1], 240.0 / st.matrix, atol=1e-3)
        gap = 0.0 if st.three_d else 0.1  # 2D stacks leave a 10 % gap between slices
        assert np.isclose(spacing[0] * (1 - gap), st.slice_mm, atol=0.01)
        assert vol.size <= max(acq.SLAB_VOXELS, acq.MIN_SLICES * st.matrix**2) and facts["field_t"] == st.field_t


def test_field_strength_physics():
    t3 = acq.tissues_at(3.0)
    for tissue, p in MR_TISSUES.items():
        assert np.isclose(t3[tissue].t1 / p.t1, 2.0**0.35) and t3[tissue].t2 == p.t2
    # background (air) noise: sigma x 2 / sqrt(2) at 1.5 T (half the signal, two averages)
    sd = {}
    for field in (1.5, 3.0):
        vol, _, _ = acq.structural_volume("T1W", acq.Setting(128, 5.0, field, False), 5, "philips")
        corner = vol[:, :12, :12].astype(float)  # air: Rayleigh, sd = sigma sqrt(2 - pi/2)
        sd[field] = corner.std() / np.sqrt(2 - np.pi / 2)
    assert 1.25 < sd[1.5] / sd[3.0] < 1.6, sd


def test_4d_settings_and_series_follow_the_setting_and_are_seeded():
    train = acq.settings("train", 40, 1, four_d=True)
    held = acq.settings("heldout", 8, 1, four_d=True)
    assert {s.matrix for s in train} <= set(acq.FOUR_D_TRAIN_MATRICES)
    assert {s.matrix for s in held} == set(acq.FOUR_D_HELDOUT_MATRICES)
    assert {s.matrix for s in train}.isdisjoint({s.matrix for s in held})
    assert {s.slice_mm for s in train}.isdisjoint({s.slice_mm for s in held})
    st = acq.Setting(64, 4.0, 1.5, False)
    frames, spacing, b_values, facts = acq.diffusion_series(st, 3, "ge")
    assert frames.shape[0] == len(b_values) == 4 and frames.shape[2:] == (64, 64) and b_values[0] == 0.0
    assert frames.shape[1] <= acq.MAX_4D_SLICES and np.isclose(spacing[1], 240.0 / 64) and facts["field_t"] == 1.5
    again, _, _, _ = acq.diffusion_series(st, 3, "ge")
    assert np.array_equal(frames, again)
    # diffusion weighting: brain signal at b=1000 about exp(-b ADC) of the b=0 one (ADC 0.7-0.85e-3)
    ratio = np.median(frames[1:][:, frames[0] > 400] / frames[0][frames[0] > 400])
    assert 0.35 < ratio < 0.55
    adc, _, _ = acq.adc_map_volume(st, 3, "ge")
    assert 700 < np.median(adc[adc > 100]) < 1000  # 10^-6 mm^2/s: brain about 0.8 x 10^-3
    dce, _, _ = acq.dce_series(st, 3, "ge")
    assert dce.shape[0] == acq.DCE_BASELINE_PHASES + len(acq.DCE_CURVE) - 1
    g = dce.reshape(dce.shape[0], -1).mean(axis=1)
    assert g[acq.DCE_BASELINE_PHASES + 1] > 1.05 * g[0]  # the bolus arrives after the baseline phases
