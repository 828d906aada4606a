"""Timing of the agreement statistics at the issue's size: 1,000 items x 7 labels x 10 readers,
every statistic overall and per label with 1,000 bootstrap resamples. Prints seconds.

Usage: .venv/bin/python benchmarks/agreement.py [--items 1000] [--labels 7] [--readers 10] [--boot 1000]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from curation.agreement.statistics import agreement
from curation.agreement.table import validate


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--labels", type=int, default=7)
    parser.add_argument("--readers", type=int, default=10)
    parser.add_argument("--boot", type=int, default=1000)
    args = parser.parse_args()
    readings = validate(simulated(args.items, args.labels, args.readers))
    start = time.perf_counter()
    result = agreement(readings, n_boot=args.boot, seed=0)
    seconds = time.perf_counter() - start
    print(f"agreement: {args.items} items x {args.labels} labels x {args.readers} readers, "
          f"{args.boot} resamples: {seconds:.2f} s (overall Fleiss' kappa {result['overall']['fleiss_kappa']:.3f})")


if __name__ == "__main__":
    main()
