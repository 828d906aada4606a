"""Point 4 of issue 18: when a model ran before dispatch, the round's analysis feeds its probabilities
into the agreement library's `ai_filter` rule (MarkIt's "better than random" filter): a reader who
answers "no" to everything fails it, careful readers pass, and a round without a model is not judged
by it. The round is real: curated DICOM in the store, the predict stage's stored answers, the
service's own CSV exporter for the readings, collect and analyse into the catalog."""
from __future__ import annotations

import numpy as np
import pytest

from curation.annotation_schema import load_schema
from curation.assist.predictions import predict_items
from curation.assist.pseudo_truth import round_model, with_ai_probability
from curation.pipeline import dispatch
from curation.pipeline.analyse import AnalysisConfig, analyse, reader_reports
from curation.pipeline.collect import collect, reader_pseudonym, round_readings
from curation.pipeline.select import Selection, select_series
from curation.store import open_store
from tests.ai.test_pipeline import BrightSpotModel, _plant_spot
from tests.operators.world import curated_catalog
from tests.pipeline.test_annotation_round import SECRET, Truth, simulate_export

N_ITEMS = 24


@pytest.fixture
def round_world(tmp_path):
    home = tmp_path / "curate"
    catalog, series, _ = curated_catalog(home, n_labels=N_ITEMS, n_review=0)
    for sid in series[::2]:
        _plant_spot(home, catalog, sid, (30, 30))
    store = open_store(f"file://{home / 'store'}")
    items = select_series(catalog, Selection(series_kinds=("CR",)), "r")
    model = BrightSpotModel()
    results = predict_items(catalog, store, model, items)
    calls = {(i.item_key, label): int(p >= 0.5) for i, r in zip(items, results)
             for label, p in r.metrics["probabilities"].items()}
    assert {v for (_, label), v in calls.items() if label == "nodule"} == {0, 1}
    # the truth is what the model calls (a good model); effusion, which it does not answer, at random
    rng = np.random.default_rng(7)
    values = {(i.item_key, label): calls.get((i.item_key, label), int(rng.random() < 0.4))
              for i in items for label in ("opacity", "effusion", "nodule")}
    boxes = {(i.item_key, "nodule"): (22.0, 22.0, 38.0, 38.0) for i in items if values[i.item_key, "nodule"]}
    return catalog, store, items, Truth(values, boxes)


def _round(catalog, items, truth, name: str, model: dict | None) -> int:
    params = {"readers_per_item": 5, **({"model": model} if model else {})}
    rnd = dispatch.plan_round(catalog, project="chest", name=name, schema=load_schema("chest_findings_v1"),
                              items=items, params=params)
    dispatch.record_dispatch(catalog, rnd.round_id, {"round": {"id": 1, "number": 1, "per_item": [
        {"item_id": 100 + n, "external_id": i.item_key} for n, i in enumerate(items)]}})
    collect(catalog, rnd.round_id, simulate_export([i.item_key for i in items], [], truth, seed=3), SECRET)
    return rnd.round_id


def test_the_models_probabilities_judge_readers_when_a_model_ran(round_world):
    catalog, _, items, truth = round_world
    model = {"name": "brightspot", "version": "0.1"}
    with_model = _round(catalog, items, truth, "with-model", model)
    assert round_model(catalog, with_model) == model
    data = with_ai_probability(catalog, with_model, round_readings(catalog, with_model))
    frame = data.readings.frame
    assert frame.loc[frame["label"] == "effusion", "ai_probability"].isna().all()
    assert frame.loc[frame["label"] == "nodule", "ai_probability"].notna().all()
    analyse(catalog, with_model, AnalysisConfig(n_boot=0))
    reports = reader_reports(catalog, with_model)
    flat, careful = reader_pseudonym("flat-1", SECRET), reader_pseudonym("careful-1", SECRET)
    assert "ai_filter" in reports[flat]["qc_flags"] and not reports[flat]["passes_qc"]
    assert any("against the AI" in reason for reason in reports[flat]["reasons"])
    assert "ai_filter" not in reports[careful]["qc_flags"]

    without = _round(catalog, items, truth, "without-model", None)
    assert round_model(catalog, without) is None
    analyse(catalog, without, AnalysisConfig(n_boot=0))
    assert all("ai_filter" not in r["qc_flags"] for r in reader_reports(catalog, without).values())


def test_another_models_answers_do_not_judge_the_round(round_world):
    catalog, _, items, truth = round_world
    rid = _round(catalog, items, truth, "other-model", {"name": "brightspot", "version": "9.9"})
    data = with_ai_probability(catalog, rid, round_readings(catalog, rid))
    assert "ai_probability" not in data.readings.frame.columns
