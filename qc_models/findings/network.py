"""The findings CNN as a multiple-instance classifier: a 5x5 stride-2 stem and three 3x3 conv blocks
give a grid of cells (1/8 of the input's side: 32 x 32 at 256, ~14 mm on a 450 mm field); a 1x1 conv
gives every cell its own logit per label (the *logit map*), and the image's logit is the log-sum-exp
pool of its cells (Wang et al., ChestX-ray8, 2017): a smooth maximum, so the image's call is made by
its highest-scoring cells and the heatmap is that logit map itself -- faithful by construction, no
attribution method between the call and what is shown.

Why this shape: a nodule is ~6 mm in radius (~3.4 px at 256); the stride-2 stem sees it at the
radiograph's own resolution while the grid after it keeps the cost close to a 128-px network. Small
on purpose (~60k parameters, ~0.25 MB of float32): the weights ship inside the repository and CPU
inference stays cheap.
"""
from __future__ import annotations

import math

import torch
from torch import nn

#: Side of the square grid the network sees (the radiograph is resampled to it).
INPUT_SIZE = 256
#: Name of the module whose activations Grad-CAM weighs (MONAI's `target_layers`): the cells.
CAM_LAYER = "features.3"
#: Sharpness r of the log-sum-exp pool (ChestX-ray8 uses r in 5-10): r -> 0 is the mean, r -> inf the maximum.
LSE_R = 8.0


def _block(cin: int, cout: int, pool: bool, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
                               nn.BatchNorm2d(cout), nn.ReLU()]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


def lse_pool(cells: torch.Tensor, r: float = LSE_R) -> torch.Tensor:
    """(n, L, h, w) cell logits -> (n, L) image logits: (1/r) log(mean exp(r s)), between the mean and
    the maximum of the cells (the mean keeps it independent of the grid's size)."""
    flat = cells.flatten(2)
    return (torch.logsumexp(r * flat, dim=2) - math.log(flat.shape[2])) / r


class FindingsNet(nn.Module):
    """(batch, 1, S, S) in [0, 1] -> (batch, n_labels) logits, S a multiple of 8; `cell_logits` gives
    the (batch, n_labels, S/8, S/8) map the logits are pooled from."""

    def __init__(self, n_labels: int, width: int = 16, r: float = LSE_R) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(_block(1, w, True, kernel=5, stride=2), _block(w, 2 * w, True),
                                      _block(2 * w, 4 * w, False), _block(4 * w, 4 * w, False))
        self.cells = nn.Conv2d(4 * w, n_labels, 1)
        self.r = float(r)

    def cell_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Each cell's logit per label: the heatmap, and all the image's logit is made of."""
        return self.cells(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lse_pool(self.cell_logits(x), self.r)
