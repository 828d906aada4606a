"""Automatic QC: the MarkIt "better than random" filter on the published data (kappas against
scikit-learn), each rule on small tables whose answer is known, and simulated projects of 2..10
readers with missing readings where careful readers pass and random, straight-lining and too-fast
readers are caught."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score

from curation.agreement import qc
from curation.agreement.qc import QcConfig, Rule, check, check_boxes, kept
from curation.agreement.table import read_markit, validate

MARKIT = Path(__file__).parents[2].parent / "shared" / "reference" / "markit"
RADIOLOGISTS = ["Annotator A", "Annotator B", "Annotator C"]
RANDOM = [f"Malicious annotator {x}" for x in "ABCDE"]


def table(rows: list[tuple], columns: tuple[str, ...] = ("item", "label", "annotator", "value")) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(columns))


def flags_of(report: qc.QcReport, rule: Rule, annotator: str | None = None) -> list[qc.Flag]:
    return [f for f in report.flags if f.rule is rule and (annotator is None or f.annotator == annotator)]


def readings_flagged(report: qc.QcReport, rule: Rule, annotator: str) -> int:
    """How many reading-level flags (those naming an item) the reader has under `rule`."""
    return sum(f.item is not None for f in flags_of(report, rule, annotator))


@pytest.fixture(scope="module")
def markit():
    path = MARKIT / "agreement_list.csv"
    if not path.exists():
        pytest.skip(f"MarkIt reference data absent: {MARKIT} (see its README)")
    return read_markit(path), pd.read_csv(path)


def test_markit_radiologists_pass_the_ai_filter_and_the_random_readers_fail_it(markit):
    readings, _ = markit
    report = check(readings)
    assert all(report.passes_ai_filter[a] for a in RADIOLOGISTS)
    assert not any(report.passes_ai_filter[a] for a in RANDOM)
    assert sorted(report.excluded) == RANDOM
    for a in RANDOM:
        assert "ai_filter" in report.rules_of(a) and "random_answering" in report.rules_of(a)
        assert "ai_filter: Cohen's kappa" in report.excluded[a]
    assert all(report.rules_of(a) == [] for a in RADIOLOGISTS)
    assert set(kept(readings, report).annotators) == set(RADIOLOGISTS)
    assert len(kept(readings, report).frame) == 3 * 7000


def test_markit_ai_kappas_equal_scikit_learn(markit):
    """Per annotator and label, against `Pseudo ground truth` read straight from the CSV (which is
    ai_prediction >= 0.5, as the README says)."""
    readings, wide = markit
    assert ((wide["ai_prediction"] >= 0.5) == wide["Pseudo ground truth"]).all()
    report = check(readings)
    for annotator in RADIOLOGISTS + RANDOM:
        for label, rows in wide.groupby("label"):
            expected = cohen_kappa_score(rows[annotator].astype(int), rows["Pseudo ground truth"].astype(int))
            assert report.ai_kappa[annotator][label] == pytest.approx(expected, abs=1e-9)
            passes = expected > 0.05
            assert passes or not report.passes_ai_filter[annotator]
        assert report.passes_ai_filter[annotator] == all(
            cohen_kappa_score(r[annotator].astype(int), r["Pseudo ground truth"].astype(int)) > 0.05
            for _, r in wide.groupby("label"))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.0, 1.0, np.nan]), st.sampled_from([0.0, 1.0, np.nan])),
                min_size=1, max_size=40))
def test_cohen_kappa_equals_scikit_learn_on_the_positions_both_read(pairs):
    first, second = (np.array(x) for x in zip(*pairs))
    both = ~np.isnan(first) & ~np.isnan(second)
    ours = qc.cohen_kappa(first, second)
    if not both.any() or (len(set(first[both])) == 1 and set(first[both]) == set(second[both])):
        assert ours is None  # nothing read by both, or no disagreement expected: undefined
    else:
        assert ours == pytest.approx(cohen_kappa_score(first[both], second[both]), abs=1e-9)


def ai_table(reader: list[int], ai: list[float], label: str = "k") -> pd.DataFrame:
    rows = [(f"i{j}", label, "r", v, p) for j, (v, p) in enumerate(zip(reader, ai))]
    return table(rows, ("item", "label", "annotator", "value", "ai_probability"))


def test_ai_filter_needs_kappa_strictly_above_kappa_min():
    ai = [0.9] * 10 + [0.1] * 10
    reader = [1] * 8 + [0] * 2 + [0] * 8 + [1] * 2  # 80% agreement at 50% prevalence: kappa 0.6
    kappa = check(ai_table(reader, ai)).ai_kappa["r"]["k"]
    assert kappa == pytest.approx(0.6)
    assert check(ai_table(reader, ai), QcConfig(kappa_min=0.59)).passes_ai_filter == {"r": True}
    at_limit = check(ai_table(reader, ai), QcConfig(kappa_min=kappa))
    assert at_limit.passes_ai_filter == {"r": False} and "ai_filter" in at_limit.excluded["r"]
    # the threshold on ai_probability is inclusive: 0.5 counts as yes
    assert check(ai_table([1, 0] * 10, [0.5, 0.49] * 10)).ai_kappa["r"]["k"] == pytest.approx(1.0)


def test_ai_filter_constant_reader_fails_and_a_constant_ai_label_is_not_judged():
    ai = [0.9] * 5 + [0.1] * 15
    constant = check(ai_table([0] * 20, ai))
    assert constant.ai_kappa["r"]["k"] == 0.0 and constant.passes_ai_filter == {"r": False}
    silent_ai = check(ai_table([1, 0] * 10, [0.2] * 20))  # the AI says no everywhere: kappa 0 for anyone
    assert silent_ai.ai_kappa["r"]["k"] is None and silent_ai.passes_ai_filter == {"r": True}
    few = check(ai_table([0] * 9, [0.9, 0.1] * 4 + [0.9]))  # 9 < ai_min_items: reported, not judged
    assert few.ai_kappa["r"]["k"] == 0.0 and few.passes_ai_filter == {"r": True}


def test_ai_filter_must_pass_on_every_label():
    good = ai_table([1] * 10 + [0] * 10, [0.9] * 10 + [0.1] * 10, "a")
    bad = ai_table([1, 0] * 10, [0.9] * 10 + [0.1] * 10, "b")  # kappa 0 on label b
    report = check(pd.concat([good, bad]))
    assert report.ai_kappa["r"] == {"a": 1.0, "b": 0.0}
    assert report.passes_ai_filter == {"r": False}
    assert [f.label for f in flags_of(report, Rule.AI_FILTER)] == ["b"]


def test_schema_flags_unknown_labels_and_excludes_a_reader_whose_readings_are_mostly_invalid():
    rows = [(f"i{j}", "effusion", "a", j % 2) for j in range(10)] + [(f"i{j}", "efusion", "a", 1) for j in range(2)]
    rows += [(f"i{j}", "efusion", "b", 1) for j in range(6)] + [(f"i{j}", "effusion", "b", 0) for j in range(5)]
    report = check(table(rows), schema={"effusion": "binary", "nodule": "box"})
    a_flags, b_flags = flags_of(report, Rule.SCHEMA, "a"), flags_of(report, Rule.SCHEMA, "b")
    assert len(a_flags) == 2 and all(f.item and not f.excludes and f.label == "efusion" for f in a_flags)
    assert "a" not in report.excluded
    assert sum(f.excludes for f in b_flags) == 1 and "6 of 11 readings invalid" in report.excluded["b"]
    rest = kept(table(rows), report).frame
    assert set(rest["annotator"]) == {"a"} and set(rest["label"]) == {"effusion"} and len(rest) == 10
    with pytest.raises(ValueError, match="unknown label kind"):
        check(table(rows), schema={"effusion": "polygon"})


def test_check_boxes_flags_each_geometry_problem_once():
    boxes = table([("i1", "nodule", "a", 10, 10, 50, 60),   # fine
                   ("i1", "nodule", "b", -5, 10, 50, 60),   # outside (left)
                   ("i1", "nodule", "c", 10, 10, 50, 101),  # outside (bottom)
                   ("i1", "nodule", "d", 30, 10, 30, 60),   # no area
                   ("i1", "nodule", "e", 50, 60, 10, 10),   # corners swapped: no area
                   ("i1", "nodule", "f", 10, 10, 11.5, 60),  # a side of 1.5 px < 2
                   ("i1", "nodule", "g", 0, 0, 100, 100),   # the whole image
                   ("i1", "nodule", "h", 1, 1, 99, 97),     # 98 x 96 = 94% of the image: allowed
                   ("i1", "nodule", "i", np.nan, 1, 9, 9),  # missing coordinate
                   ("i1", "nodule", "j", 0, 0, 100, 2)],    # on the border, inside
                  ("item", "label", "annotator", "x0", "y0", "x1", "y1"))
    flags = check_boxes(boxes, {"i1": (100, 100)})
    assert sorted(f.annotator for f in flags) == list("bcdefgi")
    assert all(f.rule is Rule.ROI_GEOMETRY and not f.excludes and f.item == "i1" for f in flags)
    by = {f.annotator: f.reason for f in flags}
    assert "outside" in by["b"] and "outside" in by["c"] and "no area" in by["d"] and "no area" in by["e"]
    assert "below 2 px" in by["f"] and "whole image" in by["g"] and "missing" in by["i"]
    with_columns = check_boxes(boxes.assign(width=100, height=100))
    assert [f.reason for f in with_columns] == [f.reason for f in flags]
    assert len(check_boxes(boxes, {"i1": (100, 100)}, QcConfig(roi_whole_image=0.9))) == 8  # h now too
    with pytest.raises(ValueError, match="no image size"):
        check_boxes(boxes, {"i2": (100, 100)})


def test_boxes_in_check_schema_on_boxes_and_a_reader_with_mostly_bad_boxes():
    readings = table([(f"i{j}", "nodule", r, 1) for j in range(10) for r in "ab"])
    good = [(f"i{j}", "nodule", "a", 10, 10, 40, 40) for j in range(10)]
    bad = [(f"i{j}", "nodule", "b", 0, 0, 100, 100) for j in range(6)] + [
        (f"i{j}", "nodule", "b", 10, 10, 40, 40) for j in range(6, 10)]
    boxes = table(good + bad + [("i0", "effusion", "a", 10, 10, 40, 40)],
                  ("item", "label", "annotator", "x0", "y0", "x1", "y1")).assign(width=100, height=100)
    report = check(readings, schema={"nodule": "box", "effusion": "binary"}, boxes=boxes)
    assert list(report.excluded) == ["b"] and "6 of 10 boxes (roi_geometry) invalid" in report.excluded["b"]
    schema_flags = flags_of(report, Rule.SCHEMA, "a")
    assert len(schema_flags) == 1 and "'binary' label, not a box label" in schema_flags[0].reason
    rest = kept(readings, report).frame  # b excluded; a's yes/no reading of i0/nodule stays
    assert set(rest["annotator"]) == {"a"} and len(rest) == 10


def timed(seconds: dict[str, list[float]], label: str = "k") -> pd.DataFrame:
    rows = [(f"i{j}", label, a, 0, s) for a, values in seconds.items() for j, s in enumerate(values)]
    return table(rows, ("item", "label", "annotator", "value", "seconds"))


def test_time_floor_is_the_median_over_the_divisor_or_the_absolute_minimum():
    slow = timed({"a": [8.0] * 10, "b": [8.0] * 10, "c": [1.9] * 3 + [8.0] * 7})
    report = check(slow)
    assert report.time_floor == {"k": 2.0}  # median 8 s / 4
    assert readings_flagged(report, Rule.TIME_OUTLIER, "c") == 3 and "c" in report.excluded  # 30% > 25%
    assert "3 of 10 readings faster" in report.excluded["c"]
    assert not flags_of(report, Rule.TIME_OUTLIER, "a") and not flags_of(report, Rule.TIME_OUTLIER, "b")
    quick_label = check(timed({"a": [2.0] * 10, "b": [2.0] * 10, "c": [0.9] * 2 + [2.0] * 8}))
    assert quick_label.time_floor == {"k": 1.0}  # median 2 s / 4 = 0.5 < the absolute 1 s
    assert readings_flagged(quick_label, Rule.TIME_OUTLIER, "c") == 2 and not quick_label.excluded  # 20%
    few = check(timed({"a": [8.0] * 9, "b": [1.5] * 9}))  # 18 < 20 timed readings: absolute floor only
    assert few.time_floor == {"k": 1.0} and not few.flags
    rest = kept(slow, report).frame
    assert set(rest["annotator"]) == {"a", "b"}


def test_a_quarter_of_fast_readings_exactly_does_not_exclude():
    report = check(timed({"a": [8.0] * 12, "b": [8.0] * 12, "c": [1.0] * 3 + [8.0] * 9}))
    assert readings_flagged(report, Rule.TIME_OUTLIER, "c") == 3 and "c" not in report.excluded  # 25%


def lines(answers: dict[str, list[int]]) -> pd.DataFrame:
    return table([(f"i{j}", "k", a, v) for a, values in answers.items() for j, v in enumerate(values)])


def test_straight_lining_needs_a_constant_reader_the_others_contradict():
    truth = [1] * 4 + [0] * 16
    report = check(lines({"a": truth, "b": truth, "lazy": [0] * 20}))
    assert [f.annotator for f in flags_of(report, Rule.STRAIGHT_LINING)] == ["lazy"]
    assert "'no' on all 20 readings" in report.excluded["lazy"] and "20%" in report.excluded["lazy"]
    assert not check(lines({"a": [0] * 20, "b": [0] * 20, "c": [0] * 20})).flags  # a normal set
    assert not check(lines({"a": truth[:19], "b": truth[:19], "lazy": [0] * 19})).flags  # 19 < 20
    almost = [1] + [0] * 39  # the others say yes on 1 of 40 (2.5% < 5%)
    assert not flags_of(check(lines({"a": almost, "b": almost, "lazy": [0] * 40})), Rule.STRAIGHT_LINING)
    assert not check(lines({"alone": [1] * 30})).flags  # nobody to contradict


def test_gold_accuracy_is_reported_for_everyone_and_excludes_below_the_minimum():
    rows = [(f"g{j}", "k", "good", j % 2, j % 2) for j in range(10)]
    rows += [(f"g{j}", "k", "poor", 1 - j % 2 if j < 4 else j % 2, j % 2) for j in range(10)]  # 6 of 10
    rows += [(f"g{j}", "k", "few", 1 - j % 2, j % 2) for j in range(4)]
    rows += [(f"x{j}", "k", "good", 1, None) for j in range(3)]
    report = check(table(rows, ("item", "label", "annotator", "value", "gold")))
    assert report.gold_accuracy["good"] == 1.0 and report.gold_accuracy["few"] == 0.0
    assert report.gold_accuracy["poor"] == pytest.approx(0.6)
    assert list(report.excluded) == ["poor"] and "60% correct on 10 gold readings" in report.excluded["poor"]
    assert not check(table(rows, ("item", "label", "annotator", "value", "gold")),
                     QcConfig(gold_min_accuracy=0.6)).excluded


def test_report_to_json_is_plain_json_and_config_is_checked():
    report = check(timed({"a": [8.0] * 10, "b": [8.0] * 10, "c": [0.5] * 10}))
    data = json.loads(json.dumps(report.to_json()))
    assert data["excluded"].keys() == {"c"} and data["time_floor"] == {"k": 2.0}
    assert {f["rule"] for f in data["flags"]} == {"time_outlier"} and report.rules_of("c") == ["time_outlier"]
    assert report.rules_of("a") == []
    with pytest.raises(ValueError, match="kappa_min"):
        QcConfig(kappa_min=2)
    with pytest.raises(ValueError, match="time_median_divisor"):
        QcConfig(time_median_divisor=0.5)


def simulate(seed: int, n_careful: int, n_random: int, n_lazy: int, n_fast: int, missing: float,
             n_items: int = 300, labels: tuple[str, ...] = ("a", "b"), random_yes: float | None = None,
             sensitivity: tuple[float, float] = (0.8, 0.95)) -> pd.DataFrame:
    """Careful readers (sensitivity and specificity 0.8 to 0.95 by default, log-normal reading times around each
    label's median), random readers (yes with a fixed probability), straight-liners (always no),
    too-fast careful readers (0.2-0.9 s); an AI of ~85% accuracy; each reading missing at `missing`."""
    rng = np.random.default_rng(seed)
    rows = []
    for label in labels:
        truth = rng.random(n_items) < rng.uniform(0.25, 0.5)
        ai = np.clip(np.where(truth, 0.8, 0.2) + rng.normal(0, 0.25, n_items), 0, 1)
        median = rng.uniform(3, 15)
        readers = ([("careful", f"careful{i}") for i in range(n_careful)]
                   + [("random", f"random{i}") for i in range(n_random)]
                   + [("lazy", f"lazy{i}") for i in range(n_lazy)] + [("fast", f"fast{i}") for i in range(n_fast)])
        for kind, name in readers:
            sens, spec = rng.uniform(*sensitivity, 2)
            says = np.where(truth, rng.random(n_items) < sens, rng.random(n_items) >= spec).astype(int)
            if kind == "random":
                says = (rng.random(n_items) < (random_yes or rng.uniform(0.1, 0.9))).astype(int)
            elif kind == "lazy":
                says = np.zeros(n_items, dtype=int)
            seconds = (rng.uniform(0.2, 0.9, n_items) if kind == "fast"
                       else median * np.exp(rng.normal(0, 0.4, n_items)))
            read = rng.random(n_items) >= missing
            rows += [(f"i{j}", label, name, says[j], seconds[j], ai[j]) for j in np.flatnonzero(read)]
    return table(rows, ("item", "label", "annotator", "value", "seconds", "ai_probability"))


@st.composite
def projects(draw):
    """2..10 readers, fewer random than careful ones (the majority must read)."""
    n = draw(st.integers(2, 10))
    n_careful = draw(st.integers(max(1, n // 2 + 1), n))
    n_random = draw(st.integers(0, n - n_careful))
    n_lazy = draw(st.integers(0, n - n_careful - n_random))
    n_fast = n - n_careful - n_random - n_lazy
    return draw(st.integers(0, 2**32 - 1)), n_careful, n_random, n_lazy, n_fast, draw(st.sampled_from([0.0, 0.1, 0.2]))


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(projects())
def test_simulated_careful_readers_pass_and_the_others_are_caught(project):
    seed, n_careful, n_random, n_lazy, n_fast, missing = project
    frame = simulate(seed, n_careful, n_random, n_lazy, n_fast, missing)
    report = check(validate(frame))
    for name in frame["annotator"].unique():
        rules = set(report.rules_of(name))
        if name.startswith("careful"):  # at most a rare too-fast reading, never a reader-level flag
            assert rules <= {Rule.TIME_OUTLIER} and name not in report.excluded, (name, report.excluded.get(name))
            assert report.passes_ai_filter[name]
        elif name.startswith("lazy"):
            assert Rule.STRAIGHT_LINING in rules and not report.passes_ai_filter[name]
        elif name.startswith("fast"):
            assert rules == {Rule.TIME_OUTLIER} and name in report.excluded
        elif n_careful >= 2:  # random, with at least two careful readers to compare against
            assert Rule.RANDOM_ANSWERING in rules, (name, report.random_kappa)
    remaining = set(kept(frame, report).annotators)
    assert remaining == set(frame["annotator"]) - set(report.excluded)
    assert {a for a in frame["annotator"] if a.startswith("careful")} <= remaining


@pytest.mark.parametrize("seed", range(4))
def test_random_readers_are_caught_even_when_they_nearly_equal_the_careful_ones(seed):
    """Three careful readers and two random ones: a random reader lowers every careful reader's
    majority, so who is removed first matters (the lowest mean pairwise kappa)."""
    frame = simulate(seed, 3, 2, 0, 0, 0.2)
    report = check(validate(frame.drop(columns=["ai_probability", "seconds"])))
    assert sorted(report.excluded) == ["random0", "random1"]
    assert all(report.random_kappa[f"careful{i}"] > 0.2 for i in range(3))
    assert all(report.random_kappa[f"random{i}"] <= 0.2 for i in range(2))


def test_with_two_careful_readers_and_one_random_the_random_one_goes_first():
    """Three readers, 60 items x 2 labels, a random reader who says yes 10% of the time: each careful
    reader's "majority of the others" is then mostly the random reader's no, so a careful reader often
    has the lowest kappa against the majority; ranking by mean pairwise kappa removes the random one."""
    caught, careful_excluded = 0, []
    for seed in range(20):
        frame = simulate(seed, 2, 1, 0, 0, 0.2, n_items=60, random_yes=0.1, sensitivity=(0.8, 0.8))
        report = check(frame.drop(columns=["ai_probability", "seconds"]))
        careful_excluded += [a for a in report.excluded if a.startswith("careful")]
        caught += "random0" in report.excluded
    assert careful_excluded == [] and caught >= 18


def test_random_answering_needs_two_other_readers_and_enough_item_labels():
    frame = simulate(7, 1, 1, 0, 0, 0.0).drop(columns=["ai_probability", "seconds"])
    assert not check(frame).excluded and check(frame).random_kappa == {"careful0": None, "random0": None}
    few = simulate(7, 2, 1, 0, 0, 0.0, n_items=10, labels=("a",)).drop(columns=["ai_probability", "seconds"])
    assert not check(few).excluded  # 10 item-labels < random_min_units
