"""Image-quality measures aimed at one artifact each, beyond MRIQC's python-coded set (MRIQC gets
them from AFNI/ANTs, which are not shipped here):

- fwhm: smoothness (AFNI 3dFWHMx "classic" estimator, voxels) -- rises with blur, but also with the
  matrix: on anatomy it measures how many voxels a structure spans, so it is not comparable between
  resolutions (issue 19);
- edge_fwhm: the point-spread FWHM in voxels read off the image's sharpest edges -- about 1 voxel for
  any well-resolved acquisition at any matrix, 2.355 sigma for a Gaussian blur of sigma voxels;
- inu_range / inu_med: intensity non-uniformity, from a quadratic fit to log WM intensity (the N4
  field's p95 - p5 in MRIQC) -- rises with a bias field;
- gsr: ghost-to-signal ratio along the phase-encode direction (MRIQC's functional gsr) -- rises with
  periodic-motion ghosts;
- var: variance of the Laplacian in the brain over the squared mean signal (a focus measure, the
  VAR of PRIMAGE's set) -- falls with blur, rises with noise.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
from scipy.ndimage import maximum_filter1d

from curation.quality.masks import bounding_box


def fwhm(volume: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Per-axis FWHM (voxels) from the lag-1 autocorrelation inside the mask: r = 1 - var(d)/(2 var(x)),
    FWHM = sqrt(-2 ln 2 / ln r) (Forman 1995, AFNI's classic 3dFWHMx). Axes: z (slices), y (rows),
    x (columns); NaN on an axis with fewer than 2 voxels or r outside (0, 1)."""
    v = np.asarray(volume, dtype=np.float32)
    m = np.asarray(mask, dtype=bool)
    if m.any():  # only the mask's bounding box (plus one voxel) matters
        zz, yy, xx = (np.flatnonzero(m.any(axis=ax)) for ax in ((1, 2), (0, 2), (0, 1)))
        box = (slice(zz[0], zz[-1] + 1), slice(yy[0], yy[-1] + 1), slice(xx[0], xx[-1] + 1))
        v, m = v[box], m[box]
    inside = v[m].astype(np.float64)
    out: dict[str, float] = {}
    if inside.size < 10:
        return {"fwhm_x": math.nan, "fwhm_y": math.nan, "fwhm_z": math.nan, "fwhm_avg": math.nan}
    var_x = float(inside.var())
    for name, axis in (("fwhm_z", 0), ("fwhm_y", 1), ("fwhm_x", 2)):
        if v.shape[axis] < 2 or var_x <= 0:
            out[name] = math.nan
            continue
        a = [slice(None)] * 3
        b = [slice(None)] * 3
        a[axis] = slice(1, None)
        b[axis] = slice(None, -1)
        both = m[tuple(a)] & m[tuple(b)]
        d = (v[tuple(a)] - v[tuple(b)])[both].astype(np.float64)
        if d.size < 10:
            out[name] = math.nan
            continue
        r = 1.0 - float(d.var()) / (2.0 * var_x)
        out[name] = math.sqrt(-2.0 * math.log(2.0) / math.log(r)) if 0.0 < r < 1.0 else math.nan
    vals = [out[k] for k in ("fwhm_x", "fwhm_y", "fwhm_z") if not math.isnan(out[k])]
    out["fwhm_avg"] = float(np.mean(vals)) if vals else math.nan
    return out


#: Half-width (voxels) of the window an edge is read in: wide enough for a blur of FWHM about 4 voxels.
EDGE_SPAN = 3
#: A Gaussian edge's steepest one-voxel step is height / (sigma sqrt(2 pi)); FWHM = 2 sqrt(2 ln 2) sigma.
_WIDTH_TO_FWHM = 2.0 * math.sqrt(2.0 * math.log(2.0)) / math.sqrt(2.0 * math.pi)


