"""Mask regions: one label's pixels on one slice (or frame), run-length encoded inside a reading's
`rois` JSON, so a segmentation needs no table of its own (and no migration).

Encoding: the slice's pixels in row-major order (row 0 left to right, then row 1, ...), as the
lengths of alternating runs starting with a background run: `[bg, fg, bg, fg, ...]`. The first run
may be 0 (the mask starts at pixel 0), every later run is at least 1, and the runs sum to
rows x columns. One encoding per mask, so two equal masks store equal JSON.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: The most runs one mask may carry: every pixel of a 1024 x 1024 slice alternating would need
#: a million; a drawn region needs two per row it crosses.
MAX_RUNS = 1_048_576


class MaskEncodingError(ValueError):
    """The runs do not describe a mask of the stated size; the message says what is wrong."""


def encode(mask: np.ndarray) -> list[int]:
    """Runs of a 2-D boolean mask (the canonical encoding above)."""
    flat = np.asarray(mask, dtype=bool).ravel()
    edges = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], edges, [flat.size]])
    runs = np.diff(bounds).tolist()
    return ([0] + runs) if flat.size and flat[0] else runs


def check(runs: Sequence[int], rows: int, columns: int) -> None:
    """MaskEncodingError unless `runs` is a canonical encoding of a rows x columns mask."""
    if rows < 1 or columns < 1:
        raise MaskEncodingError(f"a mask needs rows and columns of at least 1 (got {rows} x {columns})")
    if not runs:
        raise MaskEncodingError("a mask needs at least one run")
    if len(runs) > MAX_RUNS:
        raise MaskEncodingError(f"{len(runs)} runs; at most {MAX_RUNS}")
    if any(isinstance(n, bool) or not isinstance(n, int) for n in runs):
        raise MaskEncodingError("runs must be whole numbers")
    if runs[0] < 0 or any(n < 1 for n in runs[1:]):
        raise MaskEncodingError("runs must be positive (only the first, background run may be 0)")
    total = sum(runs)
    if total != rows * columns:
        raise MaskEncodingError(f"runs cover {total} pixels, the {rows} x {columns} image has {rows * columns}")


def decode(runs: Sequence[int], rows: int, columns: int) -> np.ndarray:
    """The (rows, columns) boolean mask of checked runs."""
    check(runs, rows, columns)
    values = np.arange(len(runs)) % 2 == 1
    return np.repeat(values, np.asarray(runs, dtype=np.int64)).reshape(rows, columns)


def roi_mask(roi: dict[str, Any]) -> np.ndarray:
    """The full-slice boolean mask of a stored mask ROI (`rows`, `columns`, `rle`)."""
    return decode(roi["rle"], int(roi["rows"]), int(roi["columns"]))


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) in continuous pixel coordinates (x1, y1 exclusive); None for an empty mask."""
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


__all__ = ["MAX_RUNS", "MaskEncodingError", "bounding_box", "check", "decode", "encode", "roi_mask"]
