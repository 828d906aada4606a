"""Consensus labels from several readers: majority vote and Dawid-Skene.

Majority vote is what a reader can check by hand, so it is the reference for rewards; its ties are
resolved by a named rule and every tie is reported, never hidden. Dawid-Skene (1979) weighs readers by
their estimated reliability instead of counting them equally: EM over each reader's confusion matrix
(binary labels: sensitivity and specificity) and each label's prevalence, with missing readings
allowed. It is initialised from the soft majority vote, so the same table always gives the same answer.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd
from scipy.special import expit

from curation.agreement.table import Readings, as_frame

_CLIP = 1e-6  # keeps log-probabilities finite for perfect (or perfectly inverted) readers


class TieRule(StrEnum):
    """How an item-label with as many yes as no votes is decided."""

    NEGATIVE = "negative"  # MarkIt's Algorithm 1: yes only if NT > NF
    POSITIVE = "positive"  # for screening, where a missed finding costs more than a false alarm
    UNDECIDED = "undecided"  # no consensus (NaN): the item goes back for another reading


def vote_counts(readings: Readings | pd.DataFrame) -> pd.DataFrame:
    """Per item-label: `n_readers`, `n_positive` (NT), `n_negative` (NF), sorted by label and item."""
    frame = as_frame(readings)
    grouped = frame.groupby(["label", "item"], sort=True)["value"]
    counts = pd.DataFrame({"n_readers": grouped.size(), "n_positive": grouped.sum()}).reset_index()
    counts["n_positive"] = counts["n_positive"].astype(int)
    counts["n_negative"] = counts["n_readers"] - counts["n_positive"]
    return counts[["item", "label", "n_readers", "n_positive", "n_negative"]]


@dataclass(frozen=True)
class MajorityVote:
    """`labels`: item, label, n_readers, n_positive, n_negative, tie (bool), consensus (1/0, NaN when
    undecided). `ties` lists the tied item-labels so a report can show how each was resolved."""

    labels: pd.DataFrame
    tie_rule: TieRule

    @property
    def ties(self) -> pd.DataFrame:
        return self.labels.loc[self.labels["tie"], ["item", "label", "n_readers"]].reset_index(drop=True)

    def summary(self) -> dict[str, object]:
        decided = self.labels["consensus"].dropna()
        return {"method": "majority", "tie_rule": str(self.tie_rule), "n_item_labels": len(self.labels),
                "positive": int((decided == 1).sum()), "negative": int((decided == 0).sum()),
                "ties": int(self.labels["tie"].sum()), "undecided": int(self.labels["consensus"].isna().sum())}


def majority_vote(readings: Readings | pd.DataFrame, tie_rule: TieRule | str = TieRule.NEGATIVE) -> MajorityVote:
    """Yes where more readers said yes than no; ties decided by `tie_rule` and flagged."""
    rule = TieRule(tie_rule)
    labels = vote_counts(readings)
    tie = labels["n_positive"] == labels["n_negative"]
    consensus = (labels["n_positive"] > labels["n_negative"]).astype(float)
    if rule is TieRule.POSITIVE:
        consensus[tie] = 1.0
    elif rule is TieRule.UNDECIDED:
        consensus[tie] = np.nan
    return MajorityVote(labels.assign(tie=tie, consensus=consensus), rule)


@dataclass(frozen=True)
class DawidSkene:
    """`posterior`: item, label, p_positive. `readers`: annotator (and label when fitted per label),
    sensitivity, specificity, n_readings. `prevalence`: per label. `log_likelihood`: the marginal
    log-likelihood after each EM iteration (EM never lowers it)."""

    posterior: pd.DataFrame
    readers: pd.DataFrame
    prevalence: dict[str, float]
    log_likelihood: tuple[float, ...]
    converged: bool

    @property
    def n_iter(self) -> int:
        return len(self.log_likelihood)

    def consensus(self, threshold: float = 0.5) -> pd.DataFrame:
        """item, label, consensus: 1 where the posterior is at least `threshold`."""
        return self.posterior.assign(consensus=(self.posterior["p_positive"] >= threshold).astype(int))

    def summary(self) -> dict[str, object]:
        return {"method": "dawid_skene", "n_item_labels": len(self.posterior), "iterations": self.n_iter,
                "converged": self.converged,
                "positive": int((self.posterior["p_positive"] >= 0.5).sum()),
                "readers": self.readers.to_dict(orient="records")}


@dataclass(frozen=True)
class _Design:
    """Readings as index arrays: unit = item-label, group = the confusion matrix a reading uses."""

    unit: np.ndarray
    group: np.ndarray
    value: np.ndarray
    unit_label: np.ndarray
    n_units: int
    n_groups: int
    n_labels: int


def _log_terms(d: _Design, sens: np.ndarray, spec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per unit: log P(its readings | truth yes) and log P(its readings | truth no)."""
    positive = d.value == 1
    yes = np.where(positive, np.log(sens)[d.group], np.log1p(-sens)[d.group])
    no = np.where(positive, np.log1p(-spec)[d.group], np.log(spec)[d.group])
    return (np.bincount(d.unit, weights=yes, minlength=d.n_units),
            np.bincount(d.unit, weights=no, minlength=d.n_units))


