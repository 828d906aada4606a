"""CT image noise: the patient-image global noise level (GNL) of Christianson et al. 2015
("Automated technique to measure noise in clinical CT examinations", AJR 205:W93-W99).

Method as published: segment soft tissue (0-100 HU) inside the patient, compute a local noise map
(standard deviation in a small square kernel around each soft-tissue pixel), and take the mode of the
histogram of local standard deviations as the global noise level. The kernel and the histogram bin
are configuration (defaults: 6 mm kernel side, as in the paper's 6 x 6 mm ROI, and 0.25 HU bins).
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from curation.quality.masks import fill_holes_2d, otsu_threshold
from curation.quality.results import MetricSet


def global_noise_level(hu: np.ndarray, spacing: tuple[float, float, float], *, kernel_mm: float = 6.0,
                       soft_tissue_hu: tuple[float, float] = (0.0, 100.0), bin_hu: float = 0.25,
                       body_hu: float = -500.0) -> MetricSet:
    """GNL (HU) of a CT volume (slices, rows, columns) in Hounsfield units."""
    ms = MetricSet()
    v = np.asarray(hu, dtype=np.float32)
    if v.ndim == 2:
        v = v[None]
    k = max(3, int(round(kernel_mm / max(min(spacing[1], spacing[2]), 1e-3))) | 1)
    body = v > body_hu
    soft = (v >= soft_tissue_hu[0]) & (v <= soft_tissue_hu[1]) & body
    # Only pixels whose whole kernel is soft tissue: edges (fat/muscle, bone) are structure, not noise.
    kernel = np.ones((k, k), np.uint8)
    stds = []
    for z in range(v.shape[0]):
        s = soft[z].view(np.uint8)
        if s.sum() < k * k:
            continue
        core = cv2.erode(s, kernel).view(bool)
        if not core.any():
            continue
        mean = cv2.blur(v[z], (k, k))
        sq = cv2.blur(v[z] * v[z], (k, k))
        var = np.maximum(sq - mean * mean, 0.0) * (k * k / (k * k - 1))
        stds.append(np.sqrt(var[core]))
    ms.masks.update({"body": int(body.sum()), "soft_tissue": int(soft.sum())})
    if not stds:
        ms.nan("ct_gnl", "no soft tissue (0-100 HU) region as large as the kernel")
        ms.nan("ct_soft_tissue_hu", "no soft tissue region")
        return ms
    sd = np.concatenate(stds)
    ms.masks["noise_map"] = int(sd.size)
    top = float(np.percentile(sd, 99))
    nbins = max(10, int(math.ceil(top / bin_hu)))
    hist, edges = np.histogram(sd, bins=nbins, range=(0.0, nbins * bin_hu))
    hist = np.convolve(hist, np.ones(3) / 3.0, mode="same")  # a 3-bin running mean steadies the mode
    i = int(np.argmax(hist))
    ms.set("ct_gnl", (edges[i] + edges[i + 1]) / 2.0)
    ms.set("ct_soft_tissue_hu", float(np.median(v[soft])))
    air = v < -900
    if air.sum() > 100:
        ms.set("ct_air_hu", float(np.median(v[air])))
    else:
        ms.nan("ct_air_hu", "no air (< -900 HU) in the field of view")
    return ms


# -- Artifacts (issue 11, point 7): noise in air, CNR, streaks, rings, truncation ------------------------
#: The body: above this HU; padding outside a circular reconstruction: below PADDING_HU.
BODY_HU, PADDING_HU = -500.0, -1500.0
#: Bone (and metal) in the raw image: above what soft tissue plus a streak reaches.
BONE_HU = 600.0
#: An edge between tissues (HU across 3 pixels of the median image): bone, air, lung borders.
EDGE_HU = 300.0


def _robust_sd(x: np.ndarray) -> float:
    """Interquartile range / 1.349: the SD of Gaussian noise, unmoved by a few streak pixels (and,
    interpolated, finer than the MAD on integer HU)."""
    if not x.size:
        return math.nan
    q1, q3 = np.percentile(x, [25, 75])
    return float((q3 - q1) / 1.349)


def _sample_slices(n: int, k: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, k)).round().astype(int))


def _line_scores(resid: np.ndarray, mask: np.ndarray, sigma: float, angles: np.ndarray, min_len: int) -> float:
    """Largest |mean residual along a straight line| in units of its noise (sigma / sqrt(pixels)),
    over lines at the given angles (degrees) across the whole slice: a discrete Radon transform of
    the residual, normalised. White noise gives about 4-5; a streak, tens."""
    rows, cols = resid.shape
    stack = np.dstack([np.where(mask, resid, 0.0).astype(np.float32), mask.astype(np.float32)])
    centre = ((cols - 1) / 2.0, (rows - 1) / 2.0)
    best = 0.0
    for a in angles:
        rot = cv2.warpAffine(stack, cv2.getRotationMatrix2D(centre, float(a), 1.0), (cols, rows),
                             flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        s, n = rot[..., 0].sum(axis=0), rot[..., 1].sum(axis=0)
        ok = n >= min_len
        if ok.any():
            best = max(best, float(np.max(np.abs(s[ok]) / (sigma * np.sqrt(n[ok])))))
    return best


def ct_artifact_metrics(hu: np.ndarray, spacing: tuple[float, float, float], max_slices: int = 8,
                        angle_step_deg: float = 1.5) -> MetricSet:
    """Artifact measures of a CT volume (slices, rows, columns) in HU:

    - ct_noise_air: robust SD (IQR / 1.349) of HU in the air around the body (HU), the quantum noise
      where no anatomy is;
    - ct_cnr: (mean of the brighter - mean of the darker) of the two soft-tissue classes Otsu finds in
      the -200..250 HU window of the 5x5-median-filtered image, over the noise: the robust SD of the
      residual (image - its 5x5 median) in the body's homogeneous regions (soft tissue and lung). Not
      over the GNL: at very low dose few 6 mm kernels stay inside 0-100 HU and the GNL falls again;
    - ct_ring_index: concentric rings about the image centre: the residual after a 5x5 median filter,
      averaged (winsorised at 3 SD) over each integer radius inside the soft tissue, in units of its
      standard error; the largest |value| over radii and sampled slices;
    - ct_streak_index: straight lines through the soft tissue: the largest |mean residual| along any
      line (rings removed first), in units of its standard error (a normalised Radon transform);
    - ct_truncation: fraction of the field of view's edge (image frame or the edge of a circular
      reconstruction) that lies on the body (HU > -500), the largest over slices: > 0 means the body
      was cut by the field of view.
    Streak and ring indices are dimensionless (white noise gives ~4); both use the homogeneous parts
    of the body (soft tissue and lung), 2 pixels away from strong edges (> 300 HU across 3 pixels of
    the median image) and from bone (> 600 HU), so bone, air and organ borders do not count.
    """
    ms = MetricSet()
    v = np.asarray(hu, dtype=np.float32)
    if v.ndim == 2:
        v = v[None]
    n, rows, cols = v.shape
    yy, xx = np.mgrid[0:rows, 0:cols]
    radius = np.rint(np.hypot(yy - (rows - 1) / 2.0, xx - (cols - 1) / 2.0)).astype(np.int64)
    k3, k5 = np.ones((3, 3), np.uint8), np.ones((5, 5), np.uint8)
    trunc, air_sd, rings, streaks, cnr_lo, cnr_hi = [], [], [], [], [], []
    work: list[tuple[np.ndarray, np.ndarray, float]] = []
    angles = np.arange(0.0, 180.0, angle_step_deg)
    sample = set(_sample_slices(n, max_slices).tolist())
    for z in range(n):
        s = v[z]
        valid = s > PADDING_HU
        body = s > BODY_HU
        edge = np.zeros((rows, cols), bool)
        edge[[0, -1], :] = True
        edge[:, [0, -1]] = True
        edge = (edge & valid) | (valid & ~cv2.erode(valid.view(np.uint8), k3, borderValue=1).view(bool))
        if edge.any():
            trunc.append(float((edge & body).sum() / edge.sum()))
        if z not in sample:
            continue
        filled = cv2.morphologyEx(body.view(np.uint8), cv2.MORPH_CLOSE, k5).view(bool)
        outside = valid & ~cv2.dilate(filled.view(np.uint8), k5, iterations=2).view(bool) & (s < -900)
        if outside.sum() > 200:
            air_sd.append(_robust_sd(s[outside]))
        med = cv2.medianBlur(s, 5)
        soft = cv2.erode(((med > -200) & (med < 250)).view(np.uint8), k5).view(bool)
        if soft.sum() > 200:
            t = otsu_threshold(med[soft])
            if (med[soft] <= t).any() and (med[soft] > t).any():
                cnr_lo.append(float(med[soft][med[soft] <= t].mean()))
                cnr_hi.append(float(med[soft][med[soft] > t].mean()))
        # Homogeneous regions inside the body (soft tissue and lung alike): away from strong edges
        # (morphological gradient of the median image > EDGE_HU) and from bone; thin bone (a skull cut
        # obliquely) is removed by the median yet is no residual, hence the raw image's bone is used.
        inner = fill_holes_2d(filled[None])[0]
        grad = cv2.dilate(med, k3) - cv2.erode(med, k3)
        flat = cv2.erode(inner.view(np.uint8), k5, iterations=2).view(bool)
        flat &= ~cv2.dilate(((grad > EDGE_HU) | (s > BONE_HU)).view(np.uint8), k5).view(bool)
        if flat.sum() < 200:
            continue
        resid = (s - med).astype(np.float64)
        sigma = _robust_sd(resid[flat])
        if sigma > 0:
            work.append((resid, flat, sigma))
    # The noise unit: the median over the sampled slices (streaks, confined to the slices near the
    # metal, would inflate their own slices' SD and hide themselves).
    noise = float(np.median([w[2] for w in work])) if work else math.nan
    for resid, flat, _ in work:
        sigma = noise
        w = np.clip(resid, -3 * sigma, 3 * sigma)
        r_in = radius[flat]
        cnt = np.bincount(r_in, minlength=radius.max() + 1)
        tot = np.bincount(r_in, weights=w[flat], minlength=radius.max() + 1)
        prof = np.divide(tot, cnt, out=np.zeros_like(tot), where=cnt > 0)
        sd_w = float(w[flat].std()) or sigma
        ok = cnt >= 30
        if ok.any():
            rings.append(float(np.max(np.abs(prof[ok]) * np.sqrt(cnt[ok]) / sd_w)))
        no_ring = resid - np.where(cnt[radius] >= 30, prof[radius], 0.0)
        streaks.append(_line_scores(no_ring, flat, sigma, angles, max(30, min(rows, cols) // 6)))
    ms.set("ct_truncation", max(trunc) if trunc else math.nan, "no field of view edge found")
    ms.set("ct_noise_air", float(np.median(air_sd)) if air_sd else math.nan,
           "no air around the body in the field of view")
    ms.set("ct_ring_index", max(rings) if rings else math.nan, "no homogeneous region in the body to measure rings in")
    ms.set("ct_streak_index", max(streaks) if streaks else math.nan, "no homogeneous region in the body to measure streaks in")
    if cnr_lo and noise > 0:
        ms.set("ct_cnr", (float(np.median(cnr_hi)) - float(np.median(cnr_lo))) / noise)
    else:
        ms.nan("ct_cnr", "no two soft-tissue classes or no homogeneous region for the noise")
    return ms

