"""Rewards: the MarkIt reference (published and paper modes), the paper's pathology with four readers,
and every stated property of the general mode as hypothesis properties for 2..10 readers."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from curation.agreement.reward import RewardMode, item_credits, paper_scores, read_times, split_rewards

MARKIT = Path(__file__).parents[2].parent / "shared" / "reference" / "markit"
RADIOLOGISTS = ["Annotator A", "Annotator B", "Annotator C"]


def table(rows: list[tuple[str, str, str, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["item", "label", "annotator", "value"])


@pytest.fixture(scope="module")
def markit():
    if not (MARKIT / "agreement_list.csv").exists():
        pytest.skip(f"MarkIt reference data absent: {MARKIT} (see its README)")
    from curation.agreement.table import read_markit
    return read_markit(MARKIT / "agreement_list.csv", RADIOLOGISTS), read_times(str(MARKIT / "time_duration.csv"))


def test_published_mode_reproduces_the_paper(markit):
    readings, times = markit
    split = split_rewards(readings, 1000, RewardMode.PUBLISHED, times=times)
    assert split.rewards == {"Annotator A": 371.01, "Annotator B": 346.85, "Annotator C": 282.12}
    assert split.scores == {"Annotator A": 768.0, "Annotator B": 718.0, "Annotator C": 584.0}
    assert split.to_json()["mode"] == "published"


def test_paper_mode_on_the_markit_data_differs_from_the_published_split(markit):
    """Eq. 1 as written gives A 335.04, B 334.28, C 330.68: agreement with the 2-of-3 majority, which
    the three radiologists share almost equally, not their count of positive labels."""
    readings, times = markit
    rewards = split_rewards(readings, 1000, RewardMode.PAPER, times=times).rewards
    assert rewards == pytest.approx({"Annotator A": 335.0448, "Annotator B": 334.2752,
                                     "Annotator C": 330.6800}, abs=1e-4)
    assert sum(rewards.values()) == pytest.approx(1000)


def test_paper_mode_by_hand():
    """One label, two items: (1,1,0) and (0,0,0). T = 1/2, time factor 1, so the weight is 1.5.
    Item 1: D' = -1/3; majority r' = -1 -> +0.5, minority r' = +1 -> -0.5. Item 2: D' = -1, r' = -1/3
    -> +0.5 each. Scores A 1, B 1, C 0."""
    rows = [("1", "k", "A", 1), ("1", "k", "B", 1), ("1", "k", "C", 0),
            ("2", "k", "A", 0), ("2", "k", "B", 0), ("2", "k", "C", 0)]
    assert paper_scores(table(rows)) == pytest.approx({"A": 1.0, "B": 1.0, "C": 0.0})
    assert split_rewards(table(rows), 100, "paper").rewards == pytest.approx({"A": 50, "B": 50, "C": 0})


def test_paper_mode_pathology_four_readers_unanimous_pays_nothing_five_pays_negative():
    four = [(str(j), "k", r, v) for j, v in enumerate([1, 0, 0, 1]) for r in "ABCD"]
    assert paper_scores(table(four)) == pytest.approx(dict.fromkeys("ABCD", 0.0))
    with pytest.raises(ValueError, match="cannot be split"):
        split_rewards(table(four), 1000, "paper")
    five = [(str(j), "k", r, 1) for j in range(3) for r in "ABCDE"]
    assert all(s < 0 for s in paper_scores(table(five)).values())
    # the general mode pays the same unanimous readers equally
    assert split_rewards(table(four), 1000).rewards == pytest.approx(dict.fromkeys("ABCD", 250.0))


def test_slower_labels_pay_in_proportion_to_their_time():
    rows = [(j, k, r, v) for k in ("fast", "slow") for j, votes in (("1", (1, 1, 0)), ("2", (0, 0, 0)))
            for r, v in zip("ABC", votes)]
    credits = item_credits(table(rows), times={"fast": 2.0, "slow": 6.0}).set_index(["label", "item", "annotator"])
    assert np.allclose(credits.loc["slow", "credit"].to_numpy(), 3 * credits.loc["fast", "credit"].to_numpy())
    seconds = table(rows).assign(seconds=[2.0] * 6 + [6.0] * 6)
    assert item_credits(seconds)["credit"].tolist() == credits["credit"].tolist()


def test_excluded_readers_get_nothing_and_their_votes_do_not_count():
    rows = [(str(j), "k", r, v) for j, votes in enumerate([(1, 1, 0, 0), (0, 0, 0, 1), (1, 1, 1, 0)])
            for r, v in zip("ABCD", votes)]
    split = split_rewards(table(rows), 90, excluded={"D": "ai_kappa"})
    alone = split_rewards(table([r for r in rows if r[2] != "D"]), 90)
    assert split.rewards["D"] == 0 and split.excluded == {"D": "ai_kappa"}
    assert {a: split.rewards[a] for a in "ABC"} == pytest.approx(alone.rewards)


def simulate_round(n_careful: int, n_items: int, seed: int) -> pd.DataFrame:
    """Careful readers (sensitivity 0.85, specificity 0.9) and one reader answering at random."""
    rng = np.random.default_rng(seed)
    rows = []
    for label, prevalence, time in (("common", 0.4, 5.0), ("rare", 0.1, 12.0)):
        truth = rng.random(n_items) < prevalence
        for r in range(n_careful):
            says = np.where(truth, rng.random(n_items) < 0.85, rng.random(n_items) >= 0.9)
            rows += [(f"i{j}", label, f"careful{r}", int(says[j]), time) for j in range(n_items)]
        rows += [(f"i{j}", label, "random", int(rng.random() < 0.5), time) for j in range(n_items)]
    return pd.DataFrame(rows, columns=["item", "label", "annotator", "value", "seconds"])


@pytest.mark.parametrize("n_careful", [2, 4, 9])
def test_a_random_reader_earns_clearly_less_than_careful_ones(n_careful):
    rewards = split_rewards(simulate_round(n_careful, 500, seed=n_careful), 1000).rewards
    careful = min(v for a, v in rewards.items() if a != "random")
    assert rewards["random"] < 0.6 * careful


@st.composite
def rounds(draw) -> pd.DataFrame:
    """2..10 readers, 1..3 labels, up to 8 items; each reading present with probability ~0.75."""
    n_readers = draw(st.integers(2, 10))
    labels = [f"L{k}" for k in range(draw(st.integers(1, 3)))]
    times = {k: draw(st.floats(0.5, 60)) for k in labels}
    n_items = draw(st.integers(1, 8))
    rows = []
    for k in labels:
        for j in range(n_items):
            for r in range(n_readers):
                if draw(st.integers(0, 3)) > 0:
                    rows.append((f"i{j}", k, f"r{r}", draw(st.integers(0, 1)), times[k]))
    frame = pd.DataFrame(rows, columns=["item", "label", "annotator", "value", "seconds"])
    assume(not frame.empty and frame.groupby(["label", "item"]).size().max() >= 2)
    return frame


def _items(frame: pd.DataFrame) -> pd.DataFrame:
    credits = item_credits(frame)
    grouped = frame.groupby(["label", "item"])["value"]
    n, nt = grouped.transform("size"), grouped.transform("sum")
    return credits.assign(n=n.to_numpy(), nt=nt.to_numpy(), value=frame["value"].to_numpy())


@settings(max_examples=100, deadline=None)
@given(rounds(), st.floats(1, 1e6))
def test_general_rewards_are_non_negative_and_sum_to_the_budget(frame, budget):
    rewards = split_rewards(frame, budget).rewards
    assert set(rewards) == set(frame["annotator"])
    assert all(v >= 0 for v in rewards.values())
    assert sum(rewards.values()) == pytest.approx(budget, rel=1e-9)


@settings(max_examples=100, deadline=None)
@given(rounds())
def test_majority_never_earns_less_and_unanimous_items_pay_everyone_the_same(frame):
    for _, item in _items(frame).groupby(["label", "item"]):
        nt, n = item["nt"].iloc[0], item["n"].iloc[0]
        if n < 2:
            assert (item["credit"] == 0).all()
            continue
        if nt in (0, n) or 2 * nt == n:
            assert item["credit"].max() == pytest.approx(item["credit"].min())
            continue
        majority_value = int(2 * nt > n)
        majority = item.loc[item["value"] == majority_value, "credit"]
        minority = item.loc[item["value"] != majority_value, "credit"]
        assert majority.min() >= minority.max()


@settings(max_examples=100, deadline=None)
@given(rounds())
def test_harder_items_pay_more(frame):
    """Within a label and a number of readers, a closer split pays more per reading on average. (A
    majority reader's own credit rises too until the split becomes a tie, where there is no minority:
    a 4-2 split of six pays each majority reader 2.5 x time, a 3-3 tie pays all six 2 x time.)"""
    items = _items(frame)
    items = items[items["n"] >= 2].assign(minority=lambda f: np.minimum(f["nt"], f["n"] - f["nt"]))
    per_item = items.groupby(["label", "n", "item", "minority"])["credit"].agg(["mean", "max"]).reset_index()
    for _, same in per_item.groupby(["label", "n"]):
        by_split = same.groupby("minority")[["mean", "max"]].first().sort_index()
        assert by_split["mean"].is_monotonic_increasing and by_split["mean"].is_unique
        no_tie = by_split.loc[by_split.index * 2 < same["n"].iloc[0], "max"]
        assert (no_tie.diff().dropna() >= -1e-12).all()


@settings(max_examples=100, deadline=None)
@given(rounds(), st.data())
def test_excluded_readers_earn_nothing(frame, data):
    readers = sorted(frame["annotator"].unique())
    out = data.draw(st.lists(st.sampled_from(readers), unique=True, max_size=len(readers) - 1))
    kept = frame[~frame["annotator"].isin(out)]
    assume(not kept.empty and kept.groupby(["label", "item"]).size().max() >= 2)
    split = split_rewards(frame, 100, excluded={a: "qc" for a in out})
    assert all(split.rewards[a] == 0 for a in out) and set(split.excluded) == set(out)
    assert {a: v for a, v in split.rewards.items() if a not in out} == pytest.approx(split_rewards(kept, 100).rewards)


@settings(max_examples=100, deadline=None)
@given(rounds(), st.randoms(use_true_random=False))
def test_renaming_readers_and_reordering_rows_changes_nothing(frame, rnd):
    readers = sorted(frame["annotator"].unique())
    names = [f"x{i}" for i in range(len(readers))]
    rnd.shuffle(names)
    rename = dict(zip(readers, names))
    renamed = frame.assign(annotator=frame["annotator"].map(rename)).sample(frac=1.0, random_state=rnd.randint(0, 999))
    for mode in (RewardMode.GENERAL, RewardMode.PUBLISHED):
        try:
            before = split_rewards(frame, 1000, mode).rewards
        except ValueError:  # published mode with no positive label at all
            continue
        after = split_rewards(renamed, 1000, mode).rewards
        assert {rename[a]: v for a, v in before.items()} == pytest.approx(after, abs=1e-9)


def test_inputs_that_cannot_be_split_are_refused():
    single = table([("1", "k", "A", 1), ("2", "k", "B", 0)])
    with pytest.raises(ValueError, match="cannot be split"):
        split_rewards(single, 10)
    with pytest.raises(ValueError, match="every reader is excluded"):
        split_rewards(single, 10, excluded={"A": "qc", "B": "qc"})
    with pytest.raises(ValueError, match="minority_share"):
        item_credits(single, minority_share=1.5)
    with pytest.raises(ValueError, match="no reading time"):
        item_credits(single, times={"other": 1.0})


def test_general_mode_on_markit_with_the_random_readers_excluded():
    """The five random readers, excluded as QC would exclude them, neither vote nor earn: the split is
    the radiologists' alone (figures quoted in docs/agreement.md)."""
    if not (MARKIT / "agreement_list.csv").exists():
        pytest.skip(f"MarkIt reference data absent: {MARKIT} (see its README)")
    from curation.agreement.table import read_markit
    readings = read_markit(MARKIT / "agreement_list.csv")
    times = read_times(str(MARKIT / "time_duration.csv"))
    random = {a: "ai_kappa" for a in readings.annotators if a.startswith("Malicious")}
    split = split_rewards(readings, 1000, times=times, excluded=random)
    assert {a: split.rewards[a] for a in random} == dict.fromkeys(random, 0.0)
    assert {a: split.rewards[a] for a in RADIOLOGISTS} == pytest.approx(
        {"Annotator A": 334.670, "Annotator B": 334.415, "Annotator C": 330.915}, abs=1e-3)


