"""The validation report (issue 18, point 5) on a validation project read by simulated readers
(synth.readers: careful and hasty profiles over synthetic truth, blind first: an unaided answer,
then the aided one after the model's suggestion): every figure of the report equals the same figure
computed directly from the readings with sklearn and pandas."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix, roc_auc_score

from curation.agreement.roi import box_consensus, iou_matrix
from curation.agreement.validation import ValidationConfig, froc, validation_report
from synth.readers import PROFILES, Box, LabelTruth, item_reading

LABELS = ("opacity", "effusion", "nodule")
GRID = (256, 256)
READERS = {"careful-1": "careful", "careful-2": "careful", "careful-3": "careful", "hasty-1": "hasty"}
SEED = 18


def _world(n_items: int = 80, seed: int = SEED):
    rng = np.random.default_rng(seed)
    items = [f"2.25.{9000 + n}" for n in range(n_items)]
    truth: dict[str, dict[str, LabelTruth]] = {}
    for item in items:
        truth[item] = {}
        for label in LABELS:
            present = bool(rng.random() < 0.35)
            boxes = ()
            if present and label == "nodule":
                x, y = rng.uniform(20, 180, 2)
                boxes = (Box(float(x), float(y), float(rng.uniform(20, 50)), float(rng.uniform(20, 50))),)
            truth[item][label] = LabelTruth(present, boxes)
    # the model: informative but imperfect probabilities; a box near each true nodule it finds, and false alarms
    predictions, proposals = [], []
    for item in items:
        for label in LABELS:
            t = truth[item][label]
            p = float(1 / (1 + np.exp(-(2.2 * (2 * t.present - 1) + rng.normal(0, 1.4)))))
            predictions.append({"item": item, "label": label, "probability": round(p, 6)})
            if label == "nodule":
                for b in t.boxes:
                    if rng.random() < 0.85:
                        jitter = rng.normal(0, 0.08 * b.w, 4)
                        proposals.append({"item": item, "label": label, "x0": b.x + jitter[0], "y0": b.y + jitter[1],
                                          "x1": b.x + b.w + jitter[2], "y1": b.y + b.h + jitter[3],
                                          "score": p})
                if rng.random() < 0.3:
                    x, y = rng.uniform(0, 200, 2)
                    proposals.append({"item": item, "label": label, "x0": x, "y0": y, "x1": x + 30, "y1": y + 30,
                                      "score": float(rng.uniform(0.05, 0.6))})
    predictions = pd.DataFrame(predictions)
    # readers: blind first (their own answer), then with the suggestion shown some of them follow the model
    model_call = {(r["item"], r["label"]): int(r["probability"] >= 0.5) for r in predictions.to_dict("records")}
    readings, assisted, boxes = [], [], []
    for reader, profile in READERS.items():
        follow = np.random.default_rng([seed, len(reader), sum(map(ord, reader))])
        for item in items:
            answers = item_reading(PROFILES[profile], reader, seed, item, truth[item], list(LABELS), grid=GRID)
            for label, a in answers.items():
                unaided = int(a.value)
                aided = model_call[item, label] if follow.random() < 0.25 else unaided
                readings.append({"item": item, "label": label, "annotator": reader, "value": aided,
                                 "confidence": a.confidence, "seconds": a.seconds})
                assisted.append({"item": item, "label": label, "annotator": reader, "unaided": unaided,
                                 "aided": aided})
                if aided and label == "nodule":
                    boxes += [{"item": item, "label": label, "annotator": reader, "x0": b.x, "y0": b.y,
                               "x1": b.x + b.w, "y1": b.y + b.h} for b in a.boxes]
    return (truth, predictions, pd.DataFrame(proposals), pd.DataFrame(readings), pd.DataFrame(assisted),
            pd.DataFrame(boxes))


def test_the_report_equals_metrics_computed_directly_from_the_readings():
    truth, predictions, proposals, readings, assisted, reader_boxes = _world()
    reference_boxes = box_consensus(reader_boxes)[["item", "label", "x0", "y0", "x1", "y1"]]
    config = ValidationConfig(n_boot=400, seed=3)
    report = validation_report(predictions, readings, model={"name": "chest", "version": "1.0.0"},
                               proposals=proposals, reference_boxes=reference_boxes, assisted=assisted,
                               suggestions=pd.DataFrame({"label": ["nodule", "nodule", "nodule"],
                                                         "action": ["accept", "edit", "accept"]}),
                               config=config)
    # the reference, directly: a label is present where more readers said yes than no
    votes = readings.groupby(["item", "label"])["value"].agg(["sum", "count"]).reset_index()
    votes["reference"] = (votes["sum"] > votes["count"] - votes["sum"]).astype(int)
    table = predictions.merge(votes, on=["item", "label"])
    assert report["items"] == 80 and report["reference"] == "majority"
    for label in LABELS:
        rows = table[table["label"] == label]
        y, p = rows["reference"].to_numpy(), rows["probability"].to_numpy()
        tn, fp, fn, tp = confusion_matrix(y, (p >= 0.5).astype(int), labels=[0, 1]).ravel()
        got = report["per_label"][label]
        assert (got["tp"], got["fp"], got["fn"], got["tn"]) == (tp, fp, fn, tn)
        assert got["sensitivity"] == pytest.approx(tp / (tp + fn))
        assert got["specificity"] == pytest.approx(tn / (tn + fp))
        assert got["auc"] == pytest.approx(roc_auc_score(y, p))
        for name in ("sensitivity", "specificity", "auc"):
            low, high = got[f"{name}_ci"]
            assert low <= got[name] <= high and high - low < 0.5
        assert got["auc"] > 0.8, "the simulated model is informative"
    # the CIs are the bootstrap's: the same seed draws the same, another seed other intervals
    again = validation_report(predictions, readings, config=config)
    assert again["per_label"] == report["per_label"]
    other = validation_report(predictions, readings, config=ValidationConfig(n_boot=400, seed=4))
    assert other["per_label"]["nodule"]["auc_ci"] != report["per_label"]["nodule"]["auc_ci"]
    # unaided versus aided accuracy against the same reference, directly
    a = assisted.merge(votes[["item", "label", "reference"]], on=["item", "label"])
    aided = report["aided"]
    assert aided["readings"] == len(a) == 4 * 80 * 3
    assert aided["unaided_accuracy"] == pytest.approx((a["unaided"] == a["reference"]).mean())
    assert aided["aided_accuracy"] == pytest.approx((a["aided"] == a["reference"]).mean())
    assert aided["changed"] == int((a["unaided"] != a["aided"]).sum()) > 0
    for reader in READERS:
        r = a[a["annotator"] == reader]
        assert aided["per_reader"][reader]["aided_accuracy"] == pytest.approx((r["aided"] == r["reference"]).mean())
    changed = a[a["unaided"] != a["aided"]].merge(predictions, on=["item", "label"])
    assert aided["changed_to_model_call"] == int(((changed["probability"] >= 0.5).astype(int) == changed["aided"]).sum())
    # the strongest disagreements: |probability - share of readers saying yes|, largest first
    direct = table.assign(d=(table["probability"] - table["sum"] / table["count"]).abs())
    direct = direct.sort_values(["d", "item", "label"], ascending=[False, True, True]).head(10)
    assert [(c["item"], c["label"]) for c in report["disagreements"]] == list(zip(direct["item"], direct["label"]))
    assert report["disagreements"][0]["disagreement"] == pytest.approx(direct["d"].iloc[0])
    # FROC: at the loosest operating point, sensitivity = reference boxes some proposal overlaps at IoU >= 0.5
    nodule = report["froc"]["nodule"]
    covered = 0
    for ref in reference_boxes.itertuples(index=False):
        mine = proposals[proposals["item"] == ref.item]
        if len(mine) and iou_matrix([[ref.x0, ref.y0, ref.x1, ref.y1]],
                                    mine[["x0", "y0", "x1", "y1"]].to_numpy(float)).max() >= 0.5:
            covered += 1
    assert nodule["lesions"] == len(reference_boxes) > 10
    assert nodule["hits"] == covered and nodule["curve"][-1]["sensitivity"] == pytest.approx(covered / len(
        reference_boxes))
    assert nodule["curve"][-1]["fp_per_image"] == pytest.approx((len(proposals) - covered) / 80)
    assert report["suggestions"] == {"nodule": {"accept": 2, "edit": 1}}


def test_froc_counts_hits_once_per_reference_box_by_falling_score():
    reference = pd.DataFrame([{"item": "a", "label": "nodule", "x0": 0, "y0": 0, "x1": 10, "y1": 10},
                              {"item": "b", "label": "nodule", "x0": 50, "y0": 50, "x1": 70, "y1": 70}])
    proposals = pd.DataFrame([
        {"item": "a", "label": "nodule", "x0": 0, "y0": 0, "x1": 10, "y1": 11, "score": 0.9},   # hit
        {"item": "a", "label": "nodule", "x0": 0, "y0": 0, "x1": 10, "y1": 10, "score": 0.8},   # same box again: FP
        {"item": "b", "label": "nodule", "x0": 0, "y0": 0, "x1": 10, "y1": 10, "score": 0.7},   # wrong place: FP
        {"item": "b", "label": "nodule", "x0": 52, "y0": 50, "x1": 70, "y1": 70, "score": 0.4},  # hit
    ])
    out = froc(proposals, reference, n_images=2, fp_rates=(0.5, 1.0))
    assert [(c["sensitivity"], c["fp_per_image"]) for c in out["curve"]] == [(0.5, 0.0), (0.5, 0.5), (0.5, 1.0),
                                                                           (1.0, 1.0)]
    assert out["sensitivity_at_fp_per_image"] == {"0.5": 0.5, "1": 1.0} and out["mean_sensitivity"] == 0.75


def test_a_given_reference_replaces_the_majority():
    truth, predictions, _, readings, _, _ = _world(n_items=30)
    gold = pd.DataFrame([{"item": i, "label": k, "reference": int(t.present)} for i, labels in truth.items()
                         for k, t in labels.items()])
    report = validation_report(predictions, readings, reference=gold, config=ValidationConfig(n_boot=0))
    rows = predictions.merge(gold, on=["item", "label"])
    for label in LABELS:
        r = rows[rows["label"] == label]
        assert report["per_label"][label]["auc"] == pytest.approx(roc_auc_score(r["reference"], r["probability"]))
        assert report["per_label"][label]["auc_ci"] is None
    assert report["reference"] == "given"