def edge_fwhm(volume: np.ndarray, mask: np.ndarray, span: int = EDGE_SPAN, max_slices: int = 8,
              strongest: float = 0.10) -> dict[str, float]:
    """In-plane point-spread FWHM (voxels) from the sharpest edges at the mask's boundary and inside it.

    An edge is a window of 2 `span` one-voxel steps along a row or column that rises (or falls)
    monotonically (|net step| >= 0.9 x the summed |steps|) with its steepest step in the middle; its
    width is net step / steepest step (1 voxel for an ideal step sampled at voxel centres, sigma
    sqrt(2 pi) for a Gaussian edge). The median width of the `strongest` fraction of edges (by
    height, where noise matters least), times 2 sqrt(2 ln 2) / sqrt(2 pi), is the FWHM. Unlike the
    autocorrelation FWHM it does not grow with the matrix: a structure spanning more voxels does not
    make its edge wider in voxels. In-plane only (a 2D acquisition's slices are independent). Reads
    true up to a FWHM of about 3.5 voxels (sigma 1.5); beyond, the window no longer holds the whole
    edge and the reading grows more slowly than the blur (tests/quality/test_edge_fwhm.py).
    `max_slices` evenly spaced slices through the mask are read (the measure is a median)."""
    nan = {"fwhm_edge": math.nan, "fwhm_edge_n": 0.0}
    m = np.asarray(mask, dtype=bool)
    zz = np.flatnonzero(m.any(axis=(1, 2)))
    if zz.size == 0:
        return nan
    pick = np.unique(zz[np.linspace(0, zz.size - 1, min(max_slices, zz.size)).round().astype(int)])
    m = m[pick]
    yy, xx = np.flatnonzero(m.any(axis=(0, 2))), np.flatnonzero(m.any(axis=(0, 1)))
    pad = span + 1
    ys, xs = slice(max(yy[0] - pad, 0), yy[-1] + pad + 1), slice(max(xx[0] - pad, 0), xx[-1] + pad + 1)
    v = np.asarray(volume)[pick][:, ys, xs].astype(np.float32)
    m = m[:, ys, xs]
    n_win = 2 * span
    heights, widths = [], []
    for axis in (1, 2):
        a, mk = np.moveaxis(v, axis, -1), np.moveaxis(m, axis, -1)
        n = a.shape[-1]
        if n < n_win + 2:
            continue
        steps = np.abs(np.diff(a, axis=-1))  # steps[j] = |a[j+1] - a[j]|
        net = np.abs(a[..., n_win:] - a[..., :-n_win])  # over steps[j .. j+n_win-1]
        cs = np.concatenate([np.zeros(steps.shape[:-1] + (1,), np.float32), np.cumsum(steps, axis=-1)], axis=-1)
        path = cs[..., n_win:] - cs[..., :-n_win]
        steepest = maximum_filter1d(steps, size=n_win, axis=-1, origin=-(n_win // 2))[..., :n - n_win]
        centre = steps[..., span:span + n - n_win]
        near = mk[..., span:span + n - n_win] | mk[..., span + 1:span + 1 + n - n_win]
        ok = near & (centre == steepest) & (net >= 0.9 * path) & (steepest > 0)
        heights.append(net[ok])
        widths.append(net[ok] / steepest[ok])
    h = np.concatenate(heights) if heights else np.zeros(0, np.float32)
    if h.size < 20:
        return nan
    w = np.concatenate(widths)
    sel = h >= np.percentile(h, 100.0 * (1.0 - strongest))
    return {"fwhm_edge": float(np.median(w[sel])) * _WIDTH_TO_FWHM, "fwhm_edge_n": float(np.count_nonzero(sel))}


def _poly_terms(coords: np.ndarray) -> np.ndarray:
    """1, x, y, z, x^2, y^2, z^2, xy, xz, yz for coordinates in [-1, 1] (n, 3)."""
    z, y, x = coords[:, 0], coords[:, 1], coords[:, 2]
    return np.stack([np.ones_like(x), x, y, z, x * x, y * y, z * z, x * y, x * z, y * z], axis=1)


def inu(volume: np.ndarray, classes: list[np.ndarray], max_samples: int = 40000) -> dict[str, float]:
    """Bias-field estimate: trimmed least-squares fit of log intensity = class offset + quadratic field
    over the voxels of the given tissue classes (GM and WM; regularly subsampled). inu_range = p95 - p5 and
    inu_med = median of the fitted field (normalised to median 1) over those voxels (MRIQC reports the
    same two numbers for the N4 field)."""
    idx_all, cls_all = [], []
    for c, m in enumerate(classes):
        idx = np.flatnonzero(np.asarray(m, dtype=bool).ravel())
        idx_all.append(idx)
        cls_all.append(np.full(idx.size, c))
    idx = np.concatenate(idx_all) if idx_all else np.zeros(0, np.int64)
    cls = np.concatenate(cls_all) if cls_all else np.zeros(0, np.int64)
    vals = np.asarray(volume).ravel()[idx]
    keep = vals > 0
    idx, cls, vals = idx[keep], cls[keep], vals[keep]
    if idx.size < 50:
        return {"inu_range": math.nan, "inu_med": math.nan}
    if idx.size > max_samples:
        step = idx.size // max_samples
        idx, cls, vals = idx[::step], cls[::step], vals[::step]
    shape = np.asarray(volume.shape, dtype=np.float64)
    coords = np.stack(np.unravel_index(idx, volume.shape), axis=1).astype(np.float64)
    coords = 2.0 * coords / np.maximum(shape - 1, 1) - 1.0
    terms = _poly_terms(coords)[:, 1:]  # no constant: the class offsets carry it
    if volume.shape[0] < 3:  # a single slice has no z trend
        terms = terms[:, [0, 1, 3, 4, 6]]
    offsets = np.stack([(cls == c).astype(np.float64) for c in range(len(classes))], axis=1)
    design = np.concatenate([offsets, terms], axis=1)
    y = np.log(vals.astype(np.float64))
    keep = np.ones(y.size, dtype=bool)
    for _ in range(3):  # trimmed least squares: misclassified and partial-volume voxels are outliers
        coef, *_ = np.linalg.lstsq(design[keep], y[keep], rcond=None)
        resid = y - design @ coef
        mad = float(np.median(np.abs(resid[keep] - np.median(resid[keep])))) * 1.4826
        new = np.abs(resid) <= 2.5 * max(mad, 1e-6)
        if new.sum() < 50 or np.array_equal(new, keep):
            break
        keep = new
    field = np.exp(terms @ coef[len(classes):])
    field /= np.median(field)
    p5, p95 = np.percentile(field, [5, 95])
    return {"inu_range": float(p95 - p5), "inu_med": float(np.median(field))}


def ghost_ratio(volume: np.ndarray, head: np.ndarray, air: np.ndarray) -> dict[str, float]:
    """Ghost-to-signal ratio per in-plane direction: (mean background beside the head along that
    axis - mean background beside it along the other axis) / mean foreground. gsr_y: ghosts along
    rows (phase-encode COL), gsr_x: along columns (ROW); NaN when a band is empty."""
    v = np.asarray(volume)
    if not head.any():
        return {"gsr_x": math.nan, "gsr_y": math.nan}
    fg = float(v[head].mean(dtype=np.float64))
    rows_any = head.any(axis=2)  # (z, rows): slice rows that cross the head
    cols_any = head.any(axis=1)  # (z, cols)
    band_y = air & cols_any[:, None, :] & ~rows_any[:, :, None]  # above/below the head
    band_x = air & rows_any[:, :, None] & ~cols_any[:, None, :]  # left/right of the head
    # each band's size and mean once (they serve as ghost and as reference in turn)
    size = {"y": np.count_nonzero(band_y), "x": np.count_nonzero(band_x)}
    mean = {k: v[band].mean(dtype=np.float64) if size[k] >= 20 else math.nan
            for k, band in (("y", band_y), ("x", band_x))}
    out = {}
    for name, ghost, other in (("gsr_y", "y", "x"), ("gsr_x", "x", "y")):
        if size[ghost] < 20 or size[other] < 20 or fg <= 0:
            out[name] = math.nan
        else:
            out[name] = float((mean[ghost] - mean[other]) / fg)
    return out


def laplacian_variance(volume: np.ndarray, mask: np.ndarray) -> float:
    """var(in-plane Laplacian) inside the mask / mean(signal inside the mask)^2 (scale-free)."""
    m = np.asarray(mask, dtype=bool)
    if np.count_nonzero(m) < 10:
        return math.nan
    # Only the mask's bounding box one voxel wider (the 3x3 kernel's reach) matters; where the box
    # meets the image's edge, the edge handling is the same as on the whole slice.
    box = bounding_box(m, 1)
    v = np.asarray(volume, dtype=np.float32)[box]
    m = m[box]
    lap = np.empty_like(v)
    for k in range(v.shape[0]):
        lap[k] = cv2.Laplacian(v[k], cv2.CV_32F, ksize=1)
    mean = float(v[m].mean())
    return float(lap[m].astype(np.float64).var() / mean**2) if mean > 0 else math.nan
