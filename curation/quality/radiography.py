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


# -- Projection radiographs (CR, DX, MG): exposure, collimation, grid lines, sharpness (issue 11, 7) ----
#: A shutter (collimator blade) column or row: its 5th percentile at least this fraction of the range
#: (the unexposed detector behind a blade is near white in MONOCHROME2 display).
SHUTTER_LEVEL = 0.8
#: Anatomy: the median-filtered display this far above the direct-exposure (air) level, as a fraction.
ANATOMY_ABOVE_AIR = 0.05
#: Grid-line search band (cycles per pixel): periods of 2-5.5 pixels, above the anatomy's rib harmonics.
GRID_BAND = (0.18, 0.5)


def collimated_field(display: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """The exposed field of a MONOCHROME2 display image (fraction 0..1): the image less the blade
    shadows found from each side (whole columns / rows near white), and the blade widths (pixels)."""
    f = np.asarray(display, dtype=np.float32)
    rows, cols = f.shape
    col_p5 = np.percentile(f, 5, axis=0)
    row_p5 = np.percentile(f, 5, axis=1)

    def run(p: np.ndarray) -> int:
        bad = p >= SHUTTER_LEVEL
        return int(np.argmin(bad)) if not bad.all() else len(p)

    blades = {"left": run(col_p5), "right": run(col_p5[::-1]), "top": run(row_p5), "bottom": run(row_p5[::-1])}
    field = np.zeros(f.shape, bool)
    field[blades["top"]: rows - blades["bottom"], blades["left"]: cols - blades["right"]] = True
    if not field.any():
        field[:] = True
    return field, blades


def _band_peak_db(profile: np.ndarray) -> float:
    """Spectral peak over the median power in GRID_BAND of a detrended 1D profile (dB)."""
    p = profile - profile.mean()
    if p.size < 16:
        return math.nan
    spec = np.abs(np.fft.rfft(p * np.hanning(p.size))) ** 2
    freq = np.fft.rfftfreq(p.size)
    band = (freq >= GRID_BAND[0]) & (freq <= GRID_BAND[1])
    if band.sum() < 5:
        return math.nan
    med = float(np.median(spec[band]))
    return float(10.0 * math.log10(float(spec[band].max()) / med)) if med > 0 else math.nan


def radiograph_metrics(image: np.ndarray, bits_stored: int | None = None) -> MetricSet:
    """Measures of a projection radiograph in MONOCHROME2 display values (attenuating = bright):

    - xr_median_level / xr_p95_level: median / 95th percentile of the anatomy in the collimated field,
      as a fraction of the stored range (exposure from the pixels when no exposure index is recorded:
      under-exposure lifts them, over-exposure lowers them);
    - xr_clipped: fraction of the collimated field's pixels at either end of the range (burnt-out
      lungs, a saturated detector);
    - xr_collimation_cut: fraction of the collimated field's edge where anatomy touches it (a blade
      cutting into the body; the field's edge is the image's frame when there are no blades);
    - xr_grid_db: the strongest periodic line pattern (grid lines): spectral peak over the median
      power, in dB, of the high-pass image averaged along rows or along columns, periods 2-5.5 px;
    - xr_sharpness: how steep the strongest edges are for their scale: the mean of the top 1 % of a
      directional derivative after a 1-pixel Gaussian over the same after a 3-pixel Gaussian (a step
      edge gives 3, an edge already wider than 3 pixels about 1), geometric mean over four directions;
      free of contrast and exposure, it falls with blur (motion) in any direction.
    """
    ms = MetricSet()
    img = np.asarray(image, dtype=np.float32)
    names = ("xr_median_level", "xr_p95_level", "xr_clipped", "xr_collimation_cut", "xr_grid_db", "xr_sharpness")
    if img.ndim != 2 or min(img.shape) < 32:
        for n in names:
            ms.nan(n, f"expected one 2D image of at least 32 x 32, got shape {img.shape}")
        return ms
    top = float((1 << bits_stored) - 1) if bits_stored else float(max(img.max(), 1.0))
    f = img / top
    field, blades = collimated_field(f)
    ms.masks.update({"collimated_field": int(field.sum())})
    ms.notes["blades_px"] = blades
    sm = cv2.medianBlur(np.clip(f, 0, 1), 5)
    air = float(np.percentile(sm[field], 1))
    anatomy = field & (sm > air + ANATOMY_ABOVE_AIR)
    if anatomy.sum() < 100:
        anatomy = field
    vals = f[anatomy]
    ms.set("xr_median_level", float(np.median(vals)))
    ms.set("xr_p95_level", float(np.percentile(vals, 95)))
    ms.set("xr_clipped", float(((img[field] >= top) | (img[field] <= 0)).mean()))
    edge = field & ~cv2.erode(field.view(np.uint8), np.ones((3, 3), np.uint8), borderValue=0).view(bool)
    ms.set("xr_collimation_cut", float(anatomy[edge].mean()) if edge.any() else math.nan, "no field edge")
    # grid lines: high-pass inside the field's box, averaged along each axis
    box = np.ix_(np.flatnonzero(field.any(axis=1)), np.flatnonzero(field.any(axis=0)))
    hp = (f - cv2.GaussianBlur(f, (0, 0), 2.0))[box]
    peaks = [_band_peak_db(hp.mean(axis=0)), _band_peak_db(hp.mean(axis=1))]
    peaks = [p for p in peaks if math.isfinite(p)]
    ms.set("xr_grid_db", max(peaks) if peaks else math.nan, "field too small for a spectrum")
    # sharpness: directional derivatives at two scales, away from the field's edge
    inner = cv2.erode(field.view(np.uint8), np.ones((11, 11), np.uint8), borderValue=0).view(bool)
    if inner.sum() > 1000:
        grads = []
        for sigma in (1.0, 3.0):
            g = cv2.GaussianBlur(f, (0, 0), sigma)
            grads.append((cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)[inner], cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)[inner]))
        ratios = []
        for a in (0.0, 45.0, 90.0, 135.0):
            c, s = math.cos(math.radians(a)), math.sin(math.radians(a))
            top = []
            for gx, gy in grads:
                d = np.abs(c * gx + s * gy)
                k = max(10, d.size // 100)
                top.append(float(np.partition(d, d.size - k)[-k:].mean()))
            if top[1] > 0:
                ratios.append(top[0] / top[1])
        ms.set("xr_sharpness", float(np.exp(np.mean(np.log(ratios)))) if ratios else math.nan, "no edges")
    else:
        ms.nan("xr_sharpness", "collimated field too small")
    return ms
