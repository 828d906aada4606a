"""Agreement statistics against their reference implementations (statsmodels, scikit-learn, the
`krippendorff` package, used here only as test oracles; Gwet's AC1 and the unanimity counts against
formulas written out unit by unit below), for every N = 2..10 readers with missing readings; a
published AC1 example; bootstrap intervals on simulated rounds; the MarkIt proof-of-concept figures."""
from itertools import combinations
from pathlib import Path

import krippendorff
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss

from curation.agreement import statistics as stats
from curation.agreement.table import read_markit

MARKIT = Path(__file__).parents[2].parent / "shared" / "reference" / "markit"
TOL = 1e-9


def _point(function, values, categories, *args):
    counts = stats.category_counts(values, categories)
    return function(np.ones((1, len(values))), counts, *args)[0]


READERS = range(2, 11)  # every property below holds for each N = 2..10 readers


@st.composite
def readings(draw, n_cat_max: int = 4, missing: bool = True, constant_readers: bool = False,
             n_readers: int | None = None):
    """Units x readers (`n_readers`, else 2..10) of small integer categories, NaN for missing readings."""
    n_readers = n_readers if n_readers is not None else draw(st.integers(2, 10))
    n_units = draw(st.integers(3, 30))
    n_cat = draw(st.integers(2, n_cat_max))
    values = np.array(draw(st.lists(st.lists(st.integers(0, n_cat - 1), min_size=n_readers, max_size=n_readers),
                                    min_size=n_units, max_size=n_units)), dtype=float)
    if constant_readers:  # each unit read by the same number of (possibly different) readers
        per_unit = draw(st.integers(2, n_readers))
        for row in values:
            drop = draw(st.permutations(range(n_readers)))[: n_readers - per_unit]
            row[list(drop)] = np.nan
    elif missing:
        mask = np.array(draw(st.lists(st.booleans(), min_size=values.size, max_size=values.size)))
        values[mask.reshape(values.shape)] = np.nan
    return values, list(range(n_cat))


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("n_readers", READERS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fleiss_kappa_equals_statsmodels(n_readers, data):
    """statsmodels needs the same number of readings per unit; which readers read a unit varies."""
    values, categories = data.draw(readings(constant_readers=True, n_readers=n_readers))
    counts = stats.category_counts(values, categories)
    reference = statsmodels_fleiss(counts, method="fleiss")
    ours = stats.fleiss_kappa(np.ones((1, len(values))), counts)[0]
    assert np.isnan(ours) == np.isnan(reference)
    if not np.isnan(reference):
        assert abs(ours - reference) < TOL


@pytest.mark.parametrize("n_readers", READERS)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), level=st.sampled_from(["nominal", "ordinal"]))
def test_krippendorff_alpha_equals_package(n_readers, data, level):
    values, categories = data.draw(readings(n_readers=n_readers))
    ours = _point(lambda w, c: stats.krippendorff_alpha(w, c, level), values, categories)
    pairable = ((~np.isnan(values)).sum(axis=1) >= 2).any()
    if len(np.unique(values[~np.isnan(values)])) < 2 or not pairable:
        assert np.isnan(ours)  # one value only, or no unit read twice: the package raises, alpha undefined
        return
    with np.errstate(all="ignore"):
        reference = krippendorff.alpha(reliability_data=values.T, level_of_measurement=level)
    assert np.isnan(ours) == np.isnan(reference)
    if not np.isnan(reference):
        assert abs(ours - reference) < TOL


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")
@pytest.mark.parametrize("n_readers", READERS)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), weights=st.sampled_from(["none", "linear", "quadratic"]))
def test_cohen_kappa_equals_scikit_learn_for_every_pair(n_readers, data, weights):
    values, categories = data.draw(readings(n_readers=n_readers))
    pairs, kappa, agree = stats.cohen_kappa_pairs(np.ones((1, len(values))), values, categories, weights)
    assert len(pairs) == values.shape[1] * (values.shape[1] - 1) // 2
    for p, (a, b) in enumerate(pairs):
        both = ~np.isnan(values[:, a]) & ~np.isnan(values[:, b])
        if both.sum() == 0:
            assert np.isnan(kappa[0, p])
            continue
        with np.errstate(all="ignore"):
            reference = cohen_kappa_score(values[both, a], values[both, b], labels=categories,
                                          weights=None if weights == "none" else weights)
        if np.isnan(reference):
            assert np.isnan(kappa[0, p])
        else:
            assert abs(kappa[0, p] - reference) < TOL
        assert abs(agree[0, p] - np.mean(values[both, a] == values[both, b])) < TOL


