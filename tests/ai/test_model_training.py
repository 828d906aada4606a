"""The findings model's training from a release (training/findings.py): a tiny release built with the
platform's own stages (cohort -> ingest -> deid -> classify -> quality -> simulated readers ->
consensus -> published release), trained twice with one seed (same weights) and once with another
(different weights); the model card carries what it promises."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from curation.release.reader import open_release
from qc_models.findings import model as findings_model
from training import findings as training

PATIENTS = 12


@pytest.fixture(scope="module")
def tiny_release(tmp_path_factory):
    work = tmp_path_factory.mktemp("findings-release")
    built = training.build_release(work, "findings-tiny", patients=PATIENTS, say=lambda m: None)
    return open_release(built["store"], built["release"]), built


def _weights(model) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in model.net.state_dict().items()}


def test_release_has_consensus_and_held_out_split(tiny_release):
    release, built = tiny_release
    assert built["items"] == PATIENTS
    labels, regional = training.model_labels(release)
    assert labels == ["opacity", "effusion", "nodule"] and regional == labels
    assert "train" in release.splits() and set(release.splits()) & set(training.HELD_OUT)
    matrix = release.label_matrix(labels)
    assert matrix.notna().all().all() and 0 < matrix.to_numpy().sum() < matrix.size  # both answers occur


def test_training_is_deterministic_from_a_seed(tiny_release):
    release, _ = tiny_release
    a, card_a = training.train_from_release(release, seed=5, epochs=2)
    b, card_b = training.train_from_release(release, seed=5, epochs=2)
    c, _ = training.train_from_release(release, seed=6, epochs=2)
    wa, wb, wc = _weights(a), _weights(b), _weights(c)
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)
    assert any(not np.array_equal(wa[k], wc[k]) for k in wa)
    assert card_a["metrics"] == card_b["metrics"]
    assert torch.get_num_threads() >= 1 and not torch.are_deterministic_algorithms_enabled()  # restored


def test_model_card_fields_and_saved_size(tiny_release, tmp_path):
    release, _ = tiny_release
    model, card = training.train_from_release(release, seed=0, epochs=1)
    for key in ("name", "version", "labels", "regional_labels", "kinds", "data", "training", "metrics",
                "intended_use", "limits", "heatmap"):
        assert card[key], key
    assert card["data"]["release"] == f"{release.name}@{release.version}"
    assert card["data"]["manifest_sha256"] == release.manifest_sha256
    assert card["training"]["seed"] == 0
    held = next(iter(card["metrics"].values()))
    assert set(held["labels"]) == set(card["labels"])
    for block in held["labels"].values():
        assert {"auc", "calibration"} <= set(block) and {"ece", "brier", "reliability"} <= set(block["calibration"])
    out = tmp_path / "findings_chest.pt"
    findings_model.save(model, out)
    assert out.stat().st_size < 2_000_000
    again = findings_model.load(out)
    assert again.card == card and again.labels == model.labels
    x = torch.rand((2, 1, 128, 128))
    assert np.allclose(again.probabilities(x), model.probabilities(x))
    assert "localisation" in card["training"]["loss"]  # the release's consensus boxes were used


def test_consensus_boxes_become_regions_on_the_input_grid(tiny_release):
    """Every training image the consensus calls positive for a label with a consensus box gets that box
    as a region on the network's input grid; negative labels get none."""
    release, _ = tiny_release
    labels, _ = training.model_labels(release)
    train = training.load_split(release, "train", labels, 64)
    assert train.regions.shape == (len(train.images), len(labels), 64, 64)
    boxed = train.regions.flatten(2).amax(dim=2).numpy() > 0
    assert boxed.any() and not (boxed & (train.targets == 0)).any()


def test_old_weights_file_is_refused_with_a_reason(tmp_path):
    """A weights file of the first network (no `format`: linear head on global pooling) cannot be
    loaded into the multiple-instance network: `load` says so instead of failing on the state dict."""
    old = tmp_path / "old.pt"
    torch.save({"state_dict": {}, "labels": ["nodule"], "regional": ["nodule"], "width": 16, "size": 128,
                "heatmap": "gradcam", "card": {}}, old)
    with pytest.raises(ValueError, match="format 1.*retrain"):
        findings_model.load(old)
