"""The findings-model plugin interface (docs/ai.md): what a model sees (`ModelInput`), what it answers
(`Prediction` with probabilities, heatmaps and boxes) and what it says about itself (`ModelInfo`).

The shipped chest model (qc_models/findings) and a site's own model implement `FindingsModel`; the
pipeline knows models only through this module and `curation.assist.registry`, so a site's model
needs no change to the platform. Plain dataclasses and numpy: a plugin need not import torch's
types or the platform's catalog to be called.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class ModelInput:
    """One 2D image the model sees. `pixels`: float32 (rows, cols), stored values after Rescale
    Slope/Intercept, MONOCHROME1 already inverted (higher = brighter on screen), colour as luminance.
    `ref`: where it came from, {"item": ..., "instance_position": int, "frame": int}."""

    pixels: np.ndarray
    pixel_spacing: tuple[float, float] | None
    modality: str
    kind: str
    ref: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Box:
    """A proposed region in pixel coordinates of the input image (x = column, y = row), half-open."""

    label: str
    x0: float
    y0: float
    x1: float
    y1: float
    score: float


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one input: label -> P(finding present), label -> heatmap (float32 in
    [0, 1] on the input's grid), and box proposals for regional labels."""

    probabilities: dict[str, float]
    heatmaps: dict[str, np.ndarray]
    boxes: list[Box]


@dataclass(frozen=True)
class ModelInfo:
    """Name, version, labels (label-schema names), the labels it proposes boxes for, the series
    kinds it accepts, and its model card (data version, manifest hash, metrics, intended use, limits)."""

    name: str
    version: str
    labels: tuple[str, ...]
    regional_labels: tuple[str, ...]
    kinds: tuple[str, ...]
    card: dict[str, Any]


@runtime_checkable
class FindingsModel(Protocol):
    """A findings model: `info`, and `predict` on a batch of inputs (one `Prediction` per input, in order)."""

    info: ModelInfo

    def predict(self, batch: Sequence[ModelInput]) -> list[Prediction]: ...


def check_prediction(info: ModelInfo, image: ModelInput, prediction: Prediction) -> None:
    """Refuse a plugin's answer that breaks the interface, naming the model and the input, before
    anything is stored or shown to a reader: unknown labels, probabilities or heat outside [0, 1],
    a heatmap off the input's grid, a box off the image or on a label without regions."""
    where = f"model {info.name} {info.version} on {image.ref}"
    unknown = set(prediction.probabilities) - set(info.labels)
    if unknown:
        raise ValueError(f"{where}: probabilities for labels it does not declare: {sorted(unknown)}")
    for label, p in prediction.probabilities.items():
        if not (np.isfinite(p) and 0.0 <= float(p) <= 1.0):
            raise ValueError(f"{where}: probability of {label} is {p}, not in [0, 1]")
    for label, heat in prediction.heatmaps.items():
        if label not in info.labels:
            raise ValueError(f"{where}: heatmap for undeclared label {label}")
        if heat.shape != image.pixels.shape:
            raise ValueError(f"{where}: heatmap of {label} is {heat.shape}, the input {image.pixels.shape}")
        if not np.all(np.isfinite(heat)) or heat.min(initial=0.0) < 0.0 or heat.max(initial=0.0) > 1.0:
            raise ValueError(f"{where}: heatmap of {label} is not in [0, 1]")
    rows, cols = image.pixels.shape
    for box in prediction.boxes:
        if box.label not in info.regional_labels:
            raise ValueError(f"{where}: box for {box.label}, which is not among its regional labels")
        if not (0 <= box.x0 < box.x1 <= cols and 0 <= box.y0 < box.y1 <= rows):
            raise ValueError(f"{where}: box {box} lies outside the {rows}x{cols} image or is empty")


__all__ = ["Box", "FindingsModel", "ModelInfo", "ModelInput", "Prediction", "check_prediction"]
