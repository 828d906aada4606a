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