def test_the_reward_command_output_is_plain_json():
    import json
    rows = [(str(j), "k", r, v) for j, votes in enumerate([(1, 1, 0), (0, 0, 1)]) for r, v in zip("ABC", votes)]
    out = split_rewards(table(rows), 10, excluded={"C": "ai_kappa"}).to_json()
    assert json.loads(json.dumps(out)) == out == {"mode": "general", "rewards": {"A": 5.0, "B": 5.0, "C": 0.0},
                                                  "excluded": {"C": "ai_kappa"}}


@settings(max_examples=100, deadline=None)
@given(rounds(), st.floats(1.01, 20))
def test_slower_labels_pay_more(frame, factor):
    """A copy of the first label read `factor` times slower, with the very same votes, pays every
    reading exactly `factor` times as much: time is the only difference, and it is paid for."""
    first = sorted(frame["label"].unique())[0]
    copy = frame[frame["label"] == first].assign(label="slow copy", seconds=lambda f: f["seconds"] * factor)
    credits = item_credits(pd.concat([frame, copy], ignore_index=True)).set_index(["item", "annotator", "label"])
    fast = credits.xs(first, level="label")["credit"]
    slow = credits.xs("slow copy", level="label")["credit"].reindex(fast.index)
    assert np.allclose(slow, factor * fast, rtol=1e-12, atol=0)
    assert ((slow > fast) | (fast == 0)).all()


