"""Per-reader feedback: what an annotator reads about their own work and a project manager reads about
the team. For each reader, overall, by label, and by modality and body part when the reading table
carries those (optional extra `modality` / `body_part` columns): how many readings, how often the
reader agrees with the consensus, sensitivity and specificity against the consensus and against gold
items, median reading time, and the QC rules the reader tripped.

The consensus is the majority vote of the readers QC kept (a reader QC excluded is compared with the
others' consensus but does not vote), on item-labels read by at least two of them: a single reading
has nothing to agree with. A kept reader's own vote is part of the consensus they are compared with,
as in MarkIt's Algorithm 1.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from curation.agreement.consensus import TieRule, majority_vote
from curation.agreement.qc import QcReport, kept
from curation.agreement.table import Readings, as_frame

ALL = "(all)"  # the group value of a row pooled over that key (every label, modality or body part)
GROUPS = ("modality", "body_part")
METRICS = ("n_read", "n_compared", "agreement", "sensitivity", "specificity", "n_gold", "gold_accuracy",
           "gold_sensitivity", "gold_specificity", "median_seconds", "qc_flags")
# indicator columns summed per group: readings with a consensus / a gold answer, and the hits among them
_COUNTS = ("compared", "agree", "pos", "tp", "neg", "tn", "gold_n", "gold_agree", "gold_pos", "gold_tp",
           "gold_neg", "gold_tn")


@dataclass(frozen=True)
class Feedback:
    """`table`: one row per reader and group, columns `annotator`, the group keys (`modality`,
    `body_part` when present, `label`; `ALL` where pooled), `excluded` (bool) and `METRICS`.
    NaN where a figure is undefined (no consensus positive for sensitivity, no gold, no times)."""

    table: pd.DataFrame
    keys: tuple[str, ...]
    excluded: dict[str, str]
    tie_rule: TieRule

    def reader(self, annotator: str) -> dict[str, object]:
        """One reader's feedback as plain JSON: overall, per label, and per modality/body part."""
        rows = self.table[self.table["annotator"] == annotator]
        if rows.empty:
            raise KeyError(f"no feedback for reader {annotator!r}")
        groups = [k for k in self.keys if k != "label"]
        pooled = (rows[groups] == ALL).all(axis=1) if groups else pd.Series(True, index=rows.index)
        overall = rows[pooled & (rows["label"] == ALL)]
        per_label = rows[pooled & (rows["label"] != ALL)]
        out: dict[str, object] = {"excluded": self.excluded.get(annotator),
                                  "overall": _metrics(overall.iloc[0]),
                                  "per_label": {r["label"]: _metrics(r) for _, r in per_label.iterrows()}}
        if groups:
            out["per_group"] = [{**{k: r[k] for k in self.keys}, **_metrics(r)}
                                for _, r in rows[~pooled].iterrows()]
        return out

    def to_json(self) -> dict[str, object]:
        return {"tie_rule": str(self.tie_rule), "group_keys": list(self.keys),
                "readers": {a: self.reader(a) for a in sorted(self.table["annotator"].unique())}}


