"""`curate train classifier` regenerates the training sites from their seeds and reproduces the
shipped weights bit for bit; the same sites reproduce the shipped quality training table."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from curation.cli.main import main as curate
from curation.quality.training import METRIC_COLUMNS, read_table, site_rows
from qc_models import mlp, series_classifier
from qc_models.mlp import train_mlp

TABLE = Path(__file__).resolve().parents[2] / "include" / "quality" / "training_table.csv"


def test_training_is_deterministic():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)
    a = train_mlp(x, y, 2, epochs=50, seed=3)
    b = train_mlp(x, y, 2, epochs=50, seed=3)
    c = train_mlp(x, y, 2, epochs=50, seed=4)
    assert mlp.same_weights(a, b) and not mlp.same_weights(a, c)


@pytest.mark.slow
def test_train_classifier_reproduces_the_shipped_weights_and_the_quality_table(tmp_path):
    out = tmp_path / "series.pt"
    assert curate(["train", "classifier", "--workdir", str(tmp_path), "--out", str(out)]) == 0
    shipped, meta = mlp.load(series_classifier.WEIGHTS)
    again, meta2 = mlp.load(out)
    assert mlp.same_weights(shipped, again), "curate train classifier no longer reproduces the shipped weights"
    assert meta == meta2 and series_classifier.WEIGHTS.stat().st_size < 1_000_000
    # The quality table's rows of the first training site come out of the same site unchanged.
    root = tmp_path / "site-101-6"
    truth = json.loads((root / "ground_truth.json").read_text())
    fresh = site_rows(root, truth)
    shipped_rows = [r for r in read_table(TABLE) if r["seed"] == 101]
    assert len(fresh) == len(shipped_rows)
    for a, b in zip(fresh, shipped_rows):
        assert (a["series"], a["type"], a["severity"]) == (b["series"], b["type"], b["severity"])
        for m in METRIC_COLUMNS:
            assert (math.isnan(a[m]) and math.isnan(b[m])) or math.isclose(a[m], b[m], rel_tol=1e-9), (m, a, b)
