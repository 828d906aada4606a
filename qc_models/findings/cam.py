"""Heatmaps per label: where in the image the network's evidence for a label is (docs/ai.md, "What
the heatmap means"). Three methods, one chosen per model by the pointing game on the validation split
(the card's `heatmap`):

- `logit_map` (default): the network's own cell logits (`FindingsNet.cell_logits`), the map its
  image logit is the log-sum-exp pool of: the cells that score highest are the ones that made the
  call, so the heatmap is faithful by construction. Heat is how far a cell rises above the image's
  median cell (rectified, scaled to [0, 1] per image). One forward pass, no backward.
- `gradcam`: MONAI's `monai.visualize.GradCAM` on the last conv block (positive evidence only), an
  alternative for comparison and for other networks: on this log-sum-exp head its maps saturate or are
  flat (docs/ai.md).
- `occlusion`: the drop of the label's probability when a patch of the input is replaced by a blurred
  copy of the image (occlusion sensitivity, as `monai.visualize.OcclusionSensitivity`, with a blur
  instead of a constant so the lung field around a patch stays plausible); one forward pass per patch.

All are relative heat within one image: where the evidence is strongest, not that a finding is there
(the probability says that).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from qc_models.threads import within_openmp_limit

#: The heatmap methods `heatmaps` knows, default first.
METHODS = ("logit_map", "gradcam", "occlusion")
#: Occlusion patch side and stride as fractions of the input side (16 and 8 pixels at 128).
OCCLUSION_PATCH, OCCLUSION_STRIDE = 1 / 8, 1 / 16


class LabelCam:
    """Grad-CAM of one network, for any of its labels. Made once per network: MONAI registers its
    hooks on the target layer when constructed and never removes them, so a new GradCAM per call
    would pile hooks up (each forward pass then runs them all)."""

    def __init__(self, model: nn.Module) -> None:
        from monai.visualize import GradCAM

        from qc_models.findings.network import CAM_LAYER

        self.model = model
        self.cam = GradCAM(nn_module=model, target_layers=CAM_LAYER)

    def __call__(self, batch: torch.Tensor, label_index: int) -> torch.Tensor:
        """(n, 1, H, W) heat in [0, 1] on the network's input grid; the network stays in eval mode
        (batch statistics are not touched)."""
        within_openmp_limit()  # backward hangs when torch asks OpenMP for more threads than allowed
        self.model.eval()
        with torch.enable_grad():
            heat = self.cam(x=batch.detach(), class_idx=label_index)
        return heat.detach().clamp_(0.0, 1.0)


def _per_image_unit(heat: torch.Tensor) -> torch.Tensor:
    """(n, L, h, w) rectified and divided by each map's maximum (an all-zero map stays zero)."""
    heat = heat.clamp(min=0.0)
    top = heat.amax(dim=(2, 3), keepdim=True)
    return torch.where(top > 0, heat / top.clamp(min=1e-12), torch.zeros_like(heat))


@torch.no_grad()
def logit_maps(net: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """(n, L, h, w) heat in [0, 1] on the cell grid for every label at once: each cell's logit above
    the image's median cell (`net.cell_logits`, what the image's logit is pooled from)."""
    net.eval()
    cells = net.cell_logits(batch)
    return _per_image_unit(cells - cells.flatten(2).median(dim=2).values[:, :, None, None])


@torch.no_grad()
def occlusion_maps(net: nn.Module, batch: torch.Tensor, patch: float = OCCLUSION_PATCH,
                   stride: float = OCCLUSION_STRIDE) -> torch.Tensor:
    """(n, L, S, S) heat in [0, 1] on the input grid: the mean drop of each label's probability over
    the patches that covered a pixel, a patch replaced by a Gaussian blur (sigma = patch side) of the
    image."""
    net.eval()
    n, _, size, _ = batch.shape
    side, step = max(2, round(size * patch)), max(1, round(size * stride))
    base = torch.sigmoid(net(batch))                          # (n, L)
    blurred = _blur(batch, float(side))
    starts = list(range(0, size - side + 1, step))
    if starts[-1] != size - side:
        starts.append(size - side)
    drop = torch.zeros((n, base.shape[1], size, size))
    cover = torch.zeros((1, 1, size, size))
    for y in starts:
        occluded = []
        for x in starts:
            copy = batch.clone()
            copy[:, :, y:y + side, x:x + side] = blurred[:, :, y:y + side, x:x + side]
            occluded.append(copy)
        probs = torch.sigmoid(net(torch.cat(occluded))).reshape(len(starts), n, -1)  # (xs, n, L)
        for k, x in enumerate(starts):
            drop[:, :, y:y + side, x:x + side] += (base - probs[k])[:, :, None, None]
            cover[:, :, y:y + side, x:x + side] += 1
    return _per_image_unit(drop / cover)


def _blur(batch: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur (reflected border) of (n, 1, S, S)."""
    radius = int(3 * sigma)
    radius = min(radius, batch.shape[-1] - 1)
    t = torch.arange(-radius, radius + 1, dtype=batch.dtype)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    out = F.pad(batch, (radius, radius, 0, 0), mode="reflect")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1))
    out = F.pad(out, (0, 0, radius, radius), mode="reflect")
    return F.conv2d(out, kernel.view(1, 1, -1, 1))


def to_grid(heat: torch.Tensor, shape: tuple[int, int]) -> np.ndarray:
    """One (1, H, W) heatmap resampled bilinearly to (rows, cols), float32 in [0, 1]."""
    up = F.interpolate(heat[None].float(), size=tuple(shape), mode="bilinear", align_corners=False)[0, 0]
    return np.clip(up.numpy(), 0.0, 1.0).astype(np.float32)
