"""Quality decisions that hold across resolutions (issue 19).

A synthetic site generated at a matrix and slice count the quality model never saw in its default
training sites (192x192, 32 slices; the default is 128x128, 24) must have its clean structural series
approved and its degraded ones (severity >= 2) kept out of approve -- issue 19 found every clean
T2W/PDW sent to review there ("fwhm_avg 2.993 is 3.8 robust SD above clean T2W").
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from curation.quality import assess_series
from curation.vocabulary import STRUCTURAL_MR_KINDS, QualityDecision

STRUCTURAL = {k.value for k in STRUCTURAL_MR_KINDS}


@pytest.fixture(scope="module")
def site_192():
    from synth import generate_site

    root = Path(tempfile.mkdtemp(prefix="curate-site-192-"))
    try:
        truth = generate_site(root, patients=1, seed=21, matrix=192, slices=32, phi_locations=False,
                              progress=lambda m: None)
        yield root, truth
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_unfamiliar_matrix_clean_series_are_approved(site_192):
    root, truth = site_192
    seen = []
    for s in truth["series"]:
        if s["kind"] not in STRUCTURAL:
            continue
        deg = s.get("degradation") or {}
        r = assess_series([root / f for f in s["files"]])
        d = r["decision"]
        seen.append((s["kind"], deg.get("type"), deg.get("severity"), d["decision"], d["reason"]))
        print(seen[-1])
        if not deg.get("type"):
            assert d["decision"] == QualityDecision.APPROVE, seen[-1]
        elif deg["severity"] >= 2:
            assert d["decision"] != QualityDecision.APPROVE, seen[-1]
    assert sum(1 for x in seen if not x[1]) >= 2, seen


@pytest.mark.slow
def test_heldout_acquisition_settings_meet_the_targets():
    """Settings never drawn for training (matrices 160/320, slices 1.5/4 mm; both fields): per kind,
    clean approved >= 95 % and degraded (severity >= 2) reviewed or excluded >= 95 %. Two of the
    eight held-back settings here, each kind clean with the three vendors' protocols (the full
    evaluation, all 8 settings and several seeds: `python -m training.quality evaluate --seed 2602 2603`)."""
    from training.quality import ACQ_HELDOUT_SEED, acquisition_rows, confusion, evaluate

    decisions = evaluate(acquisition_rows("heldout", ACQ_HELDOUT_SEED, 2, processes=1))
    for (kind, group), c in confusion(decisions).items():
        n = sum(c.values())
        print(kind, group, c)
        if group == "clean":
            assert c[QualityDecision.APPROVE] / n >= 0.95, (kind, c)
        elif group == "severity >= 2":
            assert (n - c[QualityDecision.APPROVE]) / n >= 0.95, (kind, c)
    blur = [d for d in decisions if d["type"] == "blur" and d["severity"] >= 3]
    assert any("fwhm_edge" in d["reason"] and "voxels, expected" in d["reason"] for d in blur), blur
