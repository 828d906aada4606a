"""The shipped findings model as a plugin: `qc_models.findings.plugin.load()` satisfies the interface
of curation.assist.plugin (info with its card, `predict` answers that `check_prediction` accepts, on
each input's own grid), its weights ship small, and it finds the findings planted in fresh synthetic
radiographs better than chance, with heatmaps that point at the planted regions."""
from __future__ import annotations

import numpy as np
import pytest

from curation.assist.plugin import FindingsModel, ModelInput, check_prediction
from curation.vocabulary import SeriesKind
from qc_models.findings import model as findings_model
from qc_models.findings.plugin import load
from synth.identity import rng_for
from synth.chest import shadow_masks
from synth.xray import XRAY_EXTENT_MM, chest_image_with_defect
from training.findings import cohort_findings

#: A seed no training cohort used: these radiographs are new to the model.
SEED = 424242


@pytest.fixture(scope="module")
def plugin():
    return load()


def radiograph(index: int, n: int = 256) -> tuple[np.ndarray, object]:
    chest = cohort_findings(SEED, index)
    image, _ = chest_image_with_defect(n, chest, rng_for(SEED, "xr", index, 3))
    return image.astype(np.float32), chest


def test_shipped_weights_and_card():
    import json

    assert findings_model.WEIGHTS.stat().st_size < 2_000_000
    card = json.loads(findings_model.card_path(findings_model.WEIGHTS).read_text())
    shipped = findings_model.load()
    assert card == shipped.card  # the JSON beside the weights is the card inside them
    assert card["training"]["input_size"] == shipped.size and card["heatmap"]["method"] == shipped.heatmap
    assert card["data"]["release"] and card["training"]["seed"] is not None
    for split in ("validation", "test"):
        block = card["metrics"][split]
        assert set(block["labels"]) == set(shipped.labels)
        assert set(block["pointing_game"]) == set(shipped.regional)


def test_plugin_satisfies_the_interface(plugin):
    assert isinstance(plugin, FindingsModel)
    info = plugin.info
    assert info.name == "chest" and info.version and set(info.labels) == {"nodule", "opacity", "effusion"}
    assert set(info.regional_labels) <= set(info.labels)
    assert set(info.kinds) == {SeriesKind.CR, SeriesKind.DX}
    for key in ("data", "metrics", "intended_use", "limits"):
        assert info.card[key]
    assert info.card["data"]["manifest_sha256"]
    small = np.asarray(radiograph(0, n=200)[0])
    inputs = [ModelInput(radiograph(i)[0], (1.76, 1.76), "CR", SeriesKind.CR, {"item": f"x{i}", "instance_position": 0,
                                                                               "frame": 0}) for i in range(3)]
    inputs.append(ModelInput(small, None, "DX", SeriesKind.DX, {"item": "small", "instance_position": 0, "frame": 0}))
    predictions = plugin.predict(inputs)
    assert len(predictions) == len(inputs)
    for image, prediction in zip(inputs, predictions):
        check_prediction(info, image, prediction)
        assert set(prediction.probabilities) == set(info.labels)
        assert set(prediction.heatmaps) == set(info.labels)
    assert plugin.predict([]) == []


#: Bars on 40 fresh radiographs, below what the shipped weights (seed 0, 256 px, logit map) measure
#: there (2026-12-05): AUC 1.00 for every label; pointing opacity 16/16, effusion 16/16, nodule 18/20
#: (chance: the finding's share of the image, a few per cent).
AUC_BAR = {"opacity": 0.9, "effusion": 0.9, "nodule": 0.9}
POINTING_BAR = {"opacity": 0.75, "effusion": 0.75, "nodule": 0.7}


def test_plugin_finds_planted_findings_and_points_at_them(plugin):
    from sklearn.metrics import roc_auc_score

    from qc_models.findings.evaluation import pointing_hit

    images, chests = [], []
    for i in range(40):
        image, chest = radiograph(i)
        images.append(ModelInput(image, None, "DX", SeriesKind.DX, {"item": str(i)}))
        chests.append(chest)
    predictions = plugin.predict(images)
    measured = {}
    for label in plugin.info.labels:
        y = [getattr(chest, label) is not None for chest in chests]
        auc = roc_auc_score(y, [pr.probabilities[label] for pr in predictions])
        hits = [pointing_hit(pr.heatmaps[label], shadow_masks(chest, 256, XRAY_EXTENT_MM)[label])
                for pr, chest in zip(predictions, chests) if label in shadow_masks(chest, 256, XRAY_EXTENT_MM)]
        measured[label] = (round(auc, 3), round(float(np.mean(hits)), 3))
    for label, (auc, rate) in measured.items():
        assert auc > AUC_BAR[label], measured
        assert rate >= POINTING_BAR[label], measured