@pytest.mark.parametrize("n_readers", READERS)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_percent_agreement_is_mean_share_of_agreeing_pairs(n_readers, data):
    values, categories = data.draw(readings(n_readers=n_readers))
    shares = []
    for row in values:
        seen = row[~np.isnan(row)]
        if len(seen) >= 2:
            pairs = [(x, y) for i, x in enumerate(seen) for y in seen[i + 1:]]
            shares.append(np.mean([x == y for x, y in pairs]))
    ours = _point(stats.percent_agreement, values, categories)
    assert (np.isnan(ours) and not shares) or abs(ours - np.mean(shares)) < TOL


def gwet_ac1_reference(values: np.ndarray, categories: list) -> float:
    """Gwet's AC1 written out unit by unit as in Gwet (2008) eq. 15-16 for r raters, with missing
    ratings as in Gwet's Handbook (2014, 4th ed., ch. 4): r_i raters rated unit i, r_ik of them
    category k; pa averages sum_k r_ik (r_ik - 1) / (r_i (r_i - 1)) over the units with r_i >= 2;
    pi_k averages r_ik / r_i over the units with r_i >= 1; pe = sum_k pi_k (1 - pi_k) / (q - 1)."""
    q = len(categories)
    agreement, shares = [], []
    for row in values:
        rated = [v for v in row if not np.isnan(v)]
        r_i = len(rated)
        if r_i == 0:
            continue
        r_ik = [sum(1 for v in rated if v == k) for k in categories]
        shares.append([r / r_i for r in r_ik])
        if r_i >= 2:
            agreement.append(sum(r * (r - 1) for r in r_ik) / (r_i * (r_i - 1)))
    if not agreement:
        return float("nan")
    pa = sum(agreement) / len(agreement)
    pi = [sum(unit[k] for unit in shares) / len(shares) for k in range(q)]
    pe = sum(p * (1 - p) for p in pi) / (q - 1)
    return (pa - pe) / (1 - pe)


@pytest.mark.parametrize("n_readers", READERS)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_gwet_ac1_equals_the_handbook_formula(n_readers, data):
    values, categories = data.draw(readings(n_readers=n_readers))
    ours = _point(stats.gwet_ac1, values, categories)
    reference = gwet_ac1_reference(values, categories)
    assert np.isnan(ours) == np.isnan(reference)
    if not np.isnan(reference):
        assert abs(ours - reference) < TOL


