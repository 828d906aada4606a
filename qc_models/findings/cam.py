"""Grad-CAM per label with MONAI's implementation (`monai.visualize.GradCAM`): the last conv block's
activations weighed by the gradient of the label's logit, rectified, scaled to [0, 1] per image and
resampled to the input's grid. Relative heat within one image: it says where the network's evidence
for the label is strongest, not that a finding is there (the probability says that)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from monai.visualize import GradCAM
from torch import nn

from qc_models.findings.network import CAM_LAYER
from qc_models.threads import within_openmp_limit


class LabelCam:
    """Grad-CAM of one network, for any of its labels. Made once per network: MONAI registers its
    hooks on the target layer when constructed and never removes them, so a new GradCAM per call
    would pile hooks up (each forward pass then runs them all)."""

    def __init__(self, model: nn.Module) -> None:
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


def to_grid(heat: torch.Tensor, shape: tuple[int, int]) -> np.ndarray:
    """One (1, H, W) heatmap resampled bilinearly to (rows, cols), float32 in [0, 1]."""
    up = F.interpolate(heat[None].float(), size=tuple(shape), mode="bilinear", align_corners=False)[0, 0]
    return np.clip(up.numpy(), 0.0, 1.0).astype(np.float32)
