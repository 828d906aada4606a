"""The findings CNN: four 3x3 conv blocks and a linear head on the last block's global average and
global maximum, one logit per label. The maximum lets a finding a few cells wide (a nodule) speak
without being averaged away over the whole chest; the average carries the extended ones (an
effusion). Small on purpose (~60k parameters, ~0.25 MB of float32): the synthetic findings are
contrast blobs and fluid levels that a shallow net learns from a few hundred radiographs, the
weights ship inside the repository, and CPU inference stays cheap. The last conv block (`cam_layer`)
keeps 1/8 of the input's side (16 x 16 at 128, 24 x 24 at 192): the grid of the heatmaps.
"""
from __future__ import annotations

import torch
from torch import nn

#: Side of the square grid the network sees (the radiograph is resampled to it).
INPUT_SIZE = 128
#: Name of the module whose activations Grad-CAM weighs (MONAI's `target_layers`).
CAM_LAYER = "features.3"


def _block(cin: int, cout: int, pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class FindingsNet(nn.Module):
    """(batch, 1, INPUT_SIZE, INPUT_SIZE) in [0, 1] -> (batch, n_labels) logits."""

    def __init__(self, n_labels: int, width: int = 16) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(_block(1, w, True), _block(w, 2 * w, True), _block(2 * w, 4 * w, True),
                                      _block(4 * w, 4 * w, False))
        self.head = nn.Linear(8 * w, n_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        return self.head(torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1))