@pytest.mark.parametrize("n_readers", READERS)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_unanimity_counts_equal_a_count_by_hand(n_readers, data):
    values, _ = data.draw(readings(n_cat_max=2, n_readers=n_readers))
    seen = [row[~np.isnan(row)] for row in values]
    twice = [row for row in seen if len(row) >= 2]
    positive = sum(1 for row in twice if (row == 1).all())
    negative = sum(1 for row in twice if (row == 0).all())
    result = stats.unanimity(np.ones((1, len(values))), stats.category_counts(values, stats.BINARY))
    assert (result["unanimous_positive"][0], result["unanimous_negative"][0]) == (positive, negative)
    assert result["disagreements"][0] == len(twice) - positive - negative
    share = result["unanimous_share"][0]
    assert (np.isnan(share) and not twice) or abs(share - (positive + negative) / len(twice)) < TOL


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), n_readers=st.integers(2, 10))
def test_agreement_report_equals_the_references_on_a_long_table(data, n_readers):
    """The report `agreement()` prints (pivot of the long table, per label and pooled item-labels)
    carries the same figures as the references computed on the pivoted readings."""
    import pandas as pd

    from curation.agreement.table import validate
    tables = {label: data.draw(readings(n_cat_max=2, n_readers=n_readers)) for label in ("a", "b")}
    rows = [{"item": f"i{u}", "label": label, "annotator": f"r{r}", "value": int(v)}
            for label, (values, _) in tables.items() for u, row in enumerate(values)
            for r, v in enumerate(row) if not np.isnan(v)]
    frame = pd.DataFrame(rows)
    if frame.empty or frame["annotator"].nunique() < 2 or frame["label"].nunique() < 2:
        return
    readings_table = validate(frame)
    report = stats.agreement(readings_table, n_boot=0)
    for label, block in [*report["per_label"].items(), ("all", report["overall"])]:
        # every reader of the round is a column, also under a label they did not read (all NaN there)
        ratings = readings_table.ratings(None if label == "all" else label, annotators=readings_table.annotators)
        values = ratings.values
        assert block["n_readers"] == int((~np.isnan(values)).any(axis=0).sum())
        for name, reference in (("gwet_ac1", gwet_ac1_reference(values, [0, 1])),
                                ("percent_agreement", _point(stats.percent_agreement, values, [0, 1]))):
            assert (block[name] is None and np.isnan(reference)) or abs(block[name] - reference) < TOL
        pairable = ((~np.isnan(values)).sum(axis=1) >= 2).any() and len(np.unique(values[~np.isnan(values)])) > 1
        if pairable:
            with np.errstate(all="ignore"):  # the package divides 0 by 0 where no pairable value varies
                alpha = krippendorff.alpha(reliability_data=values.T, level_of_measurement="nominal")
            assert (block["krippendorff_alpha"] is None and np.isnan(alpha)) or abs(block["krippendorff_alpha"] - alpha) < TOL
        pairs = report["pairwise"] if label == "all" else block["pairwise"]
        for a, b in combinations(range(values.shape[1]), 2):
            both = ~np.isnan(values[:, a]) & ~np.isnan(values[:, b])
            kappa = pairs[f"{ratings.annotators[a]}|{ratings.annotators[b]}"]["cohen_kappa"]
            if both.any():
                with np.errstate(all="ignore"):
                    reference = cohen_kappa_score(values[both, a], values[both, b], labels=[0, 1])
                assert (kappa is None and np.isnan(reference)) or abs(kappa - reference) < TOL


def test_gwet_ac1_reproduces_gwet_handbook_example():
    """Gwet, Handbook of Inter-Rater Reliability (4th ed., 2014), the 4-rater, 12-unit, 5-category
    data set with missing ratings (irrCAC's `cac.raw4raters`; the same data are Krippendorff 2011,
    example C). irrCAC's documentation prints AC1 = 0.77544 for it.

    By hand: the 11 units rated at least twice have pair agreement 1, .5, 1, 1, 1, 0, 1, .5, 1, 1, 1,
    so pa = 9/11. Category shares averaged over the 12 units rated at least once are 12/48, 13/48,
    14/48, 5/48, 4/48, so sum pi(1 - pi) = 1 - 550/2304 and pe = (1754/2304)/4 = 877/4608.
    AC1 = (9/11 - 877/4608) / (1 - 877/4608) = 31825/41041 = 0.775444...
    """
    nan = np.nan
    values = np.array([[1, 1, nan, 1], [2, 2, 3, 2], [3, 3, 3, 3], [3, 3, 3, 3], [2, 2, 2, 2],
                       [1, 2, 3, 4], [4, 4, 4, 4], [1, 1, 2, 1], [2, 2, 2, 2], [nan, 5, 5, 5],
                       [nan, nan, 1, 1], [nan, nan, 3, nan]])
    categories = [1, 2, 3, 4, 5]
    assert abs(_point(stats.percent_agreement, values, categories) - 9 / 11) < TOL
    assert abs(_point(stats.gwet_ac1, values, categories) - 31825 / 41041) < TOL
    assert abs(gwet_ac1_reference(values, categories) - 31825 / 41041) < TOL
    assert round(31825 / 41041, 5) == 0.77544


