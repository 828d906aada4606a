"""Tissue classes and the metrics read from them on a thin slab (issue 19): at a 320 matrix with
1.5 mm slices the synthetic acquisition is 15 slices (25 mm) through the ventricles, too thin for the
brain mask's through-plane erosion, so the mask keeps some skull and scalp and CSF is more than the
GM/WM fit's trim. The GM/WM mixture then merged GM and WM and took CSF (T1W) or bright CSF (T2W) as
the other class: T1W inu_range read 0.216 (clean < 0.08), FLAIR wm2max 0.124 (clean 0.71-0.79)."""
from __future__ import annotations

import numpy as np
import pytest

from curation.quality.anatomical import anatomical_metrics, prepare
from curation.quality.tissues import gm_wm_mixture
from synth.acquisitions import Setting, _labels, structural_volume
from synth.mr_protocols import PROTOCOLS
from synth.phantom import Tissue

THIN = Setting(320, 1.5, 1.5, False)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1))


@pytest.mark.parametrize("kind,vendor", [("T1W", "ge"), ("T2W", "philips"), ("FLAIR", "siemens")])
def test_thin_slab_classes_follow_the_anatomy(kind, vendor):
    vol, spacing, _ = structural_volume(kind, THIN, 2602, vendor)
    assert vol.shape[0] <= 16  # thinner than the through-plane erosion needs (2 x 8 + 2 slices)
    inp, _, tissues = prepare(vol, spacing, kind)
    labels = _labels(PROTOCOLS[vendor][kind].plane, THIN, 1.0)
    brain = tissues.brain
    for name, tissue in (("gm", Tissue.GM), ("wm", Tissue.WM)):
        d = _dice(getattr(tissues, name), brain & (labels == tissue))
        assert d >= 0.8, (kind, name, d, tissues.sizes())
    ms = anatomical_metrics(vol, spacing, kind).values
    assert ms["inu_range"] < 0.05, ms["inu_range"]  # no bias field was applied
    if kind == "FLAIR":
        assert ms["wm2max"] > 0.6, ms["wm2max"]


def test_gm_wm_mixture_sets_a_minority_peak_aside():
    """GM and WM (40 % / 50 %) plus a sharp CSF peak of 8 %, more than the trim: the two classes are
    GM and WM, not CSF and GM+WM."""
    rng = np.random.default_rng(0)
    v = np.concatenate([rng.normal(400, 5, 8000), rng.normal(840, 22, 40000), rng.normal(990, 22, 50000),
                        rng.normal(30, 10, 2000)])
    g = gm_wm_mixture(v, trim=0.035)
    assert abs(g.means[0] - 840) < 15 and abs(g.means[1] - 990) < 15, g
    assert min(g.weights) > 0.3
