"""Inter-reader agreement with bootstrap confidence intervals over items.

Every statistic is written as a function of per-unit sums weighted by how often the bootstrap drew
the unit's item: weights of ones give the point estimate, a (B, n) matrix of draw counts gives all
B resamples in one matrix product. That is what makes 1,000 items x 7 labels x 10 readers with 1,000
resamples run in seconds, and it keeps the point estimate and the resamples the same code.

A unit is what readers rate: an item for one label, or an item-label pair when labels are pooled.
Readings are an (n_units, n_readers) float array, NaN where a reader did not read the unit.

References (also the test oracles):
- Fleiss' kappa: Fleiss (1971); statsmodels `fleiss_kappa` (same number of readings per unit).
  Units with fewer than two readings are left out; where units have different numbers of readings,
  each unit's agreement P_i uses its own count and the category shares p_j pool all readings (our
  extension; it equals Fleiss' formula when the count is constant).
- Cohen's kappa (weighted: Cohen 1968): scikit-learn `cohen_kappa_score`, on the units both read.
- Krippendorff's alpha, nominal and ordinal: Krippendorff (2011) "Computing Krippendorff's
  alpha-reliability"; the `krippendorff` package. Ordinal distance is the interval distance between
  the values' mid-ranks in the pooled distribution of pairable values.
- Gwet's AC1: Gwet (2008) Br J Math Stat Psychol 61:29-48, with missing readings as in Gwet's
  Handbook (2014): agreement over units with two or more readings, category shares over units with
  at least one.
"""
from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np

from curation.agreement.table import Readings

BINARY = (0.0, 1.0)
WEIGHTS = ("none", "linear", "quadratic")


def category_counts(values: np.ndarray, categories: Sequence[float]) -> np.ndarray:
    """(n_units, n_categories) number of readings of each category per unit; NaN is not counted."""
    cats = np.asarray(categories, dtype=float)
    counts = (values[:, :, None] == cats[None, None, :]).sum(axis=1).astype(float)
    unknown = ~np.isnan(values) & ~np.isin(values, cats)
    if unknown.any():
        raise ValueError(f"reading(s) outside the categories {list(categories)}: {np.unique(values[unknown])}")
    return counts


def draw_weights(n_items: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_items) how many times each item is drawn in each resample (seeded)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_items, size=(n_boot, n_items))
    flat = (draws + np.arange(n_boot)[:, None] * n_items).ravel()
    return np.bincount(flat, minlength=n_boot * n_items).reshape(n_boot, n_items).astype(float)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den != 0, num / np.where(den != 0, den, 1.0), np.nan)


def unanimity(w: np.ndarray, counts: np.ndarray) -> dict[str, np.ndarray]:
    """Yes/no units read at least twice: all yes, all no, the rest disagree (counts and share)."""
    m = counts.sum(axis=1)
    valid = m >= 2
    positive = (valid & (counts[:, 1] == m)).astype(float)
    negative = (valid & (counts[:, 0] == m)).astype(float)
    sums = w @ np.stack([positive, negative, valid.astype(float)], axis=1)
    return {"unanimous_positive": sums[:, 0], "unanimous_negative": sums[:, 1],
            "disagreements": sums[:, 2] - sums[:, 0] - sums[:, 1],
            "unanimous_share": _ratio(sums[:, 0] + sums[:, 1], sums[:, 2])}


