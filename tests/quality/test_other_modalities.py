"""CT noise, radiography proxies, temporal metrics, NaN-with-reason, on small known inputs."""
from __future__ import annotations

import math

import numpy as np
import pytest

from curation.quality.ct import global_noise_level
from curation.quality.metrics import CORE_METRICS, compute_metrics
from curation.quality.radiography import immerkaer_sigma, projection_metrics
from curation.quality.temporal import temporal_metrics
from synth.phantom import ct_hu, head_labels


@pytest.mark.parametrize("sigma", [4.0, 10.0, 20.0])
def test_ct_global_noise_level_recovers_the_added_noise(sigma):
    lab = head_labels((8, 128, 128), (5.0, 1.8, 1.8))
    hu = ct_hu(lab) + np.random.default_rng(1).normal(0, sigma, lab.shape)
    ms = global_noise_level(hu, (5.0, 1.8, 1.8))
    print(f"added {sigma} HU -> GNL {ms.get('ct_gnl'):.2f} HU over {ms.masks['noise_map']} pixels")
    assert abs(ms.get("ct_gnl") - sigma) < 0.15 * sigma
    assert abs(ms.get("ct_air_hu") + 1000) < 5


def test_ct_without_soft_tissue_is_nan_with_reason():
    ms = global_noise_level(np.full((2, 64, 64), -1000.0), (1.0, 1.0, 1.0))
    assert math.isnan(ms.get("ct_gnl")) and "soft tissue" in ms.reasons["ct_gnl"]


def test_immerkaer_noise_estimate():
    img = np.random.default_rng(2).normal(100, 7.0, (256, 256))
    assert abs(immerkaer_sigma(img) - 7.0) < 0.3


def test_radiography_saturation_and_snr_proxies_move_the_right_way():
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:256, :256]
    body = ((yy - 128) ** 2 / 110**2 + (xx - 128) ** 2 / 90**2) < 1
    base = np.where(body, 2500.0, 200.0)
    clean = projection_metrics(np.clip(base + rng.normal(0, 20, base.shape), 0, 4095), bits_stored=12)
    noisy = projection_metrics(np.clip(base + rng.normal(0, 200, base.shape), 0, 4095), bits_stored=12)
    burnt = projection_metrics(np.clip(base * 2.0 + rng.normal(0, 20, base.shape), 0, 4095), bits_stored=12)
    assert noisy.get("snr_proxy") < clean.get("snr_proxy") / 5
    assert burnt.get("saturation_high") > 0.3 > clean.get("saturation_high")
    assert math.isnan(clean.get("exposure_index")) and "not recorded" in clean.reasons["exposure_index"]
    di = projection_metrics(base, bits_stored=12, exposure_index=400, target_exposure_index=200)
    assert abs(di.get("deviation_index") - 10 * math.log10(2)) < 1e-9


def test_black_outside_an_ultrasound_sector_is_not_saturation_but_clipping_inside_it_is():
    """A US frame is black outside its fan; only clipped-black pixels inside the fan count."""
    rng = np.random.default_rng(6)
    yy, xx = np.mgrid[:360, :480]
    angle, radius = np.arctan2(xx - 240, yy + 20), np.hypot(xx - 240, yy + 20)
    fan = (np.abs(angle) < 0.6) & (radius > 40) & (radius < 340)
    speckle = rng.rayleigh(60.0, fan.shape)
    clean = np.where(fan, np.clip(speckle + 20, 1, 255), 0).astype(np.uint8)
    clipped = clean.copy()
    # a band across the middle of the fan clipped black (clipping that reaches the fan's edge cannot
    # be told from a smaller fan, so the band stays inside it)
    clipped[fan & (np.abs(angle) < 0.45) & (radius > 110) & (radius < 270)] = 0
    ok, bad = projection_metrics(clean, bits_stored=8), projection_metrics(clipped, bits_stored=8)
    assert (clean == 0).mean() > 0.5  # most of the frame is outside the fan
    assert ok.get("saturation_low") < 0.01, ok.get("saturation_low")
    assert bad.get("saturation_low") > 0.3, bad.get("saturation_low")
    assert ok.masks["field"] == pytest.approx(fan.sum(), rel=0.02)


def test_temporal_snr_falls_with_temporal_noise():
    lab = head_labels((6, 48, 48), (6.0, 5.0, 5.0))
    base = np.where(lab > 0, 1000.0, 5.0)
    rng = np.random.default_rng(4)
    quiet = temporal_metrics(base + rng.normal(0, 5, (10,) + base.shape), (6.0, 5.0, 5.0), "OTHER_MR")
    loud = temporal_metrics(base + rng.normal(0, 50, (10,) + base.shape), (6.0, 5.0, 5.0), "OTHER_MR")
    assert quiet.get("tsnr") > 5 * loud.get("tsnr") and loud.get("dvars") > quiet.get("dvars")
    dwi = temporal_metrics(np.stack([base] * 4), (6.0, 5.0, 5.0), "DWI", b_values=[0, 1000, 1000, 0])
    assert math.isnan(dwi.get("tsnr")) and "b-value" in dwi.reasons["tsnr"]


def test_every_kind_reports_every_core_metric_and_nan_has_a_reason_never_minus_one():
    lab = head_labels((12, 96, 96), (6.0, 2.5, 2.5))
    mr = np.where(lab > 0, 800.0, 0.0) + np.abs(np.random.default_rng(5).normal(0, 10, lab.shape))
    cases = {"T2W": mr, "DWI": mr, "CT": ct_hu(lab), "LOCALIZER": mr, "DX": mr[6] * 4}
    for kind, vol in cases.items():
        ms = compute_metrics(vol if kind != "DX" else None, (6.0, 2.5, 2.5), kind,
                             image2d=vol if kind == "DX" else None, bits_stored=12)
        for m in CORE_METRICS:
            assert m in ms.values, (kind, m)
        for name, value in ms.values.items():
            assert value != -1.0, (kind, name)
            if math.isnan(value):
                assert ms.reasons.get(name), (kind, name)


def test_masked_image_without_air_signal_gives_nan_fber_with_reason():
    lab = head_labels((12, 96, 96), (6.0, 2.5, 2.5))
    from synth.mr import signal_of
    from synth.mr_protocols import PROTOCOLS

    vol = signal_of(PROTOCOLS["siemens"]["T2W"], lab) * 2000  # no noise at all: a skull-stripped-like input
    ms = compute_metrics(vol, (6.0, 2.5, 2.5), "T2W")
    assert math.isnan(ms.get("fber")) and "outside the head" in ms.reasons["fber"]
