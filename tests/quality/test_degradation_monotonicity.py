"""Metrics move with the physics of each defect, at 5 increasing severities (plus clean), on every
structural kind of every vendor's protocol (15 phantom series, the site's own defect functions).

Expected directions -- and only where physics fixes one:
- noise: SNR, Dietrich SNR and CNR fall, EFC rises (energy spreads into the air);
- ghosting: SNR falls (ghosts overlap tissue), EFC rises (Atkinson's EFC was made for ghosts);
- blur: EFC rises (blurring spreads energy); SNR/CNR have no fixed direction (blur removes noise
  and contrast at once);
- bias field: SNR falls (tissue spread grows) and the fitted INU range rises.
CNR is asserted only where the clean image has GM/WM contrast to lose (>= 10 %): the phantom's SWI and
Philips T1 TFE have 3 % and 8 %.
Criterion: the mean over the 15 series of the per-series Spearman rho (severity vs metric, signed to
the expected direction) is >= 0.9; the pooled rho over all series is printed as well.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from curation.quality.anatomical import anatomical_metrics
from curation.synth.phantom import Tissue
from tests.quality.phantoms import KINDS, SPACING, VENDORS, clean_signal, degraded, labels

EXPECT = {
    "noise": {"snr": -1, "snr_dietrich": -1, "cnr": -1, "efc": 1},
    "ghosting": {"snr": -1, "efc": 1},
    "blur": {"efc": 1},
    "bias": {"snr": -1, "inu_range": 1},
}


def gm_wm_contrast(vendor: str, kind: str) -> float:
    s, lab = clean_signal(vendor, kind), labels()
    gm, wm = s[lab == Tissue.GM].mean(), s[lab == Tissue.WM].mean()
    return abs(gm - wm) / max(gm, wm)


@pytest.mark.slow
@pytest.mark.parametrize("degradation", list(EXPECT))
def test_metrics_follow_the_physics_of_each_defect(degradation):
    expected = EXPECT[degradation]
    per_series: dict[str, list[float]] = {m: [] for m in expected}
    pooled: dict[str, list[tuple[int, float]]] = {m: [] for m in expected}
    for vendor in VENDORS:
        for kind in KINDS:
            values = {m: [] for m in expected}
            for severity in range(6):
                ms = anatomical_metrics(degraded(vendor, kind, degradation, severity), SPACING, kind)
                for m in expected:
                    values[m].append(ms.get(m))
            for m, sign in expected.items():
                if m == "cnr" and gm_wm_contrast(vendor, kind) < 0.10:
                    continue
                v = np.asarray(values[m])
                assert np.isfinite(v).all(), (vendor, kind, m, v)
                per_series[m].append(sign * spearmanr(range(6), v).statistic)
                pooled[m] += [(s, x / v[0]) for s, x in enumerate(v)]
    print()
    for m, rhos in per_series.items():
        p = np.asarray(pooled[m])
        pooled_rho = expected[m] * spearmanr(p[:, 0], p[:, 1]).statistic
        print(f"{degradation:8s} {m:13s} series={len(rhos):2d} mean rho={np.mean(rhos):+.3f} "
              f"min={np.min(rhos):+.3f} pooled (ratio to clean) rho={pooled_rho:+.3f}")
        assert np.mean(rhos) >= 0.9, (degradation, m, rhos)