def simulate_with_ai(n_careful: int, missing: float, seed: int, n_items: int = 150,
                     min_readings: int = 2) -> pd.DataFrame:
    """Careful readers (right 90% of the time) and one random reader on two labels; each reading
    missing with probability `missing`, but every item keeps at least `min_readings` readings (the
    round's redundancy); the model's probability close to the truth (a QC-able annotation round)."""
    rng = np.random.default_rng(seed)
    rows = []
    for label, prevalence in (("common", 0.4), ("rare", 0.15)):
        truth = rng.random(n_items) < prevalence
        ai = np.clip(np.where(truth, 0.8, 0.2) + rng.normal(0, 0.1, n_items), 0, 1)
        readers = {f"careful{r}": np.where(rng.random(n_items) < 0.9, truth, ~truth) for r in range(n_careful)}
        readers["random"] = rng.random(n_items) < 0.5
        names = list(readers)
        for j in range(n_items):
            read = rng.random(len(names)) >= missing
            while read.sum() < min_readings:
                read[rng.integers(len(names))] = True
            rows += [(f"i{j}", label, name, int(readers[name][j]), float(ai[j]), float(rng.uniform(2, 10)))
                     for name, r in zip(names, read) if r]
    return pd.DataFrame(rows, columns=["item", "label", "annotator", "value", "ai_probability", "seconds"])


