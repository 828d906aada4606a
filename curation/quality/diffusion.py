"""Quality of diffusion series (DWI) and of their ADC maps, in the acquisition's terms (issue 19).

DWI, per b-value (volumes grouped by their b-value):
- dwi_snr_b0 / dwi_snr_bmax: median foreground signal of the b=0 volume / of the weakest volume at the
  highest b-value, over the noise sigma of its own air (Rician background: sigma = sqrt(mean(air^2) / 2));
  the high-b SNR is what noise costs first, as diffusion weighting removes most of the signal;
- dwi_nyquist_ghost: the EPI N/2 ghost: mean of the air the head (above half its median) lands in when
  shifted by half the field of view along an in-plane axis, minus the mean of the rest of the air (10 mm
  and more from the head), over the head's mean (the larger of the two in-plane axes, the worst volume);
- dwi_dropout: the largest loss of a slice's signal in one diffusion-weighted volume (relative to its two
  neighbour slices, so that through-plane motion between volumes cancels) against the same slice in the
  other volumes of its b-value (bulk motion during the diffusion encoding dephases whole slices);
- dwi_attenuation: median foreground signal at the highest b over b=0 (about exp(-b ADC) of brain).
ADC, in 10^-3 mm^2/s (stored values read as 10^-6 mm^2/s, as the vendors store them):
- adc_median: median over the foreground (adult brain with CSF: about 0.8);
- adc_p99: the 99th percentile (free water, CSF: about 3.0; a noise floor in the source images drags it
  down, a wrong scale moves it);
- adc_implausible: fraction of the foreground outside 0.1-3.4 (no tissue diffuses faster than water
  at body temperature, 3.0-3.2);
- adc_noise: robust sigma of in-plane neighbour differences in tissue (0.3-1.2) over the median, i.e.
  the map's noise relative to its level;
- adc_floor: fraction of the foreground at or below 0.05, the zeros a noise floor leaves.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from curation.quality.masks import _morph_2d, compute_masks, fill_holes_2d, head_mask, largest_component
from curation.quality.results import MetricSet

DWI_METRICS = ("dwi_snr_b0", "dwi_snr_bmax", "dwi_nyquist_ghost", "dwi_dropout", "dwi_attenuation")
ADC_METRICS = ("adc_median", "adc_p99", "adc_implausible", "adc_noise", "adc_floor")
#: Stored ADC values are counted in 10^-6 mm^2/s; the metrics in 10^-3 mm^2/s.
ADC_STORED_PER_UNIT = 1000.0
ADC_PLAUSIBLE = (0.1, 3.4)
ADC_TISSUE = (0.3, 1.2)
#: Slices with less foreground than this fraction of the fullest slice do not count for dropout.
MIN_SLICE_FRACTION = 0.3


def _air_sigma(volume: np.ndarray, air: np.ndarray) -> float:
    a = volume[air].astype(np.float64)
    return float(np.sqrt((a * a).mean() / 2.0)) if a.size >= 20 else math.nan


def _nyquist_ghost(volume: np.ndarray, object_mask: np.ndarray, outside: np.ndarray) -> float:
    """(mean where the object lands shifted by half the field of view - mean of the rest of `outside`)
    / mean of the object, the larger of the two in-plane axes; `outside`: voxels well away from it."""
    fg = float(volume[object_mask].mean(dtype=np.float64)) if object_mask.any() else 0.0
    if fg <= 0:
        return math.nan
    out = []
    for axis in (1, 2):
        ghost = np.roll(object_mask, object_mask.shape[axis] // 2, axis=axis) & outside
        rest = outside & ~ghost
        if np.count_nonzero(ghost) >= 20 and np.count_nonzero(rest) >= 20:
            out.append((float(volume[ghost].mean(dtype=np.float64)) - float(volume[rest].mean(dtype=np.float64))) / fg)
    return max(out) if out else math.nan


def _object(ref: np.ndarray, head: np.ndarray, spacing: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(the object at half its median level, the voxels beyond a 10 mm margin of it): a strong ghost
    passes the Otsu level of the head mask and joins it, but stays below half the object's level."""
    level = 0.5 * float(np.median(ref[head]))
    core = fill_holes_2d(ref > level)
    core = largest_component(core) if core.any() else core
    r = max(1, int(round(10.0 / max(min(spacing[1], spacing[2]), 1e-3))))
    return core, ~_morph_2d(core, cv2.MORPH_DILATE, r, cv2.MORPH_RECT)


