"""The shipped findings model as a `curate.findings_models` plugin (entry point `chest`): `load()`
returns an object with `info` (`ModelInfo`, the card included) and `predict(batch)` that answers
`curation.assist.plugin` types. This module is the adapter: the model itself (`model`) knows no
platform types, so the same weights serve training, benchmarks and the pipeline.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from curation.assist.plugin import Box, ModelInfo, ModelInput, Prediction
from qc_models.findings.model import WEIGHTS, ChestFindings, load as load_weights


class ChestFindingsPlugin:
    """A `FindingsModel` over a `ChestFindings`."""

    def __init__(self, model: ChestFindings) -> None:
        card = model.card
        self.model = model
        self.info = ModelInfo(name=str(card.get("name", "chest")), version=str(card.get("version", "0")),
                              labels=tuple(model.labels), regional_labels=tuple(model.regional),
                              kinds=tuple(card.get("kinds", ())), card=card)

    def predict(self, batch: Sequence[ModelInput]) -> list[Prediction]:
        """Probabilities, a heatmap per label (the card's method) on each input's grid, boxes for regional labels
        the model calls present (one per label, from the heatmap's peak component)."""
        answers = self.model.answer([item.pixels for item in batch])
        return [Prediction(probabilities=a.probabilities, heatmaps=a.heatmaps,
                           boxes=[Box(label, float(x0), float(y0), float(x1), float(y1), float(score))
                                  for label, x0, y0, x1, y1, score in a.boxes])
                for a in answers]


def load(weights: Path = WEIGHTS) -> ChestFindingsPlugin:
    """The entry point's factory: the shipped weights (or `weights`) as a findings model."""
    return ChestFindingsPlugin(load_weights(weights))
