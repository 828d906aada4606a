"""Per-reader feedback: figures worked by hand, a loop-by-loop reference on random rounds (2..10
readers, missing readings, gold, times), the modality/body-part groups, and the JSON shape."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from curation.agreement.consensus import TieRule
from curation.agreement.feedback import ALL, METRICS, feedback

MARKIT = Path(__file__).parents[2].parent / "shared" / "reference" / "markit"


def table(rows, columns=("item", "label", "annotator", "value")) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(columns))


def row(result, annotator: str, label: str = ALL, **groups) -> pd.Series:
    t = result.table
    mask = (t["annotator"] == annotator) & (t["label"] == label)
    for key in result.keys:
        if key != "label":
            mask &= t[key] == groups.get(key, ALL)
    assert mask.sum() == 1
    return t[mask].iloc[0]


def test_figures_by_hand():
    """Label k, items 1-4. Votes (A, B, C): 1:(1,1,0) -> yes, 2:(0,0,1) -> no, 3:(1,0,-) tie -> no
    (MarkIt's rule), 4:(1,-,-) single reading -> not compared. C against the consensus: item 1 misses
    a yes, item 2 a false yes: agreement 0/2, sensitivity 0/1, specificity 0/1."""
    rows = [("1", "k", "A", 1, 3.0), ("1", "k", "B", 1, 5.0), ("1", "k", "C", 0, 1.0),
            ("2", "k", "A", 0, 4.0), ("2", "k", "B", 0, 6.0), ("2", "k", "C", 1, 2.0),
            ("3", "k", "A", 1, 8.0), ("3", "k", "B", 0, 7.0),
            ("4", "k", "A", 1, 10.0)]
    result = feedback(table(rows, ("item", "label", "annotator", "value", "seconds")))
    a, c = row(result, "A"), row(result, "C")
    assert (a["n_read"], a["n_compared"]) == (4, 3)
    assert a["agreement"] == pytest.approx(2 / 3)  # items 1, 2 agree; item 3 says yes, the tie says no
    assert a["sensitivity"] == 1.0 and a["specificity"] == pytest.approx(1 / 2)
    assert a["median_seconds"] == pytest.approx(6.0)  # 3, 4, 8, 10
    assert (c["n_compared"], c["agreement"], c["sensitivity"], c["specificity"]) == (2, 0.0, 0.0, 0.0)
    assert c["median_seconds"] == pytest.approx(1.5)
    assert np.isnan(a["gold_accuracy"]) and a["n_gold"] == 0 and a["qc_flags"] == []
    positive_ties = feedback(table([r[:4] for r in rows]), tie_rule=TieRule.POSITIVE)
    assert row(positive_ties, "A")["agreement"] == 1.0 and np.isnan(row(positive_ties, "A")["median_seconds"])
    undecided = feedback(table([r[:4] for r in rows]), tie_rule="undecided")
    assert row(undecided, "A")["n_compared"] == 2


def test_gold_items():
    rows = [("1", "k", "A", 1, 1), ("1", "k", "B", 0, 1), ("2", "k", "A", 0, 0), ("2", "k", "B", 0, 0),
            ("3", "k", "A", 1, None), ("3", "k", "B", 1, None)]
    result = feedback(table(rows, ("item", "label", "annotator", "value", "gold")))
    a, b = row(result, "A"), row(result, "B")
    assert (a["n_gold"], a["gold_accuracy"], a["gold_sensitivity"], a["gold_specificity"]) == (2, 1.0, 1.0, 1.0)
    assert (b["n_gold"], b["gold_accuracy"], b["gold_sensitivity"], b["gold_specificity"]) == (2, 0.5, 0.0, 1.0)


@st.composite
def rounds(draw) -> pd.DataFrame:
    """2..10 readers, 1..3 labels, up to 10 items over two modalities and body parts, readings
    missing with probability ~1/4, some gold answers and reading times."""
    n_readers = draw(st.integers(2, 10))
    labels = [f"L{k}" for k in range(draw(st.integers(1, 3)))]
    n_items = draw(st.integers(1, 10))
    place = {j: (draw(st.sampled_from(["CR", "CT"])), draw(st.sampled_from(["CHEST", "HEAD"])))
             for j in range(n_items)}
    rows = []
    for k in labels:
        for j in range(n_items):
            gold = draw(st.sampled_from([None, 0, 1]))
            for r in range(n_readers):
                if draw(st.integers(0, 3)) > 0:
                    rows.append((f"i{j}", k, f"r{r}", draw(st.integers(0, 1)), gold,
                                 draw(st.floats(0.5, 60)), *place[j]))
    assume(rows)
    return table(rows, ("item", "label", "annotator", "value", "gold", "seconds", "modality", "body_part"))


def reference(frame: pd.DataFrame, annotator: str, subset: pd.Series) -> dict[str, float]:
    """The feedback figures of one reader on `subset` of the rows, by plain loops."""
    consensus = {}
    for (item, label), votes in frame.groupby(["item", "label"])["value"]:
        if len(votes) >= 2:
            consensus[item, label] = int(votes.sum() > len(votes) - votes.sum())
    mine = frame[subset & (frame["annotator"] == annotator)]
    pairs = [(v, consensus[i, k]) for i, k, v in zip(mine["item"], mine["label"], mine["value"]) if (i, k) in consensus]
    gold = [(v, g) for v, g in zip(mine["value"], mine["gold"]) if g is not None and not pd.isna(g)]

    def share(hits, total):
        return hits / total if total else np.nan
    return {"n_read": len(mine), "n_compared": len(pairs),
            "agreement": share(sum(v == c for v, c in pairs), len(pairs)),
            "sensitivity": share(sum(v == 1 for v, c in pairs if c == 1), sum(c == 1 for _, c in pairs)),
            "specificity": share(sum(v == 0 for v, c in pairs if c == 0), sum(c == 0 for _, c in pairs)),
            "n_gold": len(gold), "gold_accuracy": share(sum(v == g for v, g in gold), len(gold)),
            "gold_sensitivity": share(sum(v == 1 for v, g in gold if g == 1), sum(g == 1 for _, g in gold)),
            "gold_specificity": share(sum(v == 0 for v, g in gold if g == 0), sum(g == 0 for _, g in gold)),
            "median_seconds": float(np.median(mine["seconds"])) if len(mine) else np.nan}


@settings(max_examples=60, deadline=None)
@given(rounds())
def test_every_row_equals_the_loop_reference(frame):
    result = feedback(frame)
    assert result.keys == ("modality", "body_part", "label")
    for _, got in result.table.iterrows():
        subset = pd.Series(True, index=frame.index)
        for key in result.keys:
            if got[key] != ALL:
                subset &= frame[key] == got[key]
        expected = reference(frame, got["annotator"], subset)
        assert expected["n_read"] > 0
        for name, value in expected.items():
            assert got[name] == pytest.approx(value, nan_ok=True), name
    # every (reader, modality, body part, label) that was read has its row, and the pooled rows exist
    read = frame.groupby(["annotator", "modality", "body_part", "label"]).size()
    detailed = result.table[(result.table[["modality", "body_part", "label"]] != ALL).all(axis=1)]
    assert len(detailed) == len(read)
    overall = result.table[(result.table[["modality", "body_part", "label"]] == ALL).all(axis=1)]
    assert sorted(overall["annotator"]) == sorted(frame["annotator"].unique())


def test_without_group_columns_there_are_only_overall_and_label_rows():
    rows = [(str(j), k, r, (j + len(r)) % 2) for j in range(3) for k in ("a", "b") for r in ("x", "yy")]
    result = feedback(table(rows).assign(site="kept but not a group"))
    assert result.keys == ("label",)
    assert sorted(result.table["label"]) == [ALL, ALL, "a", "a", "b", "b"]
    assert "per_group" not in result.reader("x")


def test_a_missing_modality_is_its_own_group():
    rows = [("1", "k", "A", 1, "CT"), ("1", "k", "B", 1, None), ("2", "k", "A", 0, None), ("2", "k", "B", 1, None)]
    result = feedback(table(rows, ("item", "label", "annotator", "value", "modality")))
    assert set(result.table["modality"]) == {ALL, "CT", "unknown"}


def test_json_is_plain_and_complete():
    rows = [(str(j), k, r, (j * 7 + len(k) + ord(r)) % 2, 2.0 + j, "CR", "CHEST")
            for j in range(4) for k in ("a", "b") for r in "ABC"]
    result = feedback(table(rows, ("item", "label", "annotator", "value", "seconds", "modality", "body_part")))
    out = result.to_json()
    assert json.loads(json.dumps(out, allow_nan=False)) == out
    assert out["group_keys"] == ["modality", "body_part", "label"]
    reader = out["readers"]["A"]
    assert set(reader) == {"excluded", "overall", "per_label", "per_group"}
    assert set(reader["overall"]) == set(METRICS) and set(reader["per_label"]) == {"a", "b"}
    assert {(g["modality"], g["body_part"], g["label"]) for g in reader["per_group"]} == {
        ("CR", "CHEST", ALL), ("CR", "CHEST", "a"), ("CR", "CHEST", "b")}
    with pytest.raises(KeyError):
        result.reader("nobody")


def test_markit_radiologists_against_their_majority():
    """On the three radiologists' 7,000 readings every disagreeing item-label is a 2-1 split: each
    reader's disagreements with the majority sum to the 676 split pairs."""
    if not (MARKIT / "agreement_list.csv").exists():
        pytest.skip(f"MarkIt reference data absent: {MARKIT} (see its README)")
    from curation.agreement.table import read_markit
    readings = read_markit(MARKIT / "agreement_list.csv", ["Annotator A", "Annotator B", "Annotator C"])
    overall = feedback(readings).table.query("label == @ALL").set_index("annotator")
    assert (overall["n_compared"] == 7000).all()
    assert round(((1 - overall["agreement"]) * 7000).sum()) == 676


def test_readers_qc_excludes_are_compared_but_do_not_vote():
    """Reader d answers at random: QC excludes it (AI filter, per label). Its figures are against
    the majority of a, b, c; a, b, c get exactly the feedback they get without d in the table."""
    from curation.agreement.qc import check
    rng = np.random.default_rng(11)
    rows = []
    for label, prevalence in (("nodule", 0.3), ("effusion", 0.5)):
        truth = rng.random(80) < prevalence
        for reader in "abcd":
            says = rng.random(80) < 0.5 if reader == "d" else np.where(rng.random(80) < 0.9, truth, ~truth)
            rows += [(f"i{j}", label, reader, int(says[j]), 0.9 if truth[j] else 0.1) for j in range(80)]
    frame = table(rows, ("item", "label", "annotator", "value", "ai_probability"))
    qc = check(frame)
    assert list(qc.excluded) == ["d"]
    result = feedback(frame, qc)
    alone = feedback(frame[frame["annotator"] != "d"])
    kept_rows = result.table[result.table["annotator"] != "d"].reset_index(drop=True)
    columns = [c for c in kept_rows.columns if c != "qc_flags"]
    pd.testing.assert_frame_equal(kept_rows[columns], alone.table[columns])
    d = row(result, "d")
    assert d["excluded"] and d["n_compared"] == 160 and d["agreement"] < 0.7
    voters = frame[frame["annotator"] != "d"].groupby(["item", "label"])["value"].sum() >= 2
    mine = frame[frame["annotator"] == "d"].set_index(["item", "label"])["value"]
    assert d["agreement"] == pytest.approx((mine == voters.reindex(mine.index).astype(int)).mean())
    ai_labels = {f.label for f in qc.flags if f.annotator == "d" and str(f.rule) == "ai_filter"}
    for label in ("nodule", "effusion"):
        assert ("ai_filter" in row(result, "d", label)["qc_flags"]) == (label in ai_labels)
    assert d["qc_flags"] == qc.rules_of("d")
    assert result.to_json()["readers"]["d"]["excluded"] == qc.excluded["d"]
    assert result.to_json()["readers"]["a"]["excluded"] is None
