"""A findings model measured against its readers (issue 18, point 5): the validation report.

The reference is the readers' consensus (majority vote, ties negative, as the round's analysis
decides them) unless the caller passes one (gold answers, synthetic truth). Per label: sensitivity
and specificity at the model's operating threshold and the AUC of its probabilities, each with a
bootstrap percentile CI over items (one draw of items serves every label and statistic, so they
stay comparable); FROC of its boxes against the reference boxes (a proposal hits an unmatched
reference box of its item and label at IoU >= 0.5, greedily by score); where "blind first" ran, each
reader's unaided and aided accuracy against the reference, and how answers moved toward or away from
the model; and the cases where model and readers disagree most, for review.

Plain tables in, one JSON-able dict out: the same code serves a round in the catalog and a test
that recomputes every figure from the readings.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from curation.agreement.consensus import TieRule, majority_vote
from curation.agreement.roi import iou_matrix
from curation.agreement.statistics import _interval, _ratio, draw_weights  # the package's bootstrap helpers
from curation.agreement.table import Readings, as_frame

#: FP per image at which the FROC's sensitivity is reported (the LUNA16 CPM points).
FROC_FP_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


@dataclass(frozen=True)
class ValidationConfig:
    """The model's operating threshold, bootstrap resamples and seed, CI level, the IoU of a box
    hit, and how many cases of strongest disagreement to list."""

    threshold: float = 0.5
    n_boot: int = 1000
    seed: int = 0
    confidence: float = 0.95
    iou: float = 0.5
    n_cases: int = 10


def reader_consensus(readings: Readings | pd.DataFrame) -> pd.DataFrame:
    """item, label, reference (0/1), n_readers, positive_share: the readers' majority (ties negative)."""
    table = readings if isinstance(readings, Readings) else Readings(as_frame(readings))
    vote = majority_vote(table, TieRule.NEGATIVE).labels
    return pd.DataFrame({"item": vote["item"].astype(str), "label": vote["label"].astype(str),
                         "reference": vote["consensus"].astype(int), "n_readers": vote["n_readers"].astype(int),
                         "positive_share": vote["n_positive"] / vote["n_readers"]})


def _label_metrics(truth: np.ndarray, score: np.ndarray, weights: np.ndarray, config: ValidationConfig
                   ) -> dict[str, Any]:
    """Point estimates (weights of one) and bootstrap CIs (rows of `weights`) of one label."""
    pos, neg = truth == 1, truth == 0
    called = score >= config.threshold
    # Mann-Whitney: a positive outranking a negative counts 1, a tie one half (the AUC's definition)
    wins = (score[pos][:, None] > score[neg][None, :]) + 0.5 * (score[pos][:, None] == score[neg][None, :])
    w = np.vstack([np.ones(len(truth)), weights])
    wp, wn = w[:, pos], w[:, neg]
    sens = _ratio((wp * called[pos]).sum(1), wp.sum(1))
    spec = _ratio((wn * ~called[neg]).sum(1), wn.sum(1))
    auc = _ratio(np.einsum("bi,ij,bj->b", wp, wins, wn), wp.sum(1) * wn.sum(1))
    out: dict[str, Any] = {"n": int(len(truth)), "positives": int(pos.sum()), "negatives": int(neg.sum()),
                           "tp": int((called & pos).sum()), "fp": int((called & neg).sum()),
                           "fn": int((~called & pos).sum()), "tn": int((~called & neg).sum())}
    for name, values in (("sensitivity", sens), ("specificity", spec), ("auc", auc)):
        out[name] = None if np.isnan(values[0]) else float(values[0])
        out[f"{name}_ci"] = _interval(values[1:], config.confidence) if len(values) > 1 else None
    return out


