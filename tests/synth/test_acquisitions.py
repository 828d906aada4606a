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
