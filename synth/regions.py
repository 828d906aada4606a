"""Regions of planted findings in the pixel grid of an image as written: bounding boxes, run-length
encoded masks, and the contrast the finding makes against its surroundings.

Why run-length encoding inside ground_truth.json rather than mask files: any image file written
under the site folder would be ingested as if a hospital had sent it, and a lesion of a few pixels
per slice is a handful of runs. Encoding (`rle-row-major/1`): {"size": [rows, columns], "counts":
[n0, n1, n2, ...]}, the lengths of alternating runs of 0 and 1 over the frame in row-major (C)
order, starting with a run of 0 (which may be 0 long); the counts sum to rows x columns.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.ndimage import binary_dilation

MASK_ENCODING = "rle-row-major/1"
#: Width (pixels) of the ring around a region (or of the frame around a bare box) that stands for its
#: surroundings: close enough that the anatomy beneath is the same, wide enough to average noise.
SURROUND_PX = 3


def rle_encode(mask: np.ndarray) -> dict[str, Any]:
    """Row-major run lengths of a 2D boolean mask, starting with a run of background."""
    flat = np.asarray(mask, dtype=bool).ravel()
    edges = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate(([0], edges, [flat.size]))
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts.insert(0, 0)
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(c) for c in counts]}


def rle_decode(rle: dict[str, Any]) -> np.ndarray:
    """The boolean mask of `rle_encode`'s output."""
    rows, cols = rle["size"]
    counts = np.asarray(rle["counts"], dtype=np.int64)
    if int(counts.sum()) != rows * cols:
        raise ValueError(f"run lengths sum to {int(counts.sum())}, not {rows} x {cols}")
    values = np.arange(counts.size) % 2 == 1
    return np.repeat(values, counts).reshape(rows, cols)


def box_of(mask: np.ndarray) -> list[int] | None:
    """[x, y, w, h] (x = column, y = row of the top-left pixel) of a 2D mask; None when empty."""
    rr = np.flatnonzero(mask.any(axis=1))
    if not rr.size:
        return None
    cc = np.flatnonzero(mask.any(axis=0))
    return [int(cc[0]), int(rr[0]), int(cc[-1] - cc[0] + 1), int(rr[-1] - rr[0] + 1)]


def inside_and_surround(shape: tuple[int, int], box: list[int], mask: np.ndarray | None = None,
                        margin: int = SURROUND_PX) -> tuple[np.ndarray, np.ndarray]:
    """The region's pixels and its surroundings: with a mask, the mask and the ring of pixels within
    `margin` (chessboard distance) of it; with a box only, the box and a frame `margin` wide around
    it. Both clipped to the image."""
    x, y, w, h = box
    near = np.zeros(shape, bool)
    near[max(y - margin, 0):y + h + margin, max(x - margin, 0):x + w + margin] = True
    if mask is None:
        inside = np.zeros(shape, bool)
        inside[max(y, 0):y + h, max(x, 0):x + w] = True
        return inside, near & ~inside
    inside = np.asarray(mask, bool)
    crop = (slice(max(y - margin, 0), y + h + margin), slice(max(x - margin, 0), x + w + margin))
    grown = np.zeros(shape, bool)
    grown[crop] = binary_dilation(inside[crop], np.ones((3, 3), bool), iterations=margin)
    return inside, grown & ~inside


def contrast(image: np.ndarray, box: list[int], mask: np.ndarray | None = None, margin: int = SURROUND_PX) -> float:
    """Mean of the region minus mean of its surroundings (`inside_and_surround`), in the image's units."""
    img = np.asarray(image, dtype=np.float64)
    inside, around = inside_and_surround(img.shape, box, mask, margin)
    return float(img[inside].mean() - img[around].mean())


def mask_region(mask: np.ndarray, clean: np.ndarray) -> dict[str, Any] | None:
    """Box, encoded mask and planted contrast (on the noise-free image `clean`) of one slice's mask;
    None when the finding is not in this slice."""
    box = box_of(mask)
    if box is None:
        return None
    return {"box": box, "mask": rle_encode(mask), "contrast": round(contrast(clean, box, mask), 3)}
