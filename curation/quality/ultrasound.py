"""Ultrasound B-mode measures (issue 11, point 7): gain saturation, dropout, reverberation.

All are measured inside the fan (the largest connected non-black region, holes filled: burned-in text
and rulers outside it do not count). For a sector probe the fan's straight side edges meet at the
apex; beams are then the angles about it and depth the distance from it (polar resampling). For a
linear probe (parallel side edges) beams are the columns and depth the rows.

- us_saturation: fraction of the fan's pixels at the top of the range (echo driven into the clip by
  too much gain);
- us_dropout: the darkest beam: 1 - (median echo along the beam) / (running median of that over the
  neighbouring beams, 15 % of the fan wide); an acoustic shadow or a dead element gives a beam much
  darker than its neighbours;
- us_reverberation: periodicity along depth: the largest normalised autocorrelation, at lags of 10 to
  60 pixels, of the depth profile (median echo over beams at each depth, minus its 31-pixel running
  median); reverberation repeats bands at equal depth steps.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
from scipy import ndimage as nd

from curation.quality.masks import fill_holes_2d
from curation.quality.results import MetricSet

NAMES = ("us_saturation", "us_dropout", "us_reverberation")


def fan_mask(gray: np.ndarray) -> np.ndarray:
    """The imaged fan: largest connected component of the closed non-black pixels, holes filled."""
    above = cv2.morphologyEx((gray > 0).astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    labels, n = nd.label(above)
    if n == 0:
        return np.zeros(gray.shape, bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return fill_holes_2d((labels == int(np.argmax(sizes)))[None])[0]


def _beams(gray: np.ndarray, fan: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(image, mask) resampled to (depth, beam): polar about the apex for a sector, as is for a linear fan."""
    rows = np.flatnonzero(fan.any(axis=1))
    ys = rows[int(0.2 * rows.size): int(0.8 * rows.size)]
    if ys.size < 10:
        return gray.astype(np.float32), fan
    left = np.array([np.flatnonzero(fan[y])[0] for y in ys], float)
    right = np.array([np.flatnonzero(fan[y])[-1] for y in ys], float)
    al, bl = np.polyfit(ys, left, 1)
    ar, br = np.polyfit(ys, right, 1)
    if abs(al - ar) < 0.05:  # parallel edges: a linear array
        box = np.ix_(np.arange(rows[0], rows[-1] + 1), np.arange(int(left.min()), int(right.max()) + 1))
        return gray[box].astype(np.float32), fan[box]
    y0 = (br - bl) / (al - ar)
    x0 = al * y0 + bl
    yy, xx = np.nonzero(fan)
    r = np.hypot(yy - y0, xx - x0)
    r_min, r_max = float(r.min()), float(r.max())
    t_left, t_right = math.atan(al), math.atan(ar)  # angle from the downward axis, + towards +x
    n_t = max(16, int(round(abs(t_left - t_right) * (r_min + r_max) / 2)))
    theta = np.linspace(min(t_left, t_right), max(t_left, t_right), n_t)
    radius = np.arange(r_min, r_max + 1.0)
    tt, rr = np.meshgrid(theta, radius)
    map_x = (x0 + rr * np.sin(tt)).astype(np.float32)
    map_y = (y0 + rr * np.cos(tt)).astype(np.float32)
    polar = cv2.remap(gray.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR, borderValue=0)
    pmask = cv2.remap(fan.astype(np.uint8), map_x, map_y, cv2.INTER_NEAREST, borderValue=0).astype(bool)
    return polar, pmask


def ultrasound_metrics(image: np.ndarray, bits_stored: int | None = 8) -> MetricSet:
    """Saturation, dropout and reverberation of one B-mode frame (grey or RGB as luminance)."""
    ms = MetricSet()
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] in (3, 4):
        img = img[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    img = np.asarray(img, dtype=np.float32)
    fan = fan_mask(img) if img.ndim == 2 else np.zeros(1, bool)
    if img.ndim != 2 or fan.sum() < 2000:
        for n in NAMES:
            ms.nan(n, "no imaged fan found" if img.ndim == 2 else f"expected one 2D frame, got shape {img.shape}")
        return ms
    ms.masks["fan"] = int(fan.sum())
    top = float((1 << (bits_stored or 8)) - 1)
    ms.set("us_saturation", float((img[fan] >= top).mean()))
    polar, pmask = _beams(img, fan)
    # dropout: the median echo of each beam against its neighbours
    cover = pmask.mean(axis=0)
    beams = np.flatnonzero(cover > 0.5)
    prof = np.array([np.median(polar[pmask[:, b], b]) for b in beams]) if beams.size else np.zeros(0)
    if prof.size >= 20:
        margin = max(1, int(0.03 * prof.size))
        ref = nd.median_filter(prof, size=max(5, int(0.15 * prof.size)) | 1, mode="nearest")
        inner = slice(margin, prof.size - margin)
        ms.set("us_dropout", float(np.max(1.0 - prof[inner] / np.maximum(ref[inner], 1e-6))))
    else:
        ms.nan("us_dropout", "too few beams inside the fan")
    # reverberation: periodicity of the depth profile
    rows_ok = pmask.mean(axis=1) > 0.5
    depth = np.array([np.median(polar[d, pmask[d]]) for d in np.flatnonzero(rows_ok)])
    if depth.size >= 60:
        resid = depth - nd.median_filter(depth, size=31, mode="nearest")
        resid = resid - resid.mean()
        denom = float((resid * resid).sum())
        lags = range(10, min(60, depth.size // 3) + 1)
        ac = [float((resid[:-k] * resid[k:]).sum()) / denom for k in lags] if denom > 0 else [0.0]
        ms.set("us_reverberation", max(ac))
    else:
        ms.nan("us_reverberation", "fan too shallow for a depth profile")
    return ms
