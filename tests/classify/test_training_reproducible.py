"""`curate train classifier` reproduces the shipped weights from the shipped header table, and the
shipped tables (header summaries for the series-kind model, metrics for the quality model) are what
the training sites produce today.

Why two tests instead of one retrain from scratch: generating the three training sites takes
minutes, while training from the table takes seconds. A site's patients 0..k do not depend on how
many follow (`synth` seeds every patient on its own), so a few patients of each training
site, generated afresh, check the table row for row: together the two tests still fail on any
change to the synthetic sites, the header summaries, the features, the jitter or the training.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from curation.classify import physics
import training.classify as classify_training
from curate.main import main as curate
import training.quality as quality_training
from qc_models import mlp, series_classifier
from qc_models.mlp import train_mlp

#: Patients generated per training site: every vendor (patient % 3) at seed 101, the first patient at the others.
PATIENTS = {101: 3, 202: 1, 303: 1}


def test_training_is_deterministic():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)
    a = train_mlp(x, y, 2, epochs=50, seed=3)
    b = train_mlp(x, y, 2, epochs=50, seed=3)
    c = train_mlp(x, y, 2, epochs=50, seed=4)
    assert mlp.same_weights(a, b) and not mlp.same_weights(a, c)


@pytest.mark.slow
def test_train_classifier_from_the_shipped_table_reproduces_the_shipped_weights(tmp_path):
    out = tmp_path / "series.pt"
    table = classify_training.TABLE
    assert curate(["train", "classifier", "--from-table", str(table), "--out", str(out)]) == 0
    shipped, meta = mlp.load(series_classifier.WEIGHTS)
    again, meta2 = mlp.load(out)
    x, _ = classify_training.training_set(classify_training.read_table(table))
    assert mlp.same_predictions(shipped, again, x), \
        "curate train classifier no longer reproduces the shipped model's predictions from the shipped table"
    assert meta == meta2 and series_classifier.WEIGHTS.stat().st_size < 1_000_000
    rows = classify_training.read_table(table)
    assert meta["train_seeds"] == list(classify_training.TRAIN_SEEDS) == sorted({r["seed"] for r in rows})
    # each series and its 8 jittered copies, then the physics-labelled sample (every recipe PER_RECIPE times)
    assert meta["n_train"] == len(rows) * 9 + len(physics.RECIPES) * physics.PER_RECIPE
    assert (meta["physics_seed"], meta["physics_per_recipe"]) == (physics.TRAIN_SEED, physics.PER_RECIPE)
    assert physics.HELDOUT_SEED != physics.TRAIN_SEED


@pytest.mark.slow
def test_the_shipped_tables_are_what_the_training_sites_produce(tmp_path):
    from synth import generate_site

    headers = {r["series"]: r for r in classify_training.read_table()}
    metrics = {(r["series"], r["augmented"], r["type"]): r for r in quality_training.read_table(quality_training.TABLE)
               if r["seed"] in PATIENTS}
    n_headers = n_metrics = 0
    for seed, patients in PATIENTS.items():
        root = tmp_path / f"site-{seed}-{patients}"
        truth = generate_site(root, patients=patients, seed=seed, phi_locations=False, progress=lambda m: None)
        for row in classify_training.site_rows(root, truth):
            assert json.loads(json.dumps(row)) == headers[row["series"]], f"header table differs: {row['series']}"
            n_headers += 1
        for row in quality_training.site_rows(root, truth):
            shipped = metrics[(row["series"], row["augmented"], row["type"])]
            assert (row["vendor"], row["kind"], row["severity"], row["degraded"]) == \
                (shipped["vendor"], shipped["kind"], shipped["severity"], shipped["degraded"])
            for m in quality_training.METRIC_COLUMNS:
                a, b = row[m], shipped[m]
                assert (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9), (m, row, shipped)
            n_metrics += 1
    assert n_headers >= 5 * 9 and n_metrics >= 5 * 5  # nine MR series, five structural, per patient
    print(f"{n_headers} header rows and {n_metrics} metric rows regenerated, equal to the shipped tables")