def classification_metrics(predictions: pd.DataFrame, reference: pd.DataFrame,
                           config: ValidationConfig = ValidationConfig()) -> dict[str, dict[str, Any]]:
    """Per label: counts, sensitivity, specificity and AUC with CIs, on the items with both a
    model probability (`predictions`: item, label, probability) and a reference (item, label, reference)."""
    both = predictions.merge(reference[["item", "label", "reference"]], on=["item", "label"])
    items = sorted(both["item"].unique())
    index = {item: n for n, item in enumerate(items)}
    weights = draw_weights(len(items), config.n_boot, config.seed) if config.n_boot else np.zeros((0, len(items)))
    out = {}
    for label, rows in both.groupby("label", sort=True):
        at = rows["item"].map(index).to_numpy()
        out[str(label)] = _label_metrics(rows["reference"].to_numpy(int), rows["probability"].to_numpy(float),
                                         weights[:, at], config)
    return out


def froc(proposals: pd.DataFrame, reference: pd.DataFrame, n_images: int, iou: float = 0.5,
         fp_rates: Sequence[float] = FROC_FP_RATES) -> dict[str, Any]:
    """FROC of box proposals (item, label, x0, y0, x1, y1, score) against reference boxes (item, label,
    x0, y0, x1, y1) over `n_images`: proposals by falling score, each a hit when it overlaps an
    unmatched reference box of its item and label at IoU >= `iou`, else a false positive. Returns the
    curve (score, sensitivity, FP per image), sensitivity at `fp_rates` and the mean of those."""
    lesions = len(reference)
    order = proposals.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
    matched: set[tuple[str, str, int]] = set()
    groups = {key: g for key, g in reference.groupby(["item", "label"])}
    hits = np.zeros(len(order), dtype=bool)
    for n, p in enumerate(order.itertuples(index=False)):
        ref = groups.get((p.item, p.label))
        if ref is None:
            continue
        ious = iou_matrix([[p.x0, p.y0, p.x1, p.y1]], ref[["x0", "y0", "x1", "y1"]].to_numpy(float))[0]
        for j in np.argsort(-ious, kind="stable"):
            key = (p.item, p.label, int(ref.index[j]))
            if ious[j] >= iou and key not in matched:
                matched.add(key)
                hits[n] = True
                break
    tp, fp = np.cumsum(hits), np.cumsum(~hits)
    sens = tp / lesions if lesions else np.full(len(order), np.nan)
    fppi = fp / max(n_images, 1)
    curve = [{"score": float(s), "sensitivity": float(se), "fp_per_image": float(f)}
             for s, se, f in zip(order["score"], sens, fppi)]
    at = {}
    for rate in fp_rates:
        within = np.flatnonzero(fppi <= rate)
        at[f"{rate:g}"] = float(sens[within[-1]]) if len(within) and lesions else (0.0 if lesions else None)
    values = [v for v in at.values() if v is not None]
    return {"lesions": lesions, "proposals": int(len(order)), "images": n_images, "hits": int(hits.sum()),
            "curve": curve, "sensitivity_at_fp_per_image": at, "mean_sensitivity": float(np.mean(values))
            if values else None}


def aided_accuracy(assisted: pd.DataFrame, reference: pd.DataFrame, predictions: pd.DataFrame | None = None,
                   threshold: float = 0.5) -> dict[str, Any]:
    """Unaided versus aided accuracy where "blind first" ran. `assisted`: item, label, annotator,
    unaided, aided (0/1: the answer before suggestions were shown and the submitted one). Accuracy
    against the reference overall, per reader and per label; answers changed; and, with the model's
    `predictions`, how many changes went to the model's call."""
    rows = assisted.dropna(subset=["unaided", "aided"]).merge(reference[["item", "label", "reference"]],
                                                             on=["item", "label"])
    if rows.empty:
        return {"readings": 0}
    rows = rows.assign(unaided_right=rows["unaided"].astype(int) == rows["reference"],
                       aided_right=rows["aided"].astype(int) == rows["reference"],
                       changed=rows["unaided"].astype(int) != rows["aided"].astype(int))

    def block(g: pd.DataFrame) -> dict[str, Any]:
        return {"readings": int(len(g)), "unaided_accuracy": float(g["unaided_right"].mean()),
                "aided_accuracy": float(g["aided_right"].mean()), "changed": int(g["changed"].sum())}

    out = {**block(rows), "per_reader": {str(a): block(g) for a, g in rows.groupby("annotator", sort=True)},
           "per_label": {str(k): block(g) for k, g in rows.groupby("label", sort=True)}}
    if predictions is not None:
        calls = rows.merge(predictions[["item", "label", "probability"]], on=["item", "label"])
        calls = calls[calls["changed"]]
        out["changed_to_model_call"] = int(((calls["probability"] >= threshold).astype(int)
                                            == calls["aided"].astype(int)).sum())
    return out


