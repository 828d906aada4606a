"""Series-kind classifier on header features (no text): covers series whose description is missing
or misleading. Features are built by `curation.classify.features`; this module sees numbers only."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qc_models import mlp

WEIGHTS = Path(__file__).resolve().parent / "weights" / "series_classifier.pt"
#: Training settings (part of the weights' meta, so a retrain with other settings is visible).
HPARAMS: dict[str, Any] = {"hidden": [48, 32], "epochs": 500, "lr": 1e-2, "weight_decay": 1e-4, "seed": 4, "noise": 0.05}


def train(x: np.ndarray, labels: Sequence[str], classes: Sequence[str], feature_names: Sequence[str],
          meta: dict[str, Any] | None = None, **overrides: Any) -> tuple[mlp.MLP, dict[str, Any]]:
    """Train on (n, d) features and kind labels; returns the model and the meta to save with it."""
    hp = {**HPARAMS, **overrides}
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[k] for k in labels], dtype=np.int64)
    counts = np.bincount(y, minlength=len(classes)).astype(np.float64)
    weight = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / len(classes), 0.0)
    model = mlp.train_mlp(x, y, len(classes), hidden=hp["hidden"], epochs=hp["epochs"], lr=hp["lr"],
                          weight_decay=hp["weight_decay"], seed=hp["seed"], class_weight=weight, noise=hp["noise"])
    full_meta = {"task": "series_kind", "classes": list(classes), "feature_names": list(feature_names),
                 "hparams": hp, "n_train": int(len(y)), **(meta or {})}
    return model, full_meta


class SeriesKindModel:
    """Loaded weights + the class and feature names they were trained with."""

    def __init__(self, path: str | Path = WEIGHTS) -> None:
        self.model, self.meta = mlp.load(path)
        self.classes: list[str] = list(self.meta["classes"])
        self.feature_names: list[str] = list(self.meta["feature_names"])

    def check_features(self, names: Sequence[str]) -> None:
        if list(names) != self.feature_names:
            raise ValueError("series classifier weights were trained on other header features; retrain "
                             "with `curate train classifier`")

    def predict(self, x: np.ndarray) -> list[tuple[str, float, dict[str, float]]]:
        """(kind, probability, all probabilities) per row."""
        p = mlp.predict_proba(self.model, x)
        out = []
        for row in p:
            i = int(np.argmax(row))
            out.append((self.classes[i], float(row[i]), {c: float(v) for c, v in zip(self.classes, row)}))
        return out
