"""Our metrics are MRIQC's: the same numbers as mriqc.qc.anatomical composed the way MRIQC's
StructuralQC interface composes them (summary_stats on the tissue maps, then the metric functions),
given the same data and masks -- on the histogram path for integer stored values (the phantoms) and
on the voxel path for any other volume."""
from __future__ import annotations

import math

import numpy as np
import pytest
from mriqc.qc import anatomical as mq

from curation.quality.anatomical import iqms, prepare
from curation.quality.stats import Levels, level_stats, middle, percentile, tissue_stats
from tests.quality.phantoms import SPACING, degraded


def mriqc_structural_qc(inp) -> dict[str, float]:
    """The python-coded part of mriqc.interfaces.anatomical.StructuralQC._run_interface, verbatim in
    substance, on our inputs (its nipype plumbing needs FSL/ANTs outputs we do not have)."""
    inudata = inp.data
    pvms = {"csf": inp.csf.astype(np.float64), "gm": inp.gm.astype(np.float64), "wm": inp.wm.astype(np.float64),
            "bg": inp.air.astype(np.uint8)}
    stats = mq.summary_stats(inudata, pvms)
    out = {}
    snrvals = []
    for t in ("csf", "wm", "gm"):
        snrvals.append(mq.snr(stats[t]["median"], stats[t]["stdv"], stats[t]["n"]))
        out[f"snr_{t}"] = snrvals[-1]
    out["snr_total"] = float(np.mean(snrvals))
    snrd = {t: mq.snr_dietrich(stats[t]["median"], mad_air=stats["bg"]["mad"], sigma_air=stats["bg"]["stdv"])
            for t in ("csf", "wm", "gm")}
    out.update({f"snrd_{t}": v for t, v in snrd.items()})
    out["snrd_total"] = float(np.mean(list(snrd.values())))
    out["cnr"] = mq.cnr(stats["wm"]["median"], stats["gm"]["median"], stats["bg"]["stdv"], stats["wm"]["stdv"],
                        stats["gm"]["stdv"])
    out["fber"] = mq.fber(inudata, inp.head.astype(np.uint8), inp.rotation.astype(np.uint8))
    out["efc"] = mq.efc(inudata, inp.rotation.astype(np.uint8))
    out["wm2max"] = mq.wm2max(inudata, stats["wm"]["median"])
    out["qi_1"] = mq.art_qi1(inp.air.astype(np.uint8), inp.artifact.astype(np.uint8))
    out["cjv"] = mq.cjv(stats["wm"]["median"], stats["gm"]["median"], stats["wm"]["mad"], stats["gm"]["mad"])
    icvs = mq.volume_fraction([pvms["csf"], pvms["gm"], pvms["wm"]])
    out.update({f"icvs_{k}": v for k, v in icvs.items()})
    return out, stats


def assert_equal_to_mriqc(inp) -> dict[str, float]:
    ours, our_stats = iqms(inp)
    ref, ref_stats = mriqc_structural_qc(inp)
    for name, value in ref.items():
        assert math.isclose(ours[name], value, rel_tol=1e-6), (name, ours[name], value)
    for tissue in ("csf", "gm", "wm", "bg"):
        for key in ("mean", "median", "p95", "p05", "stdv", "mad", "n"):
            assert math.isclose(our_stats[tissue][key], ref_stats[tissue][key], rel_tol=1e-6, abs_tol=1e-9), \
                (tissue, key, our_stats[tissue][key], ref_stats[tissue][key])
    return ref


@pytest.mark.parametrize("vendor,kind,degradation,severity", [
    ("siemens", "T1W", None, 0), ("ge", "T2W", "noise", 3), ("philips", "FLAIR", "ghosting", 4),
    ("siemens", "PDW", "bias", 5), ("ge", "T1W", "blur", 2),
])
def test_metrics_equal_mriqc_given_the_same_masks(vendor, kind, degradation, severity):
    vol = degraded(vendor, kind, degradation, severity)
    inp, masks, tissues = prepare(vol, SPACING, kind)
    assert inp is not None and inp.levels is not None  # integer stored values: the histogram path
    ref = assert_equal_to_mriqc(inp)
    print(f"{vendor} {kind} {degradation or 'clean'}{severity or ''}: {len(ref)} metrics equal to MRIQC; "
          f"masks fg {int(masks.head.sum())} air {int(masks.air.sum())} art {int(masks.artifact.sum())} "
          f"csf {int(tissues.csf.sum())} gm {int(tissues.gm.sum())} wm {int(tissues.wm.sum())}")


@pytest.mark.parametrize("variant", ["rotation padding", "non-integer values"])
def test_metrics_equal_mriqc_with_padding_and_on_the_voxel_path(variant):
    vol = degraded("siemens", "T1W", "noise", 2)
    if variant == "rotation padding":  # zeros joined to the border: excluded from EFC and FBER
        vol[:, :30, :30] = 0
        vol[:, -25:, -40:] = 0
    else:
        vol = vol * np.float32(0.3717) + np.float32(0.05)
    inp, masks, _ = prepare(vol, SPACING, "T1W")
    assert masks.rotation.any() == (variant == "rotation padding")
    assert (inp.levels is None) == (variant == "non-integer values")
    assert_equal_to_mriqc(inp)


def test_order_statistics_from_counts_equal_numpy():
    rng = np.random.default_rng(7)
    for n in (1, 2, 7, 1000, 1001):
        codes = rng.integers(0, 40, n).astype(np.uint16)
        lv = Levels(codes, np.arange(40, dtype=np.float32)).scaled(np.float32(1000 / 17.0))
        data = codes.astype(np.float32) * np.float32(1000 / 17.0)
        counts = lv.counts()
        assert np.median(middle(counts, lv.values)) == np.median(data)
        for q in (0.5, 5, 50, 99.5, 99.95, 100):
            assert percentile(counts, lv.values, q) == np.percentile(data, q), (n, q)
        mask = codes % 3 > 0
        if mask.any():
            ours, ref = level_stats(lv.counts(mask), lv.values), tissue_stats(data, mask, kurt=False)
            assert {k: v for k, v in ours.items() if k != "k"} == {k: v for k, v in ref.items() if k != "k"}


def test_tissue_stats_equal_summary_stats_including_kurtosis_and_exact_quantile_hits():
    rng = np.random.default_rng(3)
    data = np.abs(rng.normal(500, 120, (12, 30, 30))).astype(np.float32)
    data[:3] = np.abs(rng.normal(0, 3, (3, 30, 30)))
    for mask in (data > 450, data < 10, np.zeros(data.shape, bool) | (np.arange(30)[None, None, :] < 7)):
        ref = mq.summary_stats(data, {"t": mask.astype(np.float64)})["t"]
        ours = tissue_stats(data, mask)
        for key, value in ref.items():
            assert math.isclose(ours[key], value, rel_tol=1e-6, abs_tol=1e-9), (key, ours[key], value)