def _observed_agreement(w: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean share of agreeing reader pairs over units read twice or more, and that weight."""
    m = counts.sum(axis=1)
    valid = m >= 2
    per_unit = _ratio((counts ** 2).sum(axis=1) - m, m * (m - 1))
    sums = w @ np.stack([np.where(valid, per_unit, 0.0), valid.astype(float)], axis=1)
    return _ratio(sums[:, 0], sums[:, 1]), sums[:, 1]


def percent_agreement(w: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Pairwise percent agreement: the share of agreeing reader pairs, averaged over units."""
    return _observed_agreement(w, counts)[0]


def fleiss_kappa(w: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Fleiss' kappa (chance agreement from pooled category shares)."""
    observed, _ = _observed_agreement(w, counts)
    valid = (counts.sum(axis=1) >= 2)[:, None]
    pooled = w @ np.where(valid, counts, 0.0)
    shares = pooled / pooled.sum(axis=1, keepdims=True)
    chance = (shares ** 2).sum(axis=1)
    return _ratio(observed - chance, 1 - chance)


def gwet_ac1(w: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Gwet's AC1: chance agreement sum_k pi_k (1 - pi_k) / (Q - 1), stable at extreme prevalence."""
    observed, _ = _observed_agreement(w, counts)
    m = counts.sum(axis=1)
    read = m >= 1
    proportions = np.where(read[:, None], counts / np.where(read, m, 1.0)[:, None], 0.0)
    pi = _ratio(w @ proportions, (w @ read.astype(float))[:, None])
    chance = (pi * (1 - pi)).sum(axis=1) / (counts.shape[1] - 1)
    return _ratio(observed - chance, 1 - chance)


def krippendorff_alpha(w: np.ndarray, counts: np.ndarray, level: str = "nominal") -> np.ndarray:
    """Krippendorff's alpha from the coincidence matrix; `level` nominal or ordinal (categories
    must then be given in their order). Units with fewer than two readings are not pairable."""
    if level not in ("nominal", "ordinal"):
        raise ValueError(f"level must be 'nominal' or 'ordinal', not {level!r}")
    n_cat = counts.shape[1]
    m = counts.sum(axis=1)
    scale = np.where(m >= 2, 1.0 / np.where(m >= 2, m - 1, 1.0), 0.0)
    pairs = counts[:, :, None] * counts[:, None, :]
    pairs[:, np.arange(n_cat), np.arange(n_cat)] -= counts
    coincidences = (w @ (pairs * scale[:, None, None]).reshape(len(counts), -1)).reshape(-1, n_cat, n_cat)
    marginals = coincidences.sum(axis=2)
    total = marginals.sum(axis=1)
    if level == "nominal":
        delta = np.broadcast_to(1.0 - np.eye(n_cat), coincidences.shape)
    else:
        midrank = np.cumsum(marginals, axis=1) - marginals / 2
        delta = (midrank[:, :, None] - midrank[:, None, :]) ** 2
    observed = (coincidences * delta).sum(axis=(1, 2))
    expected = (marginals[:, :, None] * marginals[:, None, :] * delta).sum(axis=(1, 2))
    return 1 - _ratio((total - 1) * observed, expected)


def _weight_matrix(n_cat: int, weights: str) -> np.ndarray:
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, not {weights!r}")
    index = np.arange(n_cat)
    gap = np.abs(index[:, None] - index[None, :]).astype(float)
    return {"none": (gap > 0).astype(float), "linear": gap, "quadratic": gap ** 2}[weights]


def cohen_kappa_pairs(w: np.ndarray, values: np.ndarray, categories: Sequence[float],
                      weights: str = "none") -> tuple[list[tuple[int, int]], np.ndarray, np.ndarray]:
    """Cohen's kappa and percent agreement for every reader pair on the units both read.

    Linear in per-unit terms: sum(W * confusion) is a sum over units of W[a_u, b_u], and the
    expected table is the outer product of the two readers' (weighted) category counts.
    Returns the pairs (reader indices), kappa (B, P) and percent agreement (B, P).
    """
    cats = np.asarray(categories, dtype=float)
    n_cat = len(cats)
    weight = _weight_matrix(n_cat, weights)
    index = np.where(np.isnan(values), -1, np.searchsorted(cats, np.nan_to_num(values)))
    pairs = list(combinations(range(values.shape[1]), 2))
    if not pairs:
        return pairs, np.empty((w.shape[0], 0)), np.empty((w.shape[0], 0))
    first = index[:, [a for a, _ in pairs]]
    second = index[:, [b for _, b in pairs]]
    both = (first >= 0) & (second >= 0)
    a, b = np.where(both, first, 0), np.where(both, second, 0)
    onehot = np.eye(n_cat)
    columns = np.concatenate([both[..., None], (both & (a == b))[..., None],
                              (weight[a, b] * both)[..., None],
                              onehot[a] * both[..., None], onehot[b] * both[..., None]], axis=2)
    n_columns = columns.shape[2]  # explicit: reshape cannot infer it when there are 0 resamples
    sums = (w @ columns.reshape(len(values), -1)).reshape(w.shape[0], len(pairs), n_columns)
    n, agree, disagreement = sums[..., 0], sums[..., 1], sums[..., 2]
    rows, cols = sums[..., 3:3 + n_cat], sums[..., 3 + n_cat:]
    expected = _ratio(np.einsum("bpi,ij,bpj->bp", rows, weight, cols), n)
    return pairs, 1 - _ratio(disagreement, expected), _ratio(agree, n)


def _interval(samples: np.ndarray, confidence: float) -> list[float] | None:
    """Percentile interval of the resamples (NaN resamples, where a statistic is undefined, dropped)."""
    kept = samples[~np.isnan(samples)]
    if kept.size == 0:
        return None
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(kept, [tail, 100 - tail])
    return [float(low), float(high)]


def _value(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def summarise(values: np.ndarray, unit_items: np.ndarray, weights: np.ndarray,
              categories: Sequence[float] = BINARY, confidence: float = 0.95) -> dict:
    """All unit-level statistics of one set of units: value and `_ci95` over the resamples.

    `unit_items[u]` is the item of unit u; `weights` are the (B, n_items) draw counts."""
    counts = category_counts(values, categories)
    ones = np.ones((1, len(values)))
    resampled = weights[:, unit_items] if weights.size else np.empty((0, len(values)))
    m = counts.sum(axis=1)
    result: dict = {"n_items": int(len(np.unique(unit_items[m > 0]))), "n_readers": int((~np.isnan(values)).any(axis=0).sum())}  # who read these units, not everyone in the table
    statistics = {"percent_agreement": percent_agreement, "fleiss_kappa": fleiss_kappa,
                  "krippendorff_alpha": krippendorff_alpha, "gwet_ac1": gwet_ac1}
    if len(categories) == 2:
        for name, point in unanimity(ones, counts).items():
            boot = unanimity(resampled, counts)[name]
            result[name] = int(point[0]) if name != "unanimous_share" else _value(point[0])
            result[f"{name}_ci95"] = _interval(boot, confidence)
    for name, function in statistics.items():
        result[name] = _value(function(ones, counts)[0])
        result[f"{name}_ci95"] = _interval(function(resampled, counts), confidence)
    return result


def pairwise(values: np.ndarray, unit_items: np.ndarray, weights: np.ndarray, readers: Sequence[str],
             categories: Sequence[float] = BINARY, kappa_weights: str = "none",
             confidence: float = 0.95) -> dict[str, dict]:
    """Cohen's kappa and percent agreement per reader pair, keyed 'A|B'."""
    ones = np.ones((1, len(values)))
    resampled = weights[:, unit_items]
    pairs, kappa, agree = cohen_kappa_pairs(ones, values, categories, kappa_weights)
    _, kappa_boot, _ = cohen_kappa_pairs(resampled, values, categories, kappa_weights)
    both = (~np.isnan(values[:, [a for a, _ in pairs]]) & ~np.isnan(values[:, [b for _, b in pairs]])).sum(0)
    return {f"{readers[a]}|{readers[b]}": {"cohen_kappa": _value(kappa[0, p]),
                                           "cohen_kappa_ci95": _interval(kappa_boot[:, p], confidence),
                                           "percent_agreement": _value(agree[0, p]),
                                           "n_items": int(both[p]), "weights": kappa_weights}
            for p, (a, b) in enumerate(pairs)}


def _grades(readings: Readings) -> list[float]:
    return sorted(readings.frame["confidence"].dropna().unique().astype(float))


def agreement(readings: Readings, n_boot: int = 1000, seed: int = 0, confidence: float = 0.95,
              kappa_weights: str = "quadratic") -> dict:
    """Overall (item-label pairs pooled) and per-label agreement with bootstrap CIs over items.

    When a `confidence` column is present, also ordinal alpha and weighted Cohen's kappa on the
    confidence grades (`kappa_weights` linear or quadratic)."""
    readers = readings.annotators
    frame = readings.frame
    items = sorted(readings.frame["item"].unique())
    position = {item: i for i, item in enumerate(items)}
    weights = draw_weights(len(items), n_boot, seed) if n_boot else np.empty((0, len(items)))
    graded = "confidence" in readings.frame.columns and readings.frame["confidence"].notna().any()
    grades = _grades(readings) if graded else []

    def block(label: str | None) -> dict:
        ratings = readings.ratings(label, annotators=readers)
        if label is None:  # item-label pairs, in the pivot's (sorted) order; the item comes first
            keys = np.unique(frame["item"] + "\x1f" + frame["label"])
            units = np.array([position[key.split("\x1f")[0]] for key in keys])
        else:
            units = np.array([position[item] for item in ratings.items])
        out = summarise(ratings.values, units, weights, BINARY, confidence)
        out["pairwise"] = pairwise(ratings.values, units, weights, readers, BINARY, "none", confidence)
        if graded:
            graded_ratings = readings.ratings(label, column="confidence", annotators=readers).values
            counts = category_counts(graded_ratings, grades)
            out["krippendorff_alpha_ordinal"] = _value(
                krippendorff_alpha(np.ones((1, len(units))), counts, "ordinal")[0])
            out["krippendorff_alpha_ordinal_ci95"] = _interval(
                krippendorff_alpha(weights[:, units], counts, "ordinal"), confidence)
            out["pairwise_weighted"] = pairwise(graded_ratings, units, weights, readers, grades,
                                                kappa_weights, confidence)
        return out

    overall = block(None)
    return {"n_boot": n_boot, "seed": seed, "overall": {k: v for k, v in overall.items() if k != "pairwise"},
            "pairwise": overall["pairwise"], "per_label": {label: block(label) for label in readings.labels}}
