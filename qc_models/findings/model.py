"""The findings model without the platform's types: a `FindingsNet` with its labels and model card,
answering probabilities, per-label heatmaps (cam.METHODS) on each image's own grid and box proposals.
`plugin` wraps it in the `curation.assist.plugin` interface; training and benchmarks use it directly.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qc_models.findings.boxes import peak_component_box
from qc_models.findings.cam import METHODS, LabelCam, logit_maps, occlusion_maps, to_grid
from qc_models.findings.network import INPUT_SIZE, FindingsNet
from qc_models.findings.preprocess import to_batch

#: The shipped weights (state dict, labels, card) and their card as JSON beside them.
WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "findings_chest.pt"
#: Probability from which a regional label gets a box proposal.
BOX_THRESHOLD = 0.5
#: Format of the weights file: 2 is the multiple-instance network (cell logit map, log-sum-exp pool);
#: files without it hold the first network (linear head on global pooling), which `load` refuses.
FORMAT = 2


@dataclass
class Answer:
    """One image's answer: probabilities, heatmaps (float32 on the image's grid, [0, 1]) and boxes
    (label, x0, y0, x1, y1, score) in pixels of the image, half-open."""

    probabilities: dict[str, float]
    heatmaps: dict[str, np.ndarray] = field(default_factory=dict)
    boxes: list[tuple[str, int, int, int, int, float]] = field(default_factory=list)


class ChestFindings:
    """`net` in eval mode, `labels` in logit order, `regional` (labels that get boxes), `card`, the
    input side `size` the network was trained at and the `heatmap` method (cam.METHODS)."""

    def __init__(self, net: FindingsNet, labels: Sequence[str], regional: Sequence[str], card: dict[str, Any],
                 size: int = INPUT_SIZE, heatmap: str = METHODS[0]) -> None:
        if heatmap not in METHODS:
            raise ValueError(f"heatmap method {heatmap!r} is not one of {METHODS}")
        self.net, self.labels, self.regional, self.card = net.eval(), tuple(labels), tuple(regional), card
        self.size, self.heatmap = int(size), heatmap
        self._cam: LabelCam | None = None

    def heat(self, batch: torch.Tensor) -> torch.Tensor:
        """(n, L, h, w) heat in [0, 1] for every label with the model's method, on the method's grid."""
        if self.heatmap == "logit_map":
            return logit_maps(self.net, batch)
        if self.heatmap == "occlusion":
            return occlusion_maps(self.net, batch)
        if self._cam is None:
            self._cam = LabelCam(self.net)
        return torch.cat([self._cam(batch, k) for k in range(len(self.labels))], dim=1)

    @torch.no_grad()
    def probabilities(self, batch: torch.Tensor) -> np.ndarray:
        """(n, n_labels) sigmoid outputs for a preprocessed batch."""
        return torch.sigmoid(self.net.eval()(batch)).numpy().astype(np.float64)

    def answer(self, images: Sequence[np.ndarray], heatmaps: bool = True) -> list[Answer]:
        """Probabilities for every image; with `heatmaps`, a heatmap per label (`heat`) on each image's
        grid and boxes for regional labels above BOX_THRESHOLD."""
        if not len(images):  # MONAI's Grad-CAM cannot reshape an empty batch
            return []
        batch = to_batch(images, self.size)
        probs = self.probabilities(batch)
        answers = [Answer({lab: float(p[k]) for k, lab in enumerate(self.labels)}) for p in probs]
        if not heatmaps:
            return answers
        heat = self.heat(batch)
        for k, label in enumerate(self.labels):
            for i, (image, ans) in enumerate(zip(images, answers)):
                grid = to_grid(heat[i, k:k + 1], np.asarray(image).shape)
                ans.heatmaps[label] = grid
                if label in self.regional and ans.probabilities[label] >= BOX_THRESHOLD:
                    box = peak_component_box(grid)
                    if box is not None:
                        ans.boxes.append((label, *box, ans.probabilities[label]))
        return answers


def save(model: ChestFindings, path: Path) -> None:
    """Weights, labels and card in one torch file (float32 state dict), the card also as JSON beside
    it (`<stem>.card.json`) for people and for the repository's review."""
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().clone() for k, v in model.net.state_dict().items()}
    torch.save({"format": FORMAT, "state_dict": state, "labels": list(model.labels), "regional": list(model.regional),
                "width": model.net.features[0][0].out_channels, "r": model.net.r, "size": model.size,
                "heatmap": model.heatmap, "card": model.card}, path)
    card_path(path).write_text(json.dumps(model.card, indent=2, sort_keys=True) + "\n")


def card_path(weights: Path) -> Path:
    return weights.with_name(weights.stem + ".card.json")


def load(path: Path = WEIGHTS) -> ChestFindings:
    """The model saved by `save` (only tensors and plain values are unpickled: weights_only). A file of
    another format (the first, global-pooling network) is refused with what to do about it."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if blob.get("format") != FORMAT:
        raise ValueError(f"{path} holds findings weights of format {blob.get('format', 1)}, this model reads format "
                         f"{FORMAT} (the multiple-instance network): retrain it with `curate train findings` "
                         "(docs/ai.md)")
    net = FindingsNet(len(blob["labels"]), width=int(blob["width"]), r=float(blob["r"]))
    net.load_state_dict(blob["state_dict"])
    return ChestFindings(net, blob["labels"], blob["regional"], blob["card"], size=int(blob["size"]),
                         heatmap=str(blob["heatmap"]))