def _plain(value: object) -> object:
    if isinstance(value, (float, np.floating)):
        return None if np.isnan(value) else float(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    return value


def _metrics(row: pd.Series) -> dict[str, object]:
    return {m: _plain(row[m]) for m in METRICS}


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    return (num / den.where(den > 0)).astype(float)


def _indicators(frame: pd.DataFrame, consensus: pd.Series) -> pd.DataFrame:
    """Per reading, 0/1 columns whose group sums give agreement and sensitivity/specificity."""
    value = frame["value"].to_numpy()
    has = consensus.notna().to_numpy()
    truth = consensus.fillna(-1).to_numpy()
    out = {"compared": has, "agree": has & (value == truth), "pos": truth == 1, "tp": (truth == 1) & (value == 1),
           "neg": truth == 0, "tn": (truth == 0) & (value == 0)}
    gold = (frame["gold"] if "gold" in frame.columns else pd.Series(pd.NA, index=frame.index, dtype="Int64"))
    has_gold = gold.notna().to_numpy()
    g = gold.fillna(-1).to_numpy(dtype=int)
    out |= {"gold_n": has_gold, "gold_agree": has_gold & (value == g), "gold_pos": g == 1,
            "gold_tp": (g == 1) & (value == 1), "gold_neg": g == 0, "gold_tn": (g == 0) & (value == 0)}
    return pd.DataFrame({k: np.asarray(v, dtype=int) for k, v in out.items()}, index=frame.index)


def _flags_by_label(qc: QcReport | None) -> dict[str, list[tuple[str | None, str]]]:
    """annotator -> [(label or None, rule name)] of every QC flag."""
    out: dict[str, list[tuple[str | None, str]]] = {}
    for flag in qc.flags if qc is not None else []:
        out.setdefault(flag.annotator, []).append((flag.label, str(flag.rule)))
    return out


def _rules(flags: Iterable[tuple[str | None, str]], label: str) -> list[str]:
    """Rule names that concern a row: reader-wide flags, and the label's own for a per-label row."""
    return sorted({rule for flag_label, rule in flags if label == ALL or flag_label in (None, label)})


def feedback(readings: Readings | pd.DataFrame, qc: QcReport | None = None,
             tie_rule: TieRule | str = TieRule.NEGATIVE) -> Feedback:
    """Each reader's feedback against the majority vote of the readers `qc` kept (all without `qc`)."""
    frame = as_frame(readings)
    rule = TieRule(tie_rule)
    voters = kept(Readings(frame), qc) if qc is not None else Readings(frame)
    if voters.frame.empty:
        votes = pd.DataFrame(columns=["item", "label", "consensus"])
    else:
        votes = majority_vote(voters, rule).labels
        votes = votes.loc[votes["n_readers"] >= 2, ["item", "label", "consensus"]]
    consensus = frame[["item", "label"]].merge(votes, on=["item", "label"], how="left")["consensus"]
    consensus.index = frame.index
    keys = tuple(k for k in GROUPS if k in frame.columns) + ("label",)
    work = pd.concat([frame[["annotator", "value"]], _indicators(frame, consensus)], axis=1)
    for key in keys:
        work[key] = frame[key].astype("string").fillna("unknown").astype(str)
    work["seconds"] = frame["seconds"] if "seconds" in frame.columns else np.nan

    groups = [k for k in keys if k != "label"]
    levels = [[], ["label"]] + ([groups, [*groups, "label"]] if groups else [])
    parts = []
    for level in levels:
        by = ["annotator", *level]
        grouped = work.groupby(by, sort=True)
        sums = grouped[list(_COUNTS)].sum()
        sums["n_read"] = grouped.size()
        sums["median_seconds"] = grouped["seconds"].median()
        part = sums.reset_index()
        for key in keys:
            if key not in level:
                part[key] = ALL
        parts.append(part)
    table = pd.concat(parts, ignore_index=True)
    table["n_compared"] = table["compared"]
    table["agreement"] = _ratio(table["agree"], table["compared"])
    table["sensitivity"] = _ratio(table["tp"], table["pos"])
    table["specificity"] = _ratio(table["tn"], table["neg"])
    table["n_gold"] = table["gold_n"]
    table["gold_accuracy"] = _ratio(table["gold_agree"], table["gold_n"])
    table["gold_sensitivity"] = _ratio(table["gold_tp"], table["gold_pos"])
    table["gold_specificity"] = _ratio(table["gold_tn"], table["gold_neg"])
    flags = _flags_by_label(qc)
    table["qc_flags"] = [_rules(flags.get(a, []), label) for a, label in zip(table["annotator"], table["label"])]
    excluded = dict(qc.excluded) if qc is not None else {}
    table["excluded"] = table["annotator"].isin(list(excluded))
    table = table[["annotator", *keys, "excluded", *METRICS]].sort_values("annotator", kind="stable")
    return Feedback(table.reset_index(drop=True), keys, excluded, rule)