def _m_step(d: _Design, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sensitivity, specificity per group and prevalence per label that maximise the expected
    log-likelihood given the posterior `truth`; a group with no weight on a class stays at 0.5."""
    t = truth[d.unit]
    pos_w = np.bincount(d.group, weights=t, minlength=d.n_groups)
    neg_w = np.bincount(d.group, weights=1 - t, minlength=d.n_groups)
    tp = np.bincount(d.group, weights=t * d.value, minlength=d.n_groups)
    tn = np.bincount(d.group, weights=(1 - t) * (1 - d.value), minlength=d.n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        sens = np.where(pos_w > 0, tp / pos_w, 0.5)
        spec = np.where(neg_w > 0, tn / neg_w, 0.5)
    prevalence = (np.bincount(d.unit_label, weights=truth, minlength=d.n_labels)
                  / np.bincount(d.unit_label, minlength=d.n_labels))
    return (np.clip(sens, _CLIP, 1 - _CLIP), np.clip(spec, _CLIP, 1 - _CLIP),
            np.clip(prevalence, _CLIP, 1 - _CLIP))


def dawid_skene(readings: Readings | pd.DataFrame, per_label: bool = False, tol: float = 1e-8,
                max_iter: int = 1000) -> DawidSkene:
    """Dawid-Skene EM for yes/no labels. One confusion matrix per reader (`per_label=False`, pooled
    over labels: stable with few items) or per reader and label (`per_label=True`: readers differ by
    finding). Prevalence is always per label. Stops when no posterior moves by more than `tol`."""
    frame = as_frame(readings)
    units = frame[["label", "item"]].drop_duplicates().sort_values(["label", "item"]).reset_index(drop=True)
    unit_index = pd.MultiIndex.from_frame(units)
    unit = unit_index.get_indexer(pd.MultiIndex.from_frame(frame[["label", "item"]]))
    group_keys = ["annotator", "label"] if per_label else ["annotator"]
    groups = frame[group_keys].drop_duplicates().sort_values(group_keys).reset_index(drop=True)
    group = pd.MultiIndex.from_frame(groups).get_indexer(pd.MultiIndex.from_frame(frame[group_keys]))
    label_names = sorted(units["label"].unique())
    unit_label = pd.Index(label_names).get_indexer(units["label"])
    value = frame["value"].to_numpy(dtype=float)
    d = _Design(unit, group, value, unit_label, len(units), len(groups), len(label_names))

    n_per_unit = np.bincount(unit, minlength=d.n_units)
    truth = np.bincount(unit, weights=value, minlength=d.n_units) / n_per_unit  # soft majority vote
    history: list[float] = []
    converged = False
    for _ in range(max_iter):
        sens, spec, prevalence = _m_step(d, truth)
        log_yes, log_no = _log_terms(d, sens, spec)
        joint_yes = np.log(prevalence[unit_label]) + log_yes
        joint_no = np.log1p(-prevalence[unit_label]) + log_no
        history.append(float(np.logaddexp(joint_yes, joint_no).sum()))
        new_truth = expit(joint_yes - joint_no)
        change = float(np.max(np.abs(new_truth - truth)))
        truth = new_truth
        if change <= tol:
            converged = True
            break
    sens, spec, prevalence = _m_step(d, truth)
    n_readings = np.bincount(group, minlength=d.n_groups)
    readers = groups.assign(sensitivity=sens, specificity=spec, n_readings=n_readings)
    posterior = units[["item", "label"]].assign(p_positive=truth)
    return DawidSkene(posterior, readers, dict(zip(label_names, map(float, prevalence))), tuple(history),
                      converged)
