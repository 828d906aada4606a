"""Timing of the agreement library at the issue's size: 1,000 items x 7 labels x 10 readers.

Three figures, one run:
- `statistics`: every statistic overall and per label with 1,000 bootstrap resamples (the issue's goal);
- `report`: what `curate agreement` computes: QC, the statistics on the kept readers and on all readers,
  majority vote, Dawid-Skene and per-reader feedback;
- `references`: the reference packages (statsmodels Fleiss, scikit-learn Cohen per pair, the
  `krippendorff` package) computing the pooled point estimates once per resample, timed on
  `--reference-boot` resamples and scaled to `--boot` (they have no resampling of their own).

Usage: .venv/bin/python benchmarks/agreement.py [--items 1000] [--labels 7] [--readers 10] [--boot 1000]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from curation.agreement.report import agreement_report
from curation.agreement.statistics import agreement, draw_weights
from curation.agreement.table import Readings, validate


def simulated(items: int, labels: int, readers: int, seed: int = 0) -> pd.DataFrame:
    """Readers who see the truth (prevalence 15%) and flip 10% of their answers; 5% not read."""
    rng = np.random.default_rng(seed)
    truth = rng.random((items, labels)) < 0.15
    flips = rng.random((items, labels, readers)) < 0.10
    value = truth[:, :, None] ^ flips
    item, label, reader = np.meshgrid(np.arange(items), np.arange(labels), np.arange(readers), indexing="ij")
    read = rng.random(value.shape) >= 0.05
    return pd.DataFrame({"item": item[read].astype(str),
                         "label": np.char.add("label", label[read].astype(str)),
                         "annotator": np.char.add("reader", reader[read].astype(str)),
                         "value": value[read].astype(int)})


def references(readings: Readings, n_boot: int) -> float:
    """Seconds the reference packages take for the pooled point estimates on `n_boot` resamples."""
    import krippendorff
    from sklearn.metrics import cohen_kappa_score
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

    values = readings.ratings(None).values
    complete = values[~np.isnan(values).any(axis=1)]  # statsmodels needs the same readers per unit
    items = np.arange(len(values))
    weights = draw_weights(len(values), n_boot, seed=0)
    start = time.perf_counter()
    for row in weights:
        drawn = np.repeat(items, row.astype(int))
        sample, full = values[drawn], complete[drawn[drawn < len(complete)]]
        fleiss_kappa(aggregate_raters(full.astype(int))[0])
        krippendorff.alpha(reliability_data=sample.T, level_of_measurement="nominal")
        for a in range(sample.shape[1]):
            for b in range(a + 1, sample.shape[1]):
                both = ~np.isnan(sample[:, a]) & ~np.isnan(sample[:, b])
                cohen_kappa_score(sample[both, a], sample[both, b])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--labels", type=int, default=7)
    parser.add_argument("--readers", type=int, default=10)
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--reference-boot", type=int, default=10)
    args = parser.parse_args()
    readings = validate(simulated(args.items, args.labels, args.readers))
    size = f"{args.items} items x {args.labels} labels x {args.readers} readers, {args.boot} resamples"
    start = time.perf_counter()
    result = agreement(readings, n_boot=args.boot, seed=0)
    seconds = time.perf_counter() - start
    print(f"statistics: {size}: {seconds:.2f} s (overall Fleiss' kappa {result['overall']['fleiss_kappa']:.3f})")
    start = time.perf_counter()
    report = agreement_report(readings, n_boot=args.boot, seed=0)
    seconds = time.perf_counter() - start
    print(f"report (QC, statistics on kept and all readers, consensus, feedback): {size}: {seconds:.2f} s "
          f"({len(report['readers_excluded'])} readers excluded)")
    seconds = references(readings, args.reference_boot)
    print(f"references (statsmodels + scikit-learn + krippendorff, pooled point estimates only): "
          f"{seconds:.2f} s for {args.reference_boot} resamples = {seconds * args.boot / args.reference_boot:.0f} s "
          f"scaled to {args.boot}")


if __name__ == "__main__":
    main()
