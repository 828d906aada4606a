"""Foreground (head/body), air, artifact and rotation masks of a magnitude volume.

Why slice-wise OpenCV morphology: the masks must cost a few tens of milliseconds on a 256x256x64
volume; in-plane closing, hole filling and distance transforms per slice are what 2D acquisitions
call for anyway, and 10x faster than their 3D scipy equivalents.

Conventions: volumes are (slices, rows, columns) numpy arrays; masks are bool arrays of that shape.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage as nd

from curation.quality.stats import Levels, percentile


def otsu_threshold(values: np.ndarray, bins: int = 256, log: bool = False, counts: np.ndarray | None = None) -> float:
    """Otsu's threshold on a histogram of the values (between their 0.5 and 99.5 percentiles).

    `log`: on log(1 + v) -- the split between air and tissue when tissues differ tenfold among
    themselves (bright scalp fat, dark grey matter), where a linear Otsu would cut through the tissues.
    `counts`: the values are distinct (ascending), each standing for `counts` voxels -- the same
    threshold as on the voxels, from a few thousand logarithms instead of half a million.
    """
    v = np.asarray(values).ravel()
    if counts is None and v.size > 1_000_000:  # the histogram of a regular subsample is as good and much cheaper
        v = v[:: v.size // 500_000]
    v = v.astype(np.float64)
    if log:
        return float(np.expm1(otsu_threshold(np.log1p(np.maximum(v, 0.0)), bins, counts=counts)))
    if counts is not None:
        v, counts = v[counts > 0], counts[counts > 0]
    if v.size == 0:
        return 0.0
    if counts is None:
        lo, hi = np.percentile(v, [0.5, 99.5])
    else:
        lo, hi = percentile(counts, v, 0.5), percentile(counts, v, 99.5)
    if hi <= lo:
        return float(lo)
    hist, edges = np.histogram(v, bins=bins, range=(lo, hi), weights=counts)
    hist = hist.astype(np.int64)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(centres[int(np.argmax(between[:-1]))])


def fill_holes_2d(mask: np.ndarray) -> np.ndarray:
    """Fill the holes of each slice: what the border cannot reach through background is inside.

    The slices are stacked into one image, each framed by background, so that one flood fill from a
    corner reaches the border of every slice (and nothing else joins two slices)."""
    nz, ny, nx = mask.shape
    ff = np.zeros((nz, ny + 1, nx + 2), np.uint8)
    ff[:, 1:, 1:-1] = mask
    ff = np.concatenate([ff.reshape(nz * (ny + 1), nx + 2), np.zeros((1, nx + 2), np.uint8)])
    cv2.floodFill(ff, np.zeros((ff.shape[0] + 2, nx + 4), np.uint8), (0, 0), 1)
    holes = ff[:-1].reshape(nz, ny + 1, nx + 2)[:, 1:, 1:-1] == 0
    return mask | holes


def _morph_2d(mask: np.ndarray, op: int, radius: int, shape: int = cv2.MORPH_ELLIPSE) -> np.ndarray:
    if radius <= 0:
        return mask.copy()
    kernel = cv2.getStructuringElement(shape, (2 * radius + 1, 2 * radius + 1))
    out = np.empty_like(mask)
    for k in range(mask.shape[0]):
        out[k] = cv2.morphologyEx(mask[k].view(np.uint8), op, kernel, borderType=cv2.BORDER_REPLICATE
                                  if op == cv2.MORPH_CLOSE else cv2.BORDER_CONSTANT).view(bool)
    return out


def distance_2d(mask: np.ndarray, spacing_yx: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """In-plane Euclidean distance (mm) of each voxel of `mask` to the nearest voxel outside it."""
    out = np.zeros(mask.shape, dtype=np.float32)
    scale = float(np.sqrt(spacing_yx[0] * spacing_yx[1]))
    for k in range(mask.shape[0]):
        if mask[k].any():
            out[k] = cv2.distanceTransform(mask[k].astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return out * scale


def bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[slice, ...]:
    """The slices of the smallest box holding every voxel of a non-empty mask, grown by `margin`."""
    return tuple(slice(max(int(i[0]) - margin, 0), int(i[-1]) + 1 + margin)
                 for i in (np.flatnonzero(mask.any(axis=ax)) for ax in ((1, 2), (0, 2), (0, 1))))


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 3D connected component (6-connectivity) of a mask."""
    box = bounding_box(mask)  # labelling only where the mask is: same components
    labels, n = nd.label(mask[box])
    if n <= 1:
        return mask.copy()
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    out = np.zeros_like(mask)
    out[box] = labels == int(np.argmax(sizes))
    return out


def rotation_mask(volume: np.ndarray) -> np.ndarray:
    """Voxels that hold no data (exactly zero, touching the border): padding after a reslice/rotation.

    MRIQC excludes them from EFC and FBER; here the zero-valued region connected to the volume's
    border, if it is large (>= 500 voxels, as in MRIQC's RotationMask).
    """
    zero = volume <= 0
    if np.count_nonzero(zero) < 500:
        return np.zeros(volume.shape, dtype=bool)
    # Scattered zeros (noise rounded to 0) cannot make 500 border-connected voxels: such a region
    # is made of zeros on the border faces and of zeros with a zero neighbour (at most two per
    # neighbouring pair). Counting those bounds it without labelling the volume.
    faces = sum(np.count_nonzero(f) for f in (zero[0], zero[-1], zero[:, 0], zero[:, -1], zero[:, :, 0],
                                                zero[:, :, -1]))
    pairs = (np.count_nonzero(zero[1:] & zero[:-1]) + np.count_nonzero(zero[:, 1:] & zero[:, :-1])
             + np.count_nonzero(zero[:, :, 1:] & zero[:, :, :-1]))
    if faces + 2 * pairs < 500:
        return np.zeros(volume.shape, dtype=bool)
    labels, n = nd.label(zero)
    if n == 0:
        return np.zeros(volume.shape, dtype=bool)
    border = np.unique(np.concatenate([labels[0].ravel(), labels[-1].ravel(), labels[:, 0].ravel(),
                                       labels[:, -1].ravel(), labels[:, :, 0].ravel(), labels[:, :, -1].ravel()]))
    border = border[border > 0]
    m = np.isin(labels, border)
    return m if m.sum() >= 500 else np.zeros(volume.shape, dtype=bool)


