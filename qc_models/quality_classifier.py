"""Quality classifier: p(degraded) of a series from its image-quality metrics (and its kind).

Features are built by `curation.quality.features` (log-scaled resolution-free metrics, kind one-hot,
contrast, field strength and 2D/3D); the weights file also carries the clean reference distribution
of every metric per kind and per kind at an acquisition bin (field, pixel size, slice thickness),
which the decision uses to say which metric is off, by how much, and what was expected.

Card. Training data (`curate train quality`, table include/quality/training_table.csv): the structural
MR series of synthetic sites 101, 202, 303 (6 patients, 128x128x24, three vendors) with augmented
defects, and the training part of synth.acquisitions (seed 1901, 12 settings: matrices 96-512, slices
1-6 mm, 1.5/3 T, 2D/3D; every kind clean with each of the three vendors' protocols, and with noise,
ghosting, blur and bias at severities 1-5).
Evaluation: `python -m training.quality evaluate` on held-back settings (matrices 160/320, slices
1.5/4 mm, both fields; seed 2602, every kind clean with each vendor's protocol) -- the confusion is
in docs/benchmarks.md.

DWI, ADC and DCE have one small model each (`kind_weights`, the same class and file format; features
curation.quality.features.KIND_METRICS): trained by `python -m training.quality_4d train` on the 4D
acquisition grid of synth.acquisitions (clean, and with each kind's defects at severities 1-5),
evaluated by `python -m training.quality_4d evaluate` on held-back settings. Not covered: real
scanner data, multi-shell diffusion (b-values other than 0 and one high b), perfusion (DSC),
vendor reconstruction filters (a sharpening filter makes fwhm_edge read below 0.9), partial-volume-rich anatomy at 6 mm slices.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qc_models import mlp

WEIGHTS = Path(__file__).resolve().parent / "weights" / "quality_classifier.pt"


def kind_weights(kind: str) -> Path:
    """Weights of a kind's own model (DWI, ADC, DCE: `python -m training.quality_4d train`)."""
    return WEIGHTS.with_name(f"quality_{kind.lower()}.pt")

HPARAMS: dict[str, Any] = {"hidden": [32, 16], "epochs": 800, "lr": 5e-3, "weight_decay": 1e-3, "seed": 7, "noise": 0.1}


def train(x: np.ndarray, degraded: Sequence[int], feature_names: Sequence[str], meta: dict[str, Any] | None = None,
          **overrides: Any) -> tuple[mlp.MLP, dict[str, Any]]:
    """Train on (n, d) features and 0/1 labels (1 = degraded); class-balanced."""
    hp = {**HPARAMS, **overrides}
    y = np.asarray(degraded, dtype=np.int64)
    counts = np.bincount(y, minlength=2).astype(np.float64)
    weight = counts.sum() / np.maximum(counts, 1) / 2.0
    model = mlp.train_mlp(x, y, 2, hidden=hp["hidden"], epochs=hp["epochs"], lr=hp["lr"],
                          weight_decay=hp["weight_decay"], seed=hp["seed"], class_weight=weight, noise=hp["noise"])
    full = {"task": "quality", "classes": ["clean", "degraded"], "feature_names": list(feature_names), "hparams": hp,
            "n_train": int(len(y)), "n_degraded": int(y.sum()), **(meta or {})}
    return model, full


KIND_HPARAMS: dict[str, Any] = {"hidden": [12], "epochs": 600, "lr": 1e-2, "weight_decay": 1e-3, "seed": 7, "noise": 0.1}


def train_kind(x: np.ndarray, degraded: Sequence[int], feature_names: Sequence[str], meta: dict[str, Any]
               ) -> tuple[mlp.MLP, dict[str, Any]]:
    """A kind's own model: few features, a few hundred rows, so one small hidden layer."""
    return train(x, degraded, feature_names, meta, **KIND_HPARAMS)


class QualityModel:
    """Loaded weights, their feature names and the clean reference statistics per kind."""

    def __init__(self, path: str | Path = WEIGHTS) -> None:
        self.model, self.meta = mlp.load(path)
        self.feature_names: list[str] = list(self.meta["feature_names"])
        self.kinds: list[str] = list(self.meta.get("kinds", []))
        self.reference: dict[str, dict[str, dict[str, float]]] = self.meta.get("reference", {})
        self.fill: dict[str, float] = self.meta.get("fill", {})

    def p_degraded(self, x: np.ndarray) -> np.ndarray:
        """Probability of the 'degraded' class per row."""
        return mlp.predict_proba(self.model, x)[:, 1]
