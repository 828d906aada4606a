"""Box proposals from a heatmap: the connected component of heat >= `level` that holds the
heatmap's maximum, as a half-open pixel box. One box per regional label, only where the label's
probability passes the threshold: a proposal for the reader to accept, edit or reject, not a
segmentation (the heatmaps' grid is coarse: 1/8 of the network's input)."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

#: Heat (relative to the image's maximum) above which pixels belong to the proposed region.
LEVEL = 0.5


def peak_component_box(heat: np.ndarray, level: float = LEVEL) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1), half-open, of the component of `heat >= level * max` holding the maximum;
    None for a flat (all-zero) heatmap."""
    top = float(heat.max(initial=0.0))
    if top <= 0:
        return None
    components, _ = ndimage.label(heat >= level * top)
    row, col = np.unravel_index(int(np.argmax(heat)), heat.shape)
    rows, cols = np.nonzero(components == components[row, col])
    return int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1
