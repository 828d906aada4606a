"""The reusable defect functions: graded, deterministic, physically shaped."""
from __future__ import annotations

import numpy as np
import pytest

from synth import degrade as dg
from synth.geometry import centred_stack
from synth.phantom import Tissue, head_labels_at, mr_signal


@pytest.fixture(scope="module")
def t2():
    geom = centred_stack("axial", 64, 240.0, 8, 120.0, centre=(0.0, 0.0, 4.0))
    labels = head_labels_at(geom.points())
    return mr_signal(labels, 5000, 100), labels


def _snr_cnr(v: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    wm, gm = v[labels == Tissue.WM], v[labels == Tissue.GM]
    bg = v[labels == Tissue.BACKGROUND]
    return wm.mean() / bg.std(), abs(gm.mean() - wm.mean()) / np.sqrt(gm.var() + wm.var())


def _with_baseline(v, rng, ref):
    return dg.rician_noise(v, dg.BASELINE_NOISE_SIGMA * float(np.percentile(ref, 99)), rng)


@pytest.mark.parametrize("kind", ["noise", "ghosting", "blur"])
def test_snr_and_cnr_fall_with_severity(t2, kind):
    clean, labels = t2
    snr, cnr = [], []
    for sev in range(6):
        rng = np.random.default_rng(3)
        v = dg.degrade(clean, kind, sev, rng)
        v = v if kind == "noise" and sev else _with_baseline(v, rng, clean)
        s, c = _snr_cnr(v, labels)
        snr.append(s)
        cnr.append(c)
    assert all(a > b for a, b in zip(snr, snr[1:])), snr
    assert all(a > b for a, b in zip(cnr, cnr[1:])), cnr


def test_bias_field_lowers_cnr_and_keeps_the_mean_level(t2):
    clean, labels = t2
    cnr = []
    for sev in range(6):
        v = dg.add_bias_field(clean, sev, np.random.default_rng(5))
        cnr.append(_snr_cnr(_with_baseline(v, np.random.default_rng(6), clean), labels)[1])
        field = v[clean > 0] / clean[clean > 0]
        assert np.exp(-dg.BIAS_AMPLITUDE[sev]) - 1e-9 <= field.min() and field.max() <= np.exp(dg.BIAS_AMPLITUDE[sev]) + 1e-9
    assert all(a > b for a, b in zip(cnr, cnr[1:])), cnr


def test_ghosts_appear_along_the_phase_encode_direction(t2):
    clean, labels = t2
    sl = clean[4]
    rows_ghost = dg.add_ghosting(sl, 4, np.random.default_rng(1), phase_axis=-2) - sl
    cols_ghost = dg.add_ghosting(sl, 4, np.random.default_rng(1), phase_axis=-1) - sl
    head_cols = np.nonzero(labels[4].any(axis=0))[0]
    # phase encoding along rows (axis -2): ghost energy outside the head stays within the head's columns
    outside_cols = np.ones(sl.shape[1], bool)
    outside_cols[head_cols.min():head_cols.max() + 1] = False
    assert np.abs(rows_ghost[:, outside_cols]).max() < 1e-6 * sl.max() + 1e-12
    assert np.abs(cols_ghost[:, outside_cols]).max() > 1e-3 * sl.max()


def test_severity_zero_is_identity_and_functions_do_not_mutate(t2):
    clean, _ = t2
    before = clean.copy()
    for fn in (dg.add_noise, dg.add_ghosting, dg.add_blur, dg.add_bias_field):
        assert np.array_equal(fn(clean, 0, np.random.default_rng(0)), clean)
        out = fn(clean, 3, np.random.default_rng(0))
        assert out.shape == clean.shape and out.dtype == np.float64
        assert np.array_equal(out, fn(clean, 3, np.random.default_rng(0)))  # same rng, same result
    assert np.array_equal(clean, before)
    with pytest.raises(ValueError):
        dg.add_noise(clean, 6, np.random.default_rng(0))


def test_noise_is_rician(t2):
    """In the background (true signal 0) Rician magnitude has mean sigma * sqrt(pi/2)."""
    clean, labels = t2
    v = dg.add_noise(clean, 3, np.random.default_rng(9))
    sigma = dg.NOISE_SIGMA[3] * np.percentile(clean, 99)
    bg = v[labels == Tissue.BACKGROUND]
    assert abs(bg.mean() / (sigma * np.sqrt(np.pi / 2)) - 1) < 0.02
    assert bg.min() >= 0
