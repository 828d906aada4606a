"""Agreement statistics against their reference implementations (statsmodels, scikit-learn, the
`krippendorff` package, used here only as test oracles), a published AC1 example, and the MarkIt
proof-of-concept figures."""
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


@st.composite
def readings(draw, n_cat_max: int = 4, missing: bool = True, constant_readers: bool = False):
    """Units x readers (2..10 readers) of small integer categories, NaN for missing readings."""
    n_readers = draw(st.integers(2, 10))
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
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(readings(constant_readers=True))
def test_fleiss_kappa_equals_statsmodels(case):
    values, categories = case
    counts = stats.category_counts(values, categories)
    reference = statsmodels_fleiss(counts, method="fleiss")
    ours = stats.fleiss_kappa(np.ones((1, len(values))), counts)[0]
    assert np.isnan(ours) == np.isnan(reference)
    if not np.isnan(reference):
        assert abs(ours - reference) < TOL


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(readings(), st.sampled_from(["nominal", "ordinal"]))
def test_krippendorff_alpha_equals_package(case, level):
    values, categories = case
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
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(readings(), st.sampled_from(["none", "linear", "quadratic"]))
def test_cohen_kappa_equals_scikit_learn_for_every_pair(case, weights):
    values, categories = case
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


@settings(max_examples=40, deadline=None)
@given(readings())
def test_percent_agreement_is_mean_share_of_agreeing_pairs(case):
    values, categories = case
    shares = []
    for row in values:
        seen = row[~np.isnan(row)]
        if len(seen) >= 2:
            pairs = [(x, y) for i, x in enumerate(seen) for y in seen[i + 1:]]
            shares.append(np.mean([x == y for x, y in pairs]))
    ours = _point(stats.percent_agreement, values, categories)
    assert (np.isnan(ours) and not shares) or abs(ours - np.mean(shares)) < TOL


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
