"""Splitting a reward budget between readers, in three modes (formulas in docs/agreement.md).

* `general` (default): for any number of readers. Each item-label with at least two payable readings
  is a pool worth (mean reading time of its label) x (number of readings) x (1 + disagreement); the
  readers in the majority share it, each minority reader gets `minority_share` of a majority share
  (0 by default: MarkIt's credit for disagreeing with the pseudo answer is 0 too). The budget is split
  in proportion to the readers' credits.
* `paper`: MarkIt's Algorithm 1 and Eq. 1 exactly (Witowski, Choi et al., Blockchain in Healthcare
  Today 2021). Its constants only make sense for three readers: with four a unanimous item pays
  nothing, with five or more it pays a negative amount, and a minority reader's credit is negative.
* `published`: reproduces the split the paper printed (each reader's share of all positive labels,
  truncated to two decimals), which Eq. 1 does not give. Only for comparison with the paper.

Readers excluded by QC are dropped before votes are counted and earn nothing; the reason is kept.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from fractions import Fraction

import numpy as np
import pandas as pd

from curation.agreement.consensus import vote_counts
from curation.agreement.table import Readings, as_frame


class RewardMode(StrEnum):
    GENERAL = "general"
    PAPER = "paper"
    PUBLISHED = "published"


@dataclass(frozen=True)
class RewardSplit:
    """`rewards` covers every reader (excluded ones at 0); `scores` are the raw scores before the
    budget is split (credits in general mode, Eq. 1 sums in paper mode, positive labels in published)."""

    mode: RewardMode
    budget: float
    rewards: dict[str, float]
    excluded: dict[str, str] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {"mode": str(self.mode), "rewards": self.rewards, "excluded": self.excluded}


def label_times(readings: Readings | pd.DataFrame, times: Mapping[str, float] | None = None) -> dict[str, float]:
    """Mean reading time per label: `times` (e.g. MarkIt's time_duration.csv) when given, else the
    mean of the `seconds` column per label, else 1 for every label (time then plays no part)."""
    frame = as_frame(readings)
    labels = sorted(frame["label"].unique())
    if times is not None:
        missing = [k for k in labels if k not in times]
        if missing:
            raise ValueError(f"no reading time for label(s) {missing}")
        out = {k: float(times[k]) for k in labels}
    elif "seconds" in frame.columns and frame["seconds"].notna().any():
        mean = frame.groupby("label")["seconds"].mean()
        if mean.isna().any():
            raise ValueError(f"no `seconds` for label(s) {sorted(mean[mean.isna()].index)}")
        out = {k: float(mean[k]) for k in labels}
    else:
        out = dict.fromkeys(labels, 1.0)
    bad = [k for k, t in out.items() if not (math.isfinite(t) and t > 0)]
    if bad:
        raise ValueError(f"reading time must be a positive number for label(s) {bad}")
    return out


def read_times(path: str) -> dict[str, float]:
    """A `Label,Mean time` CSV (MarkIt's time_duration.csv; other columns ignored)."""
    table = pd.read_csv(path)
    table.columns = [c.strip() for c in table.columns]
    missing = [c for c in ("Label", "Mean time") if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; have {list(table.columns)}")
    return {str(k).strip(): float(v) for k, v in zip(table["Label"], table["Mean time"])}


def _votes(frame: pd.DataFrame) -> pd.DataFrame:
    """Each reading's keys and value (in row order) with its item-label's N, NT, NF from `vote_counts`."""
    counts = vote_counts(Readings(frame)).rename(columns={"n_readers": "n", "n_positive": "nt", "n_negative": "nf"})
    return frame[["item", "label", "annotator", "value"]].merge(counts, on=["item", "label"], how="left",
                                                                 validate="many_to_one")


def item_credits(readings: Readings | pd.DataFrame, times: Mapping[str, float] | None = None,
                 minority_share: float = 0.0, difficulty_weight: float = 1.0) -> pd.DataFrame:
    """General mode, per reading: item, label, annotator, credit (not yet scaled to the budget).

    pool = time_k x n x (1 + difficulty_weight x d), d = 2 x minority / n (0 unanimous, 1 a tie);
    a majority reader's credit is pool / (majority + minority_share x minority), a minority reader's
    minority_share times that. A tie has no minority: all its readers share the pool equally. Items
    with a single reading pay nothing (there is nothing to agree with)."""
    if not 0 <= minority_share <= 1:
        raise ValueError("minority_share must be in [0, 1]: the majority never earns less than the minority")
    if difficulty_weight < 0:
        raise ValueError("difficulty_weight must be >= 0: harder items never pay less")
    source = Readings(as_frame(readings))
    frame = _votes(source.frame)
    time = frame["label"].map(label_times(source, times)).to_numpy(dtype=float)
    n = frame["n"].to_numpy()
    nt, nf = frame["nt"].to_numpy(), frame["nf"].to_numpy()
    majority, minority = np.maximum(nt, nf), np.minimum(nt, nf)
    tie = nt == nf
    in_majority = tie | (frame["value"].to_numpy() == (nt > nf))
    pool = time * n * (1 + difficulty_weight * 2 * minority / n)
    shares = np.where(tie, n, majority + minority_share * minority)
    credit = pool / shares * np.where(in_majority, 1.0, minority_share)
    credit[n < 2] = 0.0
    return frame[["item", "label", "annotator"]].assign(credit=credit)


def paper_scores(readings: Readings | pd.DataFrame, times: Mapping[str, float] | None = None) -> dict[str, float]:
    """Algorithm 1 + Eq. 1 of MarkIt, summed per reader: sum over labels k and items j of
    (T_k + time_k / max time) x 2(0.5 - D) x 4(0.25 - r)."""
    source = Readings(as_frame(readings))
    frame = _votes(source.frame)
    n, nt, nf = frame["n"].to_numpy(), frame["nt"].to_numpy(), frame["nf"].to_numpy()
    answer_yes = nt > nf
    difficulty = np.where(answer_yes, nt / n, nf / n)
    value = frame["value"].to_numpy()
    with np.errstate(divide="ignore"):
        r = np.where(answer_yes & (value == 1), 1 / nt, np.where(~answer_yes & (value == 0), 1 / nf, 0.0))
    answers = frame.assign(answer=answer_yes).drop_duplicates(["label", "item"])
    share_yes = answers.groupby("label")["answer"].mean()
    mean_time = label_times(source, times)
    slowest = max(mean_time.values())
    weight = frame["label"].map(lambda k: share_yes[k] + mean_time[k] / slowest).to_numpy(dtype=float)
    term = weight * 2 * (0.5 - difficulty) * 4 * (0.25 - r)
    return {str(a): float(s) for a, s in pd.Series(term).groupby(frame["annotator"].to_numpy()).sum().items()}


def _truncate(amount: Fraction, decimals: int) -> float:
    scale = 10 ** decimals
    return math.floor(amount * scale) / scale


def split_rewards(readings: Readings | pd.DataFrame, budget: float, mode: RewardMode | str = RewardMode.GENERAL,
                  times: Mapping[str, float] | None = None, excluded: Mapping[str, str] | None = None,
                  minority_share: float = 0.0, difficulty_weight: float = 1.0) -> RewardSplit:
    """Split `budget` between the readers of `readings` (see the module docstring for the modes).
    `excluded` maps readers who failed QC to the reason; they are left out of every vote and get 0."""
    mode = RewardMode(mode)
    if not (math.isfinite(budget) and budget >= 0):
        raise ValueError("budget must be a finite number >= 0")
    frame = as_frame(readings)
    everyone = sorted(frame["annotator"].unique())
    excluded = {str(a): str(why) for a, why in (excluded or {}).items()}
    payable = frame[~frame["annotator"].isin(list(excluded))]
    if payable.empty:
        raise ValueError("every reader is excluded: nobody to pay")
    if mode is RewardMode.GENERAL:
        credits = item_credits(Readings(payable), times, minority_share, difficulty_weight)
        scores = credits.groupby("annotator")["credit"].sum().to_dict()
    elif mode is RewardMode.PAPER:
        scores = paper_scores(Readings(payable), times)
    else:
        scores = payable.groupby("annotator")["value"].sum().astype(float).to_dict()
    total = sum(scores.values())
    if not total > 0:
        raise ValueError(f"{mode} mode: the raw scores sum to {total:g}; the budget cannot be split "
                         "in proportion to them")
    if mode is RewardMode.PUBLISHED:
        positives = {a: int(s) for a, s in scores.items()}
        whole = sum(positives.values())
        paid = {a: _truncate(Fraction(budget) * p / whole, 2) for a, p in positives.items()}
    else:
        paid = {a: budget * s / total for a, s in scores.items()}
    rewards = {a: float(paid.get(a, 0.0)) for a in everyone}
    return RewardSplit(mode, float(budget), rewards, {a: excluded[a] for a in sorted(excluded)},
                       {str(a): float(s) for a, s in scores.items()})