def dwi_metrics(frames: np.ndarray, spacing: tuple[float, float, float], b_values: Sequence[float] | None) -> MetricSet:
    """frames: (volume, z, y, x); b_values: one per volume (None: NaN with that reason)."""
    ms = MetricSet()
    f = np.asarray(frames, dtype=np.float32)
    if f.ndim != 4 or not b_values or len(b_values) != f.shape[0]:
        for n in DWI_METRICS:
            ms.nan(n, "diffusion series without per-volume b-values")
        return ms
    b = np.array([round(float(x)) for x in b_values])
    b0 = np.flatnonzero(b == b.min())
    hi = np.flatnonzero(b == b.max())
    if b.max() <= b.min():
        for n in DWI_METRICS:
            ms.nan(n, "one b-value only")
        return ms
    ref = f[b0].mean(axis=0)
    masks = compute_masks(ref, spacing)
    head, air = masks.head, masks.air
    core, beyond = _object(ref, head, spacing)
    outside = beyond & ~masks.rotation
    if head.sum() < 50:
        for n in DWI_METRICS:
            ms.nan(n, "no foreground in the b=0 volume")
        return ms
    ms.masks.update({"foreground": int(head.sum()), "background": int(air.sum()), "volumes": int(f.shape[0])})
    snr = []
    ghost = []
    medians = []
    for v in range(f.shape[0]):
        med = float(np.median(f[v][head]))
        medians.append(med)
        s = _air_sigma(f[v], air)
        snr.append(med / s if s and s > 0 else math.nan)
        ghost.append(_nyquist_ghost(f[v], core, outside))
    ms.set("dwi_snr_b0", float(np.nanmin([snr[i] for i in b0])), "no air to measure the noise in")
    ms.set("dwi_snr_bmax", float(np.nanmin([snr[i] for i in hi])), "no air to measure the noise in")
    ms.set("dwi_nyquist_ghost", float(np.nanmax(ghost)) if np.isfinite(ghost).any() else math.nan,
           "no air beside the head along either in-plane axis")
    ms.set("dwi_attenuation", float(np.median([medians[i] for i in hi]) / max(np.median([medians[i] for i in b0]), 1e-9)))
    # each volume's signal per slice (voxels above its own share of the b=0 threshold: motion-proof in
    # plane), as a ratio to the mean of its two neighbours (proof against through-plane shifts), compared
    # with the same slice's ratio in the other volumes of the b-value
    level = masks.threshold / max(float(np.median(ref[head])), 1e-9)
    sums = np.stack([np.where(fv > 0.5 * level * medians[v], fv, 0.0).sum(axis=(1, 2), dtype=np.float64)
                     for v, fv in enumerate(f)])
    use = (sums[b0].mean(axis=0) >= MIN_SLICE_FRACTION * sums[b0].mean(axis=0).max())[1:-1]
    drop = []
    for group in (np.flatnonzero(b == x) for x in np.unique(b) if x > b.min()):
        if len(group) < 2 or not use.any():
            continue
        s = sums[group]
        ratio = s[:, 1:-1] / np.maximum(0.5 * (s[:, :-2] + s[:, 2:]), 1e-9)
        ratio = ratio[:, use]
        drop.append(float((1.0 - ratio / np.maximum(np.median(ratio, axis=0), 1e-9)).max()))
    ms.set("dwi_dropout", float(max(drop)) if drop else math.nan, "fewer than two volumes share a b-value")
    ms.notes["b_values"] = sorted({int(x) for x in b})
    return ms


def adc_metrics(volume: np.ndarray, spacing: tuple[float, float, float]) -> MetricSet:
    """volume: (z, y, x) ADC map as stored (10^-6 mm^2/s)."""
    ms = MetricSet()
    v = np.nan_to_num(np.asarray(volume, dtype=np.float32)) / np.float32(ADC_STORED_PER_UNIT)
    head, _ = head_mask(np.maximum(v, 0), spacing)
    if head.sum() < 50:
        for n in ADC_METRICS:
            ms.nan(n, "no foreground in the ADC map")
        return ms
    x = v[head]
    med = float(np.median(x))
    ms.masks["foreground"] = int(head.sum())
    ms.set("adc_median", med)
    ms.set("adc_p99", float(np.percentile(x, 99)))
    ms.set("adc_implausible", float(np.mean((x < ADC_PLAUSIBLE[0]) | (x > ADC_PLAUSIBLE[1]))))
    ms.set("adc_floor", float(np.mean(x <= 0.05)))
    tissue = head & (v >= ADC_TISSUE[0]) & (v <= ADC_TISSUE[1])
    diffs = []
    for axis in (1, 2):
        a = np.moveaxis(v, axis, -1)
        t = np.moveaxis(tissue, axis, -1)
        both = t[..., 1:] & t[..., :-1]
        diffs.append((a[..., 1:] - a[..., :-1])[both])
    d = np.concatenate(diffs)
    if d.size >= 50 and med > 0:
        tmed = float(np.median(v[tissue]))
        ms.set("adc_noise", float(1.4826 * np.median(np.abs(d - np.median(d))) / math.sqrt(2.0) / tmed))
    else:
        ms.nan("adc_noise", "too little tissue in the ADC map")
    ms.notes["adc_units"] = "10^-3 mm^2/s (stored values read as 10^-6 mm^2/s)"
    return ms
