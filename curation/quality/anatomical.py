"""MRIQC's anatomical image-quality metrics on our masks, computed by `mriqc.qc.anatomical`'s own
functions (snr, snr_dietrich, cnr, cjv, efc, fber, wm2max, art_qi1, volume_fraction) the way MRIQC's
StructuralQC interface composes them, plus the artifact measures of `artifacts.py`.

What differs from MRIQC, and why: MRIQC gets its head, air ("hat") and tissue masks from templates
and FSL FAST, which are not shipped here. We make them from the image (`masks.py`, `tissues.py`);
the tissue maps are hard (0/1) labels of a Gaussian mixture. Like MRIQC we harmonise intensities so
the WM median is 1000 before the summary statistics (which round to integers).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from curation.quality import artifacts
from curation.quality.masks import Masks, background_masks, head_mask
from curation.quality.parallel import both
from curation.quality.results import MetricSet
from curation.quality.stats import Levels, level_stats, middle, percentile, tissue_stats
from curation.quality.tissues import TissueClasses, tissue_classes


@dataclass
class AnatomicalInputs:
    """Everything the MRIQC functions are called on: harmonised data and the masks."""

    data: np.ndarray  # harmonised (WM median 1000), non-negative, float32
    head: np.ndarray
    air: np.ndarray
    artifact: np.ndarray
    rotation: np.ndarray
    csf: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    scale: float  # harmonisation factor applied to the input
    levels: Levels | None = None  # `data` as integer codes x per-code values, when the input held integers


def prepare(volume: np.ndarray, spacing: tuple[float, float, float], kind: str | None = None,
            masks: Masks | None = None, tissues: TissueClasses | None = None, *, brain_depth_mm: float = 12.0,
            tissue_order: dict | None = None) -> tuple[AnatomicalInputs | None, Masks, TissueClasses | None]:
    """Masks, tissue classes and harmonised data (inputs None when no tissue classes can be made)."""
    v = np.asarray(volume, dtype=np.float32)
    if not np.isfinite(v).all():
        v = np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0)
    if (v < 0).any():
        v = np.maximum(v, 0.0)  # a copy: the caller's array is never modified
    levels = Levels.of(v)

    def classes(head: np.ndarray) -> TissueClasses | None:
        return tissue_classes(v, head, spacing, kind, brain_depth_mm, tissue_order) \
            if tissues is None and head.any() else tissues

    if masks is None:  # the masks around the head and the tissue classes inside it, side by side
        head, t = head_mask(v, spacing, levels=levels)
        masks, tissues = both(lambda: background_masks(v, spacing, head, t), lambda: classes(head))
    else:
        tissues = classes(masks.head)
    if tissues is None or not tissues.wm.any():
        return None, masks, tissues
    wm_median = float(np.median(v[tissues.wm] if levels is None else middle(levels.counts(tissues.wm), levels.values)))
    if wm_median <= 0:
        return None, masks, tissues
    scale = 1000.0 / wm_median
    data = v * np.float32(scale)
    return (AnatomicalInputs(data, masks.head, masks.air, masks.artifact, masks.rotation, tissues.csf, tissues.gm,
                             tissues.wm, scale, levels.scaled(scale) if levels is not None else None), masks, tissues)


def mriqc_functions():
    """`mriqc.qc.anatomical`, imported late (it loads mriqc's config, about a second). Its
    snr_dietrich warns through a nipype logger that only mriqc's CLI sets up; a plain logger stands
    in, so a warning is logged instead of an AttributeError."""
    import logging

    from mriqc import config
    from mriqc.qc import anatomical

    if config.loggers.interface is None:
        config.loggers.interface = logging.getLogger("nipype.interface")
    return anatomical


def _efc(inp: AnatomicalInputs) -> float:
    """mq.efc(data, rotation) computed the same way -- the same float32 operations per voxel, summed
    in the same order -- with each voxel's term looked up by its code instead of recomputed (a
    logarithm per distinct value, not per voxel)."""
    keep = ~inp.rotation if inp.rotation.any() else None
    img = inp.data.reshape(-1) if keep is None else inp.data[keep]  # img[framemask == 0]
    codes = inp.levels.codes.reshape(-1) if keep is None else inp.levels.codes[keep]
    n_vox = np.int64(img.size)
    efc_max = 1.0 * n_vox * (1.0 / np.sqrt(n_vox)) * np.log(1.0 / np.sqrt(n_vox))
    b_max = np.sqrt((img**2).sum())
    lv = inp.levels.values
    terms = ((lv / b_max) * np.log((lv + 1e-16) / b_max))[codes]
    return round(float((1.0 / efc_max) * np.sum(terms)), 4)


def _level_iqms(inp: AnatomicalInputs, mq) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """(summary stats, fber/efc/wm2max) from histograms of the codes: the same numbers as
    tissue_stats and MRIQC's fber/efc/wm2max on the data, in a fraction of the time. fber is MRIQC's
    own function, given what its two medians read: the middle voxel values of the head and of the
    background (|x|^2 keeps their order, the data being non-negative)."""
    lv = inp.levels
    everything = lv.counts()
    head = lv.counts(inp.head)
    outside = everything - (head if not inp.rotation.any() else lv.counts(inp.head | inp.rotation))
    # The air is the outside less the artifacts (masks.background_masks): a subtraction instead of a
    # histogram of millions of voxels, unless masks given by a caller say otherwise.
    air = outside - lv.counts(inp.artifact)
    if air.min() < 0 or int(air.sum()) != np.count_nonzero(inp.air):
        air = lv.counts(inp.air)
    counts = {"csf": lv.counts(inp.csf), "gm": lv.counts(inp.gm), "wm": lv.counts(inp.wm), "bg": air}
    stats = {name: level_stats(c, lv.values) for name, c in counts.items()}
    fg_mid, bg_mid = middle(head, lv.values), middle(outside, lv.values)
    out = {"fber": mq.fber(np.concatenate([fg_mid, bg_mid]),
                           np.r_[np.ones(fg_mid.size, np.uint8), np.zeros(bg_mid.size, np.uint8)]),
           "efc": _efc(inp)}
    if stats["wm"]["n"]:
        out["wm2max"] = float(stats["wm"]["median"] / percentile(everything, lv.values, 99.95))  # mq.wm2max
    return stats, out


def iqms(inp: AnatomicalInputs) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """(metrics by MRIQC name, summary stats) from prepared inputs -- the StructuralQC composition."""
    mq = mriqc_functions()
    data = inp.data
    if inp.levels is not None:
        stats, fast = _level_iqms(inp, mq)
    else:
        stats = {name: tissue_stats(data, m, kurt=False) for name, m in
                 (("csf", inp.csf), ("gm", inp.gm), ("wm", inp.wm), ("bg", inp.air))}
        rot = inp.rotation.astype(np.uint8)
        fast = {"fber": mq.fber(data, inp.head.astype(np.uint8), rot), "efc": mq.efc(data, rot)}
        if stats["wm"]["n"]:
            fast["wm2max"] = mq.wm2max(data, stats["wm"]["median"])
    out: dict[str, float] = {}
    snrs = []
    for t in ("csf", "wm", "gm"):
        s = stats[t]
        val = mq.snr(s["median"], s["stdv"], s["n"]) if s["n"] > 1 and s["stdv"] > 0 else math.nan
        out[f"snr_{t}"] = val
        snrs.append(val)
    out["snr_total"] = float(np.mean(snrs))
    snrd = []
    for t in ("csf", "wm", "gm"):
        val = mq.snr_dietrich(stats[t]["median"], mad_air=stats["bg"]["mad"], sigma_air=stats["bg"]["stdv"]) \
            if stats["bg"]["n"] > 0 else math.nan
        out[f"snrd_{t}"] = val
        snrd.append(val)
    out["snrd_total"] = float(np.mean(snrd))
    out["cnr"] = math.nan if not _spread(stats, "wm", "gm", "bg") else mq.cnr(stats["wm"]["median"], stats["gm"]["median"], stats["bg"]["stdv"], stats["wm"]["stdv"],
                        stats["gm"]["stdv"])
    out["fber"], out["efc"], out["wm2max"] = fast["fber"], fast["efc"], fast.get("wm2max", math.nan)
    # art_qi1 and volume_fraction read only the masks' voxel counts (sums of 0/1 values): given as such
    n_air, n_art = np.count_nonzero(inp.air), np.count_nonzero(inp.artifact)
    out["qi_1"] = mq.art_qi1(np.array([n_air]), np.array([n_art]))
    out["cjv"] = (mq.cjv(stats["wm"]["median"], stats["gm"]["median"], stats["wm"]["mad"], stats["gm"]["mad"])
                  if stats["wm"]["n"] and stats["gm"]["n"] and stats["wm"]["median"] != stats["gm"]["median"]
                  else math.nan)
    icvs = mq.volume_fraction([np.array([np.count_nonzero(m)], np.float32) for m in (inp.csf, inp.gm, inp.wm)])
    for t, v in icvs.items():
        out[f"icvs_{t}"] = v
    return out, stats


def _spread(stats: dict, *tissues: str) -> bool:
    """Whether the tissues are non-empty and the contrast-to-noise denominator is not zero."""
    if any(stats[t]["n"] == 0 for t in tissues):
        return False
    return sum(stats[t]["stdv"] ** 2 for t in tissues) > 0


#: MRIQC's sentinels, turned into NaN with a reason.
_SENTINELS = {
    "fber": "no signal outside the head mask (skull-stripped or masked image)",
    "qi_1": "empty air mask",
    "snrd_total": "background noise too small to estimate (sigma_air < 1e-3)",
    "snrd_csf": "background noise too small to estimate (sigma_air < 1e-3)",
    "snrd_wm": "background noise too small to estimate (sigma_air < 1e-3)",
    "snrd_gm": "background noise too small to estimate (sigma_air < 1e-3)",
}


def anatomical_metrics(volume: np.ndarray, spacing: tuple[float, float, float], kind: str | None = None, *,
                       masks: Masks | None = None, brain_depth_mm: float = 12.0,
                       tissue_order: dict | None = None) -> MetricSet:
    """All anatomical metrics of a brain MR volume, lower-case names (snr, snr_dietrich, cnr, cjv, efc,
    fber, wm2max, qi1, ...), with mask sizes; NaN with a reason where a metric cannot be computed."""
    ms = MetricSet()
    inp, masks, tissues = prepare(volume, spacing, kind, masks, brain_depth_mm=brain_depth_mm,
                                  tissue_order=tissue_order)
    ms.masks.update(masks.sizes())
    if tissues is not None:
        ms.masks.update({k: v for k, v in tissues.sizes().items()})
    names = ("snr", "snr_dietrich", "cnr", "cjv", "efc", "fber", "wm2max", "qi1", "snr_csf", "snr_gm", "snr_wm",
             "icvs_csf", "icvs_gm", "icvs_wm", "fwhm_avg", "fwhm_edge", "inu_range", "inu_med", "gsr", "var")
    if inp is None:
        why = ("no head/foreground found" if not masks.head.any()
               else "brain too small for tissue classes (is this a brain MR volume?)")
        for n in names:
            ms.nan(n, why)
        return ms
    brain = tissues.brain
    ((m, stats), fw, var), (bias, g) = both(
        lambda: (iqms(inp), artifacts.fwhm(inp.data, brain), artifacts.laplacian_variance(inp.data, brain)),
        lambda: (artifacts.inu(inp.data, [inp.gm, inp.wm]), artifacts.ghost_ratio(inp.data, inp.head, inp.air)))
    edge = artifacts.edge_fwhm(inp.data, inp.head)
    ms.notes["summary"] = stats
    ms.notes["harmonisation_scale"] = inp.scale
    ms.notes["tissue_order"] = list(tissues.order)
    mapping = {"snr": "snr_total", "snr_dietrich": "snrd_total", "cnr": "cnr", "cjv": "cjv", "efc": "efc",
               "fber": "fber", "wm2max": "wm2max", "qi1": "qi_1", "snr_csf": "snr_csf", "snr_gm": "snr_gm",
               "snr_wm": "snr_wm", "icvs_csf": "icvs_csf", "icvs_gm": "icvs_gm", "icvs_wm": "icvs_wm"}
    for ours, theirs in mapping.items():
        val = m[theirs]
        if val == -1.0 and theirs in _SENTINELS:
            ms.nan(ours, _SENTINELS[theirs])
        else:
            ms.set(ours, val, "tissue class empty or without spread")
    ms.set("fwhm_avg", fw["fwhm_avg"], "no autocorrelation estimate in the brain mask")
    ms.set("fwhm_edge", edge["fwhm_edge"], "fewer than 20 monotone edges at or inside the head")
    for k in ("fwhm_x", "fwhm_y", "fwhm_z"):
        ms.set(k, fw[k], "axis too short or no autocorrelation estimate")
    for k, v in bias.items():
        ms.set(k, v, "too few WM voxels for a bias-field fit")
    ms.set("gsr_x", g["gsr_x"], "no background beside the head along x")
    ms.set("gsr_y", g["gsr_y"], "no background beside the head along y")
    finite = [x for x in (g["gsr_x"], g["gsr_y"]) if math.isfinite(x)]
    ms.set("gsr", max(finite) if finite else math.nan, "no background beside the head")
    ms.set("var", var, "brain mask empty")
    return ms