def test_gwet_ac1_stays_high_at_extreme_prevalence_where_kappa_collapses():
    values = np.zeros((100, 2))
    values[0] = [1, 0]  # one disagreement, no agreed positive
    assert _point(stats.fleiss_kappa, values, stats.BINARY) < 0.01
    assert _point(stats.gwet_ac1, values, stats.BINARY) > 0.98


def test_bootstrap_is_seeded_and_reproducible():
    rng = np.random.default_rng(3)
    values = (rng.random((50, 4)) < 0.3).astype(float)
    units = np.arange(50)
    first = stats.summarise(values, units, stats.draw_weights(50, 200, seed=7))
    again = stats.summarise(values, units, stats.draw_weights(50, 200, seed=7))
    other = stats.summarise(values, units, stats.draw_weights(50, 200, seed=8))
    assert first == again and first["fleiss_kappa_ci95"] != other["fleiss_kappa_ci95"]
    low, high = first["fleiss_kappa_ci95"]
    assert low <= first["fleiss_kappa"] <= high


def _simulated_round(seed: int, n_items: int = 150, n_readers: int = 5):
    """Readers of sensitivity 0.85 and specificity 0.9 on two labels (prevalence 0.3 and 0.1),
    each reading missing with probability 0.2, confidence grades 0..100 in steps of 25."""
    import pandas as pd

    from curation.agreement.table import validate
    rng = np.random.default_rng(seed)
    rows = []
    for label, prevalence in (("effusion", 0.3), ("nodule", 0.1)):
        truth = rng.random(n_items) < prevalence
        for item in range(n_items):
            for reader in range(n_readers):
                if rng.random() < 0.2:
                    continue
                says = rng.random() < (0.85 if truth[item] else 0.1)
                grade = int(np.clip(75 + 25 * rng.integers(-1, 2), 50, 100)) if says else int(25 * rng.integers(0, 2))
                rows.append({"item": f"i{item}", "label": label, "annotator": f"r{reader}", "value": int(says),
                             "confidence": grade})
    return validate(pd.DataFrame(rows))


