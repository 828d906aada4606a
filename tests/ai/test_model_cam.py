"""The findings network's heatmaps point at what it learned: a network trained (with the real
training loop) to tell images with a bright blob from images without one puts its heatmap's maximum
on the blob of images it has not seen, and the box proposal covers the blob; its image logit is the
log-sum-exp pool of the logit map the heatmap shows; the evaluation functions give the values worked
out by hand."""
from __future__ import annotations

import numpy as np
import pytest

from qc_models.findings.boxes import peak_component_box
from qc_models.findings.cam import logit_maps, occlusion_maps
from qc_models.findings.evaluation import auc_ci, calibration, pointing_game, pointing_hit
from qc_models.findings.model import ChestFindings
from qc_models.findings.network import INPUT_SIZE
from qc_models.findings.preprocess import to_input
from training import findings as training

SIZE = 160


def blob_images(n: int, seed: int) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray]]:
    """Noisy gradients; half of them with a bright disc (radius 9-13 px) somewhere; masks of the discs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    images, labels, masks = [], [], []
    for i in range(n):
        base = 800 + 200 * (yy / SIZE) + rng.normal(0, 40, (SIZE, SIZE))
        mask = np.zeros((SIZE, SIZE), bool)
        if i % 2 == 0:
            r = rng.uniform(9, 13)
            cy, cx = rng.uniform(20, SIZE - 20, 2)
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            base = base + 400 * mask
        images.append(base.astype(np.float32))
        labels.append(float(i % 2 == 0))
        masks.append(mask)
    return images, np.asarray(labels)[:, None], masks


@pytest.fixture(scope="module")
def blob_model():
    import torch

    import torch.nn.functional as F

    images, labels, masks = blob_images(96, seed=1)
    # the discs' masks play the consensus boxes' part: regions on the network's input grid
    regions = F.interpolate(torch.from_numpy(np.stack(masks)).float()[:, None], size=(INPUT_SIZE, INPUT_SIZE))
    split = training.Split("train", torch.stack([to_input(p) for p in images]), labels, images, [""] * len(images),
                           regions)
    net = training.fit(split, 1, seed=0, epochs=12)
    return ChestFindings(net, ["blob"], ["blob"], {})


#: Pointing bar on the 12 positives (chance is ~1.5 %): the logit map is what the network's call is
#: pooled from and the discs taught it where to look, so it points nearly always (measured 2026-12-05
#: with this seed: 12 of 12). Grad-CAM is not held to a bar: on the log-sum-exp head it saturates.
BLOB_BAR = {"logit_map": 5 / 6}


@pytest.mark.parametrize("method", sorted(BLOB_BAR))
def test_cam_lands_on_a_planted_blob(blob_model, method):
    images, labels, masks = blob_images(24, seed=7)
    blob_model.heatmap = method
    answers = blob_model.answer(images)
    probs = np.array([a.probabilities["blob"] for a in answers])
    assert auc_ci(labels[:, 0], probs, n_boot=50)["auc"] > 0.95
    positives = [i for i in range(len(images)) if labels[i, 0] == 1]
    hits = [pointing_hit(answers[i].heatmaps["blob"], masks[i]) for i in positives]
    # the bar (BLOB_BAR) is "far above chance", not "precise"
    assert np.mean(hits) >= BLOB_BAR[method], hits
    for i in positives:
        heat = answers[i].heatmaps["blob"]
        assert heat.shape == images[i].shape and heat.dtype == np.float32 and 0 <= heat.min() <= heat.max() <= 1
    boxed = [a for i, a in enumerate(answers) if i in positives and a.boxes]
    assert boxed
    covered = 0
    for i in positives:
        for label, x0, y0, x1, y1, score in answers[i].boxes:
            rows, cols = np.nonzero(masks[i])
            covered += x0 <= cols.mean() < x1 and y0 <= rows.mean() < y1
    assert covered >= 0.8 * len(boxed)


def test_image_logit_is_the_lse_pool_of_the_logit_map():
    """The heatmap is faithful by construction: the image's logit is the log-sum-exp pool of the cell
    logits the logit map shows, between their mean and their maximum, and the map's hottest cell is the
    highest cell logit."""
    import math

    import torch

    from qc_models.findings.network import FindingsNet

    torch.manual_seed(3)
    net = FindingsNet(3).eval()
    x = torch.rand((2, 1, 96, 96))
    with torch.no_grad():
        cells, logits = net.cell_logits(x), net(x)
    assert cells.shape == (2, 3, 12, 12)
    flat = cells.flatten(2)
    by_hand = torch.log(torch.exp(net.r * flat).mean(dim=2)) / net.r
    assert torch.allclose(logits, by_hand, atol=1e-5)
    assert bool((flat.mean(dim=2) <= logits + 1e-6).all()) and bool((logits <= flat.amax(dim=2) + 1e-6).all())
    assert float((flat.amax(dim=2) - logits).max()) <= math.log(144) / net.r + 1e-5  # LSE is within log(cells)/r of max
    heat = logit_maps(net, x)
    assert heat.shape == cells.shape and float(heat.min()) >= 0 and float(heat.max()) <= 1
    assert torch.equal(heat.flatten(2).argmax(dim=2), flat.argmax(dim=2))


def test_occlusion_finds_the_blob(blob_model):
    """Occlusion sensitivity (blurred patches) puts its maximum on the blob of a positive image."""
    images, labels, masks = blob_images(8, seed=7)
    positives = [i for i in range(len(images)) if labels[i, 0] == 1][:3]
    from qc_models.findings.preprocess import to_batch

    heat = occlusion_maps(blob_model.net, to_batch([images[i] for i in positives]))
    assert heat.shape == (3, 1, INPUT_SIZE, INPUT_SIZE) and float(heat.min()) >= 0 and float(heat.max()) <= 1
    from qc_models.findings.cam import to_grid

    hits = [pointing_hit(to_grid(heat[k], images[i].shape), masks[i]) for k, i in enumerate(positives)]
    assert sum(hits) >= 2, hits


def test_peak_component_box():
    heat = np.zeros((20, 30), np.float32)
    heat[5:9, 10:16] = 0.8
    heat[6, 12] = 1.0
    heat[15:18, 2:4] = 0.9  # a second component, not the peak's
    assert peak_component_box(heat) == (10, 5, 16, 9)
    assert peak_component_box(np.zeros((4, 4), np.float32)) is None


def test_evaluation_numbers_by_hand():
    y = np.array([0, 0, 1, 1, np.nan])
    p = np.array([0.1, 0.6, 0.4, 0.9, 0.5])
    auc = auc_ci(y, p, n_boot=200)
    assert auc["n"] == 4 and auc["auc"] == pytest.approx(0.75) and auc["ci"][0] <= 0.75 <= auc["ci"][1]
    assert auc_ci(np.array([1.0, 1.0]), np.array([0.2, 0.3]))["auc"] is None
    cal = calibration(np.array([0, 1, 1, 1]), np.array([0.05, 0.95, 0.95, 0.55]))
    # bins: [0,.1): p .05 y 0 -> .05; [.9,1): p .95 y 1 (x2) -> .05 each; [.5,.6): p .55 y 1 -> .45
    assert cal["ece"] == pytest.approx((0.05 + 2 * 0.05 + 0.45) / 4)
    assert cal["brier"] == pytest.approx((0.05 ** 2 + 2 * 0.05 ** 2 + 0.45 ** 2) / 4)
    game = pointing_game([True, True, False, True])
    assert game["rate"] == 0.75 and game["ci"][0] < 0.75 < game["ci"][1]
    heat = np.zeros((5, 5))
    heat[1, 1] = 1
    mask = np.zeros((5, 5), bool)
    assert not pointing_hit(heat, mask)
    mask[1, 1] = True
    assert pointing_hit(heat, mask)
    assert not pointing_hit(np.zeros((5, 5)), np.ones((5, 5), bool))  # a flat heatmap points nowhere
    plateau = np.ones((9, 9))
    plateau[8, 8] = 0  # saturated nearly everywhere: it names its centre, not every pixel
    corner = np.zeros((9, 9), bool)
    corner[:3, :3] = True
    assert not pointing_hit(plateau, corner)
    centre = np.zeros((9, 9), bool)
    centre[4, 4] = True
    assert pointing_hit(plateau, centre)