@dataclass
class Masks:
    """The masks metrics are computed on, with their sizes for the record."""

    head: np.ndarray  # foreground: the head/body with its interior (skull, CSF) filled
    air: np.ndarray  # background without artifacts and without the rotation padding
    artifact: np.ndarray  # background voxels far above the noise floor (ghosts, wrap, streaks)
    rotation: np.ndarray  # padding that holds no data
    threshold: float  # the Otsu threshold the head mask started from

    def sizes(self) -> dict[str, int]:
        return {"foreground": np.count_nonzero(self.head), "background": np.count_nonzero(self.air),
                "artifact": np.count_nonzero(self.artifact), "rotation": np.count_nonzero(self.rotation)}


def head_mask(volume: np.ndarray, spacing: tuple[float, float, float], closing_mm: float = 4.0,
              threshold: float | None = None, levels: Levels | None = None) -> tuple[np.ndarray, float]:
    """(foreground mask, threshold): Otsu (log intensities), opening, closing, hole filling per slice,
    largest 3D component. `levels`: the volume's integer levels, for a cheaper identical Otsu."""
    if threshold is not None:
        t = threshold
    elif levels is not None and volume.size > 1_000_000:
        sample = levels.codes.reshape(-1)[:: volume.size // 500_000]  # otsu_threshold's subsample
        t = otsu_threshold(levels.values, log=True, counts=np.bincount(sample, minlength=len(levels.values)))
    elif levels is not None:
        t = otsu_threshold(levels.values, log=True, counts=levels.counts())
    else:
        t = otsu_threshold(volume, log=True)
    m = volume > t
    r = max(1, int(round(closing_mm / max(min(spacing[1], spacing[2]), 1e-3))))
    m = _morph_2d(m, cv2.MORPH_OPEN, 1)
    m = _morph_2d(m, cv2.MORPH_CLOSE, r)
    m = fill_holes_2d(m)
    if m.any():
        m = largest_component(m)
    return m, t


def artifact_mask(volume: np.ndarray, background: np.ndarray, near_head: np.ndarray, zscore: float = 10.0
                  ) -> np.ndarray:
    """Mortamet's QI1 artifact detection as MRIQC does it: background standardised by its MAD (of the
    non-zero voxels), voxels above `zscore`, not `near_head`, opened (3D, 6-connectivity)."""
    art = np.zeros(volume.shape, dtype=bool)
    pos = volume[background & (volume > 0)]
    if pos.size < 10:
        return art
    sample = pos[:: max(1, pos.size // 200_000)].astype(np.float64)  # the noise floor, not a metric
    spread = float(np.median(np.abs(sample - np.median(sample)))) / 0.6744897501960817
    if spread <= 0:
        return art
    art = (volume > zscore * spread) & background & ~near_head
    if art.any():
        zz, yy, xx = (np.flatnonzero(art.any(axis=ax)) for ax in ((1, 2), (0, 2), (0, 1)))
        box = (slice(max(zz[0] - 1, 0), zz[-1] + 2), slice(max(yy[0] - 1, 0), yy[-1] + 2),
               slice(max(xx[0] - 1, 0), xx[-1] + 2))
        opened = nd.binary_opening(art[box], nd.generate_binary_structure(3, 1))
        art[:] = False
        art[box] = opened
    return art


def compute_masks(volume: np.ndarray, spacing: tuple[float, float, float], *, closing_mm: float = 4.0,
                  artifact_margin_mm: float = 10.0, zscore: float = 10.0, levels: Levels | None = None) -> Masks:
    """All masks of a magnitude volume (slices, rows, columns) with voxel spacing (mm, same order);
    `levels`: the volume's integer levels when known (`Levels.of`)."""
    v = np.asarray(volume, dtype=np.float32)
    head, t = head_mask(v, spacing, closing_mm, levels=levels)
    return background_masks(v, spacing, head, t, artifact_margin_mm=artifact_margin_mm, zscore=zscore)


def background_masks(volume: np.ndarray, spacing: tuple[float, float, float], head: np.ndarray, threshold: float, *,
                     artifact_margin_mm: float = 10.0, zscore: float = 10.0) -> Masks:
    """The masks around a head mask (rotation padding, air, artifacts): compute_masks after head_mask."""
    v = np.asarray(volume, dtype=np.float32)
    rot = rotation_mask(v)
    background = ~head & ~rot
    r = max(1, int(round(artifact_margin_mm / max(min(spacing[1], spacing[2]), 1e-3))))
    near_head = _morph_2d(head, cv2.MORPH_DILATE, r, cv2.MORPH_RECT)  # a square margin: separable, fast
    art = artifact_mask(v, background, near_head, zscore)
    air = background & ~art
    return Masks(head=head, air=air, artifact=art, rotation=rot, threshold=threshold)