def strongest_disagreements(predictions: pd.DataFrame, reference: pd.DataFrame, n: int = 10) -> list[dict[str, Any]]:
    """The `n` item-label pairs where the model's probability lies furthest from the share of readers
    who said yes (ties by item, label), for a person to look at."""
    both = predictions.merge(reference, on=["item", "label"])
    both = both.assign(disagreement=(both["probability"] - both["positive_share"]).abs())
    top = both.sort_values(["disagreement", "item", "label"], ascending=[False, True, True]).head(n)
    return [{"item": r.item, "label": r.label, "probability": float(r.probability),
             "positive_share": float(r.positive_share), "n_readers": int(r.n_readers), "reference": int(r.reference),
             "disagreement": float(r.disagreement)} for r in top.itertuples(index=False)]


def suggestion_actions(suggestions: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Per label, how often readers accepted, edited or rejected the model's suggested boxes
    (`suggestions`: label, action)."""
    if suggestions.empty:
        return {}
    counts = suggestions.groupby(["label", "action"]).size()
    return {str(label): {str(a): int(v) for a, v in g.droplevel(0).items()} for label, g in counts.groupby(level=0)}


def validation_report(predictions: pd.DataFrame, readings: Readings | pd.DataFrame, *,
                      model: Mapping[str, str] | None = None, reference: pd.DataFrame | None = None,
                      proposals: pd.DataFrame | None = None, reference_boxes: pd.DataFrame | None = None,
                      assisted: pd.DataFrame | None = None, suggestions: pd.DataFrame | None = None,
                      config: ValidationConfig = ValidationConfig()) -> dict[str, Any]:
    """The model against its readers: see the module's docstring. `predictions`: item, label,
    probability; `readings`: the long reading table; `reference`: item, label, reference to use
    instead of the readers' majority (its positive_share still comes from the readings)."""
    consensus = reader_consensus(readings)
    if reference is not None:
        consensus = consensus.drop(columns="reference").merge(reference[["item", "label", "reference"]],
                                                              on=["item", "label"])
    predictions = predictions.assign(item=predictions["item"].astype(str), label=predictions["label"].astype(str))
    report: dict[str, Any] = {
        "model": dict(model) if model else None, "reference": "given" if reference is not None else "majority",
        "config": {"threshold": config.threshold, "n_boot": config.n_boot, "seed": config.seed,
                   "confidence": config.confidence, "iou": config.iou},
        "items": int(predictions.merge(consensus, on=["item", "label"])["item"].nunique()),
        "per_label": classification_metrics(predictions, consensus, config),
        "disagreements": strongest_disagreements(predictions, consensus, config.n_cases),
    }
    if proposals is not None and reference_boxes is not None:
        images = int(predictions["item"].nunique())
        report["froc"] = {str(label): froc(proposals[proposals["label"] == label],
                                           reference_boxes[reference_boxes["label"] == label], images, config.iou)
                          for label in sorted(set(proposals["label"]) | set(reference_boxes["label"]))}
    if assisted is not None:
        report["aided"] = aided_accuracy(assisted, consensus, predictions, config.threshold)
    if suggestions is not None:
        report["suggestions"] = suggestion_actions(suggestions)
    return report


__all__ = ["FROC_FP_RATES", "ValidationConfig", "aided_accuracy", "classification_metrics", "froc",
           "reader_consensus", "strongest_disagreements", "suggestion_actions", "validation_report"]