@settings(max_examples=15, deadline=None)
@given(st.integers(2, 9), st.floats(0, 0.3), st.integers(0, 10_000))
def test_readers_failing_qc_earn_nothing(n_careful, missing, seed):
    """Through the real QC (curation.agreement.qc) and the reward report the command prints: whoever
    QC excludes (here, nearly always, the random reader) earns nothing, with QC's reason; the others
    share the whole budget exactly as if the excluded readers had never read."""
    from curation.agreement.qc import check
    from curation.agreement.report import reward_report
    from curation.agreement.table import validate
    readings = validate(simulate_with_ai(n_careful, missing, seed, n_items=300))
    qc = check(readings)
    assume(qc.excluded)  # whether QC catches a random reader at all is tested in test_qc.py
    out = reward_report(readings, 1000)
    assert out["excluded"] == qc.excluded
    assert all(out["rewards"][a] == 0.0 for a in qc.excluded)
    assert sum(out["rewards"].values()) == pytest.approx(1000)
    others = readings.frame[~readings.frame["annotator"].isin(list(qc.excluded))]
    assert {a: v for a, v in out["rewards"].items() if a not in qc.excluded} == pytest.approx(
        split_rewards(others, 1000).rewards)


@settings(max_examples=15, deadline=None)
@given(st.integers(2, 9), st.floats(0, 0.3), st.integers(0, 10_000))
def test_a_random_reader_earns_clearly_less_with_missing_readings(n_careful, missing, seed):
    """Without QC (the random reader is paid like anyone else), N = 3..10 readers, up to 30% of the
    readings missing while every item keeps three or more. "Clearly": at most 0.8 of the least-paid
    careful reader (observed up to 0.70, with 3 careful readers: 2-2 ties pay the most). Items read
    only twice cannot tell the two readers apart: agreeing pays both alike, and so does a 1-1 tie."""
    frame = simulate_with_ai(n_careful, missing, seed, n_items=400, min_readings=3)
    rewards = split_rewards(frame, 1000).rewards
    assert rewards["random"] < 0.8 * min(v for a, v in rewards.items() if a != "random")
