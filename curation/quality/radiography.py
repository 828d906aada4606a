"""Projection radiography (CR/DX) and other 2D images (US, SC): exposure, saturation and SNR proxies.

No reference standard exists for these without a phantom in the beam, so the measures are proxies
that flag the common failures: a detector driven into saturation (clipped white or black), an
under-used dynamic range (under/over-exposure), and a noisy image (low SNR):
- exposure_index / deviation_index: as recorded by the modality (IEC 62494-1), when present;
- mean_level: mean pixel value over the anatomy as a fraction of the stored range;
- saturation_high / saturation_low: fraction of the imaged field's pixels at the top / bottom of the
  stored range. The field is the region of non-zero pixels with its holes filled: the black outside
  an ultrasound sector or a collimated field is not a detector clipped black (counted over the whole
  image, every clean US series went to review at ~60 % 'saturation'); clipping that reaches the
  field's edge looks like the edge and is not counted;
- dynamic_range: (p99 - p1) of the anatomy as a fraction of the stored range;
- noise_sigma: Immerkaer's fast noise estimate (1996) from a Laplacian-difference mask, stored units;
- snr_proxy: mean over the anatomy / noise_sigma.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from curation.quality.masks import fill_holes_2d, otsu_threshold
from curation.quality.results import MetricSet

_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)


def immerkaer_sigma(image: np.ndarray) -> float:
    """Noise standard deviation of a 2D image: sqrt(pi/2) / (6 (W-2)(H-2)) * sum |I * N| (Immerkaer)."""
    img = np.asarray(image, dtype=np.float32)
    if img.shape[0] < 3 or img.shape[1] < 3:
        return math.nan
    conv = cv2.filter2D(img, cv2.CV_32F, _IMMERKAER, borderType=cv2.BORDER_REFLECT)[1:-1, 1:-1]
    h, w = img.shape
    return float(math.sqrt(math.pi / 2.0) * np.abs(conv, dtype=np.float32).sum(dtype=np.float64) / (6.0 * (w - 2) * (h - 2)))


def imaged_field(img: np.ndarray, background: float = 0.0) -> np.ndarray:
    """The imaged field: pixels above `background`, closed over speckle-sized gaps, holes filled
    (so clipped-black areas inside the field stay in it). The whole image when nothing is above."""
    above = (img > background).astype(np.uint8)
    if not above.any():
        return np.ones(img.shape, bool)
    closed = cv2.morphologyEx(above, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    return fill_holes_2d(closed.astype(bool)[None])[0]


def projection_metrics(image: np.ndarray, bits_stored: int | None = None, exposure_index: float | None = None,
                       target_exposure_index: float | None = None) -> MetricSet:
    """Metrics of one 2D image (rows, columns), grey levels as stored (colour: luminance)."""
    ms = MetricSet()
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] in (3, 4):
        img = img[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    img = np.asarray(img, dtype=np.float32)
    if img.ndim != 2:
        for n in ("mean_level", "saturation_high", "saturation_low", "dynamic_range", "noise_sigma", "snr_proxy"):
            ms.nan(n, f"expected one 2D image, got shape {img.shape}")
        return ms
    lo_range = 0.0
    hi_range = float((1 << bits_stored) - 1) if bits_stored else float(max(img.max(), 1.0))
    span = max(hi_range - lo_range, 1.0)
    t = otsu_threshold(img)
    anatomy = img > t if (img > t).mean() < 0.95 else np.ones(img.shape, bool)
    field = imaged_field(img, lo_range)
    ms.masks.update({"anatomy": int(anatomy.sum()), "field": int(field.sum()), "image": int(img.size)})
    in_field = img[field]
    ms.set("saturation_high", float((in_field >= hi_range).mean()))
    ms.set("saturation_low", float((in_field <= lo_range).mean()))
    vals = img[anatomy]
    ms.set("mean_level", float(vals.mean()) / span)
    p1, p99 = np.percentile(vals, [1, 99])
    ms.set("dynamic_range", float(p99 - p1) / span)
    sigma = immerkaer_sigma(img)
    ms.set("noise_sigma", sigma, "image too small")
    ms.set("snr_proxy", float(vals.mean()) / sigma if sigma and sigma > 0 else math.nan,
           "no measurable noise (synthetic or heavily processed image)")
    if exposure_index is not None:
        ms.set("exposure_index", exposure_index)
        if target_exposure_index:
            ms.set("deviation_index", 10.0 * math.log10(exposure_index / target_exposure_index))
        else:
            ms.nan("deviation_index", "no TargetExposureIndex recorded")
    else:
        ms.nan("exposure_index", "ExposureIndex not recorded by the modality")
        ms.nan("deviation_index", "ExposureIndex not recorded by the modality")
    return ms
