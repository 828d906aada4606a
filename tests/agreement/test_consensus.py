"""Majority vote (ties reported) and Dawid-Skene against cases whose answer can be derived."""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from curation.agreement.consensus import TieRule, dawid_skene, majority_vote, vote_counts

MARKIT = Path(__file__).parents[2].parent / "shared" / "reference" / "markit"
RADIOLOGISTS = ["Annotator A", "Annotator B", "Annotator C"]


def table(rows: list[tuple[str, str, str, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["item", "label", "annotator", "value"])


def simulate(sens: list[float], spec: list[float], n_items: int, prevalence: float, missing: float,
             seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Readers with known sensitivity/specificity reading `n_items` items of one label."""
    rng = np.random.default_rng(seed)
    truth = rng.random(n_items) < prevalence
    rows = []
    for a, (s, p) in enumerate(zip(sens, spec)):
        says_yes = np.where(truth, rng.random(n_items) < s, rng.random(n_items) >= p)
        read = rng.random(n_items) >= missing
        rows += [(f"i{j}", "finding", f"r{a}", int(says_yes[j])) for j in np.flatnonzero(read)]
    return table(rows), truth


def test_majority_vote_ties_follow_the_rule_and_are_reported():
    rows = [("x", "k", "a", 1), ("x", "k", "b", 0),  # tie
            ("y", "k", "a", 1), ("y", "k", "b", 1), ("y", "k", "c", 0),  # yes 2-1
            ("z", "k", "a", 0)]  # a single reading
    for rule, tied in ((TieRule.NEGATIVE, 0.0), (TieRule.POSITIVE, 1.0), (TieRule.UNDECIDED, None)):
        vote = majority_vote(table(rows), rule)
        labels = vote.labels.set_index("item")
        assert list(vote.ties["item"]) == ["x"]
        assert labels.loc["y", "consensus"] == 1.0 and labels.loc["z", "consensus"] == 0.0
        assert pd.isna(labels.loc["x", "consensus"]) if tied is None else labels.loc["x", "consensus"] == tied
        summary = vote.summary()
        assert summary["ties"] == 1 and summary["tie_rule"] == str(rule)
        assert summary["undecided"] == (1 if tied is None else 0)


def test_vote_counts_reproduce_the_markit_unanimity_counts():
    if not (MARKIT / "agreement_list.csv").exists():
        pytest.skip(f"MarkIt reference data absent: {MARKIT}")
    from curation.agreement.table import read_markit
    counts = vote_counts(read_markit(MARKIT / "agreement_list.csv", RADIOLOGISTS))
    assert (counts["n_positive"] == 3).sum() == 370
    assert (counts["n_negative"] == 3).sum() == 5954
    assert ((counts["n_positive"] > 0) & (counts["n_negative"] > 0)).sum() == 676


def test_perfect_readers_recover_the_truth():
    frame, truth = simulate([1.0] * 3, [1.0] * 3, 200, 0.3, 0.0, seed=1)
    ds = dawid_skene(frame)
    p = ds.posterior.set_index("item").loc[[f"i{j}" for j in range(200)], "p_positive"].to_numpy()
    assert np.array_equal(p > 0.5, truth)
    assert np.all(np.abs(p - truth) < 1e-6)
    assert np.allclose(ds.readers[["sensitivity", "specificity"]], 1.0, atol=1e-5)
    assert ds.converged


def test_a_reader_who_always_inverts_gets_sensitivity_and_specificity_near_zero():
    frame, truth = simulate([0.95, 0.9, 0.92, 0.0], [0.95, 0.93, 0.9, 0.0], 1000, 0.4, 0.0, seed=2)
    readers = dawid_skene(frame).readers.set_index("annotator")
    assert readers.loc["r3", "sensitivity"] < 0.01 and readers.loc["r3", "specificity"] < 0.01
    assert (readers.loc[["r0", "r1", "r2"], ["sensitivity", "specificity"]] > 0.85).all().all()


def test_known_sensitivity_and_specificity_are_recovered_with_missing_readings():
    sens, spec = [0.9, 0.8, 0.7, 0.95, 0.6], [0.95, 0.9, 0.8, 0.7, 0.85]
    frame, truth = simulate(sens, spec, 2000, 0.3, 0.2, seed=3)
    ds = dawid_skene(frame)
    readers = ds.readers.set_index("annotator")
    assert np.allclose(readers["sensitivity"], sens, atol=0.05)
    assert np.allclose(readers["specificity"], spec, atol=0.05)
    assert abs(ds.prevalence["finding"] - truth.mean()) < 0.03
    # weighing readers beats counting them on the same readings
    p = ds.posterior.set_index("item")["p_positive"]
    vote = majority_vote(frame).labels.set_index("item")["consensus"]
    order = [f"i{j}" for j in range(2000)]
    assert ((p[order] >= 0.5).to_numpy() == truth).mean() >= ((vote[order] == 1).to_numpy() == truth).mean()


def _brute_log_likelihood(frame: pd.DataFrame, sens: dict[str, float], spec: dict[str, float],
                          prevalence: float) -> float:
    """Marginal log-likelihood by summing over every assignment of true answers (small tables only)."""
    items = sorted(frame["item"].unique())
    total = 0.0
    for truth in itertools.product((0, 1), repeat=len(items)):
        known = dict(zip(items, truth))
        prob = np.prod([prevalence if t else 1 - prevalence for t in truth])
        for item, reader, value in frame[["item", "annotator", "value"]].itertuples(index=False):
            s, p = sens[reader], spec[reader]
            prob *= (s if value else 1 - s) if known[item] else (1 - p if value else p)
        total += prob
    return float(np.log(total))


def test_dawid_skene_stops_at_a_maximum_of_the_likelihood_computed_by_enumeration():
    rows = [(f"i{j}", "k", r, v) for j, votes in enumerate(
        [(1, 1, 0, 1), (0, 0, 0, 1), (1, 0, 1, 1), (0, 0, 1, 0), (1, 1, 1, 0), (0, 1, 0, 0), (1, 1, None, 1),
         (0, None, 0, 0)]) for r, v in zip("abcd", votes) if v is not None]
    frame = table(rows)
    ds = dawid_skene(frame, tol=1e-12, max_iter=20000)
    assert ds.converged
    assert all(b >= a - 1e-9 for a, b in zip(ds.log_likelihood, ds.log_likelihood[1:]))  # EM never descends
    sens = dict(zip(ds.readers["annotator"], ds.readers["sensitivity"]))
    spec = dict(zip(ds.readers["annotator"], ds.readers["specificity"]))
    best = _brute_log_likelihood(frame, sens, spec, ds.prevalence["k"])
    assert best == pytest.approx(ds.log_likelihood[-1], abs=1e-7)
    for name, params in (("sens", sens), ("spec", spec)):
        for reader, value in params.items():
            if 1e-3 < value < 1 - 1e-3:  # an interior optimum: every small step lowers the likelihood
                for step in (-1e-3, 1e-3):
                    moved = {**params, reader: value + step}
                    ll = _brute_log_likelihood(frame, moved if name == "sens" else sens,
                                               moved if name == "spec" else spec, ds.prevalence["k"])
                    assert ll < best + 1e-9
    for step in (-1e-3, 1e-3):
        assert _brute_log_likelihood(frame, sens, spec, ds.prevalence["k"] + step) < best + 1e-9


def test_per_label_confusion_matrices_and_determinism():
    a, _ = simulate([0.9, 0.6, 0.8], [0.9, 0.95, 0.7], 600, 0.5, 0.1, seed=4)
    b, _ = simulate([0.6, 0.9, 0.8], [0.95, 0.9, 0.7], 600, 0.5, 0.1, seed=5)
    frame = pd.concat([a, b.assign(label="other")], ignore_index=True)
    ds = dawid_skene(frame, per_label=True)
    readers = ds.readers.set_index(["annotator", "label"])
    assert readers.loc[("r0", "finding"), "sensitivity"] > readers.loc[("r0", "other"), "sensitivity"] + 0.15
    assert readers.loc[("r1", "other"), "sensitivity"] > readers.loc[("r1", "finding"), "sensitivity"] + 0.15
    again = dawid_skene(frame.sample(frac=1.0, random_state=0), per_label=True)
    pd.testing.assert_frame_equal(ds.posterior, again.posterior)
    stopped = dawid_skene(frame, per_label=True, max_iter=2)
    assert not stopped.converged and stopped.n_iter == 2


def test_dawid_skene_on_markit_radiologists():
    """The figures quoted in docs/agreement.md."""
    if not (MARKIT / "agreement_list.csv").exists():
        pytest.skip(f"MarkIt reference data absent: {MARKIT}")
    from curation.agreement.table import read_markit
    ds = dawid_skene(read_markit(MARKIT / "agreement_list.csv", RADIOLOGISTS))
    readers = ds.readers.set_index("annotator").loc[RADIOLOGISTS]
    assert readers["sensitivity"].round(2).tolist() == [0.77, 0.76, 0.63]
    assert readers["specificity"].round(3).tolist() == [0.984, 0.990, 0.993]
    assert ds.summary()["positive"] == 868 and ds.converged


def test_summaries_are_plain_json_for_the_agreement_command():
    import json
    frame, _ = simulate([0.9, 0.8, 0.7, 0.6], [0.9, 0.9, 0.9, 0.8], 100, 0.3, 0.1, seed=6)
    for summary in (majority_vote(frame).summary(), dawid_skene(frame).summary()):
        assert json.loads(json.dumps(summary)) == summary
