"""Pixels as the interface hands them (display orientation, any size, any stored range) -> the
network's input: robust window to [0, 1] (1st..99th percentile, so a burned-in marker or a
collimator edge does not set the scale) and area resampling to INPUT_SIZE x INPUT_SIZE."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from qc_models.findings.network import INPUT_SIZE


def window(pixels: np.ndarray) -> np.ndarray:
    """float32 in [0, 1]: the 1st..99th percentile of the image stretched over the range."""
    a = np.asarray(pixels, dtype=np.float32)
    lo, hi = np.percentile(a, (1.0, 99.0))
    if not np.isfinite(hi - lo) or hi - lo <= 0:
        return np.zeros_like(a)
    return np.clip((a - lo) / (hi - lo), 0.0, 1.0)


def to_input(pixels: np.ndarray, size: int = INPUT_SIZE) -> torch.Tensor:
    """One image (rows, cols) -> (1, size, size) float32 tensor."""
    x = torch.from_numpy(window(pixels))[None, None]
    return F.interpolate(x, size=(size, size), mode="area")[0]


def to_batch(images: Sequence[np.ndarray], size: int = INPUT_SIZE) -> torch.Tensor:
    """Images of any sizes -> (n, 1, size, size)."""
    return torch.stack([to_input(p, size) for p in images]) if images else torch.zeros((0, 1, size, size))
