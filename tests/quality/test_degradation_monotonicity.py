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
Criteria, both required (Spearman rho of severity vs metric, signed to the expected direction):
- across the synthetic set: one rho over all series x 6 severities pooled, each value taken relative
  to the same series' clean one (its ratio; for the INU range, which is ~0 on a clean image, its
  difference), so that series of different baseline SNR can be ranked together: >= 0.9;
- per series: the mean over the series of each series' own rho >= 0.9 (the lowest is printed).
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from curation.quality.anatomical import anatomical_metrics
from synth.phantom import Tissue
from tests.quality.phantoms import KINDS, SPACING, VENDORS, clean_signal, degraded, labels

EXPECT = {
    "noise": {"snr": -1, "snr_dietrich": -1, "cnr": -1, "efc": 1},
    "ghosting": {"snr": -1, "efc": 1},
    "blur": {"efc": 1},
    "bias": {"snr": -1, "inu_range": 1},
}


def relative_to_clean(metric: str, value: float, clean: float) -> float:
    """A metric's value relative to the clean image of the same series, comparable across series."""
    return value - clean if metric == "inu_range" else value / clean


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
                pooled[m] += [(s, relative_to_clean(m, x, v[0])) for s, x in enumerate(v)]
    print()
    failures = []
    for m, rhos in per_series.items():
        p = np.asarray(pooled[m])
        pooled_rho = expected[m] * spearmanr(p[:, 0], p[:, 1]).statistic
        print(f"{degradation:8s} {m:13s} series={len(rhos):2d} pooled rho={pooled_rho:+.3f} "
              f"per-series mean rho={np.mean(rhos):+.3f} min={np.min(rhos):+.3f}")
        if pooled_rho < 0.9 or np.mean(rhos) < 0.9:
            failures.append((m, round(pooled_rho, 3), [round(r, 3) for r in rhos]))
    assert not failures, (degradation, failures)