def _estimates_with_interval(block: dict):
    """(name, value, interval) for every statistic with a _ci95 in an agreement() block."""
    for name, value in block.items():
        if isinstance(value, dict):
            for key, inner in value.items():
                yield from ((f"{name}.{key}.{n}", v, i) for n, v, i in _estimates_with_interval(inner))
        elif f"{name}_ci95" in block:
            yield name, value, block[f"{name}_ci95"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bootstrap_intervals_hold_the_point_estimate_on_typical_data(seed):
    readings = _simulated_round(seed)
    result = stats.agreement(readings, n_boot=300, seed=seed)
    blocks = [result["overall"], *result["per_label"].values(),
              *({"cohen_kappa": p["cohen_kappa"], "cohen_kappa_ci95": p["cohen_kappa_ci95"]}
                for p in result["pairwise"].values())]
    checked = 0
    for block in blocks:
        for name, value, interval in _estimates_with_interval(block):
            low, high = interval
            assert low <= value <= high, (name, value, interval)
            if name.endswith(("kappa", "alpha", "ac1", "alpha_ordinal")):
                assert 0 < high - low < 0.8, (name, interval)  # a real interval, not a point or the whole range
            checked += 1
    assert checked >= 3 * 10 + 10  # overall + 2 labels x (unanimity, agreement, kappa, alpha, AC1, ...) + pairs
    assert stats.agreement(readings, n_boot=300, seed=seed) == result  # seeded: the same figures again


def test_draw_weights_draw_every_resample_n_times():
    weights = stats.draw_weights(30, 100, seed=1)
    assert weights.shape == (100, 30) and (weights.sum(axis=1) == 30).all()


def test_markit_radiologists_reproduce_the_paper():
    if not MARKIT.is_dir():
        pytest.skip(f"MarkIt reference data absent: {MARKIT}")
    readings = read_markit(MARKIT / "agreement_list.csv", ["Annotator A", "Annotator B", "Annotator C"])
    result = stats.agreement(readings, n_boot=100, seed=0)
    overall = result["overall"]
    assert (overall["unanimous_positive"], overall["unanimous_negative"], overall["disagreements"]) == (370, 5954, 676)
    assert round(overall["fleiss_kappa"], 3) == 0.638
    assert len(result["per_label"]) == 7 and len(result["pairwise"]) == 3
    assert sum(block["unanimous_positive"] for block in result["per_label"].values()) == 370


def test_graded_confidence_gives_ordinal_alpha_and_weighted_kappa():
    import pandas as pd

    from curation.agreement.table import validate
    rng = np.random.default_rng(0)
    rows = [{"item": str(i), "label": "a", "annotator": r, "value": int(g >= 50), "confidence": g}
            for i in range(40) for r, g in zip("xyz", rng.choice([0, 25, 50, 75, 100], size=3))]
    result = stats.agreement(validate(pd.DataFrame(rows)), n_boot=50)
    block = result["per_label"]["a"]
    grades = np.array([[row["confidence"] for row in rows[i * 3:(i + 1) * 3]] for i in range(40)], dtype=float)
    reference = krippendorff.alpha(reliability_data=grades.T, level_of_measurement="ordinal")
    assert abs(block["krippendorff_alpha_ordinal"] - reference) < TOL
    kappa = block["pairwise_weighted"]["x|y"]["cohen_kappa"]
    assert abs(kappa - cohen_kappa_score(grades[:, 0], grades[:, 1], labels=[0, 25, 50, 75, 100],
                                         weights="quadratic")) < TOL


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # no unit read twice: NaN, as expected
@settings(max_examples=40, deadline=None)
@given(readings(), st.integers(0, 2**16))
def test_a_bootstrap_resample_equals_the_statistic_on_the_resampled_units(case, seed):
    """The weighted form used for resamples is the statistic computed on the units repeated as drawn."""
    values, categories = case
    weights = stats.draw_weights(len(values), 1, seed)
    repeated = np.repeat(values, weights[0].astype(int), axis=0)
    counts = stats.category_counts(values, categories)
    for function in (stats.fleiss_kappa, stats.gwet_ac1, stats.percent_agreement, stats.krippendorff_alpha):
        resampled = function(weights, counts)[0]
        direct = _point(function, repeated, categories)
        assert np.isnan(resampled) == np.isnan(direct)
        if not np.isnan(direct):
            assert abs(resampled - direct) < TOL


def test_unanimity_counts_units_read_at_least_twice():
    nan = np.nan
    values = np.array([[1, 1, 1], [0, 0, nan], [1, 0, 1], [nan, nan, 1], [0, 0, 0]])
    result = stats.unanimity(np.ones((1, 5)), stats.category_counts(values, stats.BINARY))
    assert [result[k][0] for k in ("unanimous_positive", "unanimous_negative", "disagreements")] == [1, 2, 1]
    assert result["unanimous_share"][0] == 3 / 4


def test_no_resamples_gives_point_estimates_without_intervals_and_counts_only_a_labels_readers() -> None:
    import pandas as pd

    from curation.agreement.table import validate
    """n_boot=0 is a valid request (no CIs); a label's n_readers counts only the readers who read it."""
    frame = pd.DataFrame({"item": ["1", "2", "1", "2", "1", "2", "3", "3"],
                          "label": ["a", "a", "a", "a", "b", "b", "b", "b"],
                          "annotator": ["r1", "r1", "r2", "r2", "r3", "r3", "r1", "r3"],
                          "value": [1, 0, 1, 1, 0, 0, 1, 1]})
    report = stats.agreement(validate(frame), n_boot=0)
    assert report["overall"]["fleiss_kappa_ci95"] is None
    assert report["per_label"]["a"]["n_readers"] == 2
    assert report["per_label"]["b"]["n_readers"] == 2
    assert report["overall"]["n_readers"] == 3
