"""Training data, fit and held-back evaluation of the DWI, ADC and DCE quality models (issue 19).

Rows come from synth.acquisitions' 4D grid: per setting and kind, clean series (vendors rotating) and
one series per defect of the kind (synth.degrade: DWI noise / Nyquist ghosting / slice drop-out, ADC
scale / noise floor, DCE baseline drift / failed uptake / motion between phases) at a seeded severity
1-5 for training, 2-5 for the held-back evaluation (matrices and slice thicknesses never drawn for
training, both field strengths). Metrics are computed by the stage's own `compute_metrics`.

    python -m training.quality_4d table      # include/quality/training_table_4d.csv (~5 min, 2 processes)
    python -m training.quality_4d train      # weights from the table: qc_models/weights/quality_{dwi,adc,dce}.pt
    python -m training.quality_4d evaluate   # held-back confusion per kind (docs/benchmarks.md)

Why a model per kind, not more inputs to the structural model: the metrics differ entirely (a DWI has
no grey/white matter contrast, an ADC map no noise in air), each model stays a few weights that its
own rows decide, and retraining one never moves the structural decisions.
"""
from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from curation.quality.features import KIND_METRICS, kind_feature_names, kind_features
from curation.vocabulary import SeriesKind

KINDS_4D = (SeriesKind.DWI.value, SeriesKind.ADC.value, SeriesKind.DCE.value)
TRAIN_SEED = 1919
TRAIN_SETTINGS = 16
HELDOUT_SEED = 2626
HELDOUT_SETTINGS = 8
#: Clean series per setting and kind (vendors rotating): clean ones vary less than degraded ones.
CLEAN_PER_SETTING = 3
HELDOUT_CLEAN_PER_SETTING = 3
TABLE = Path(__file__).resolve().parents[1] / "include" / "quality" / "training_table_4d.csv"
METRIC_COLUMNS_4D = tuple(m for k in KINDS_4D for m, _, _ in KIND_METRICS[k])


def _defects(kind: str) -> tuple[str, ...]:
    from synth import degrade as dg

    return {SeriesKind.DWI.value: dg.DWI_DEFECTS, SeriesKind.ADC.value: dg.ADC_DEFECTS,
            SeriesKind.DCE.value: dg.DCE_DEFECTS}[kind]


def jobs(split: str, seed: int, n_settings: int) -> list[tuple]:
    """One job per (setting, kind): its clean series and one per defect at a seeded severity."""
    from synth.acquisitions import VENDOR_KEYS, settings

    rng = np.random.default_rng(zlib.crc32(f"4d/{split}/{seed}".encode()))
    n_clean = CLEAN_PER_SETTING if split == "train" else HELDOUT_CLEAN_PER_SETTING
    lo = 1 if split == "train" else 2
    out = []
    for i, st in enumerate(settings(split, n_settings, seed, four_d=True)):
        for ki, kind in enumerate(KINDS_4D):
            series = [(VENDOR_KEYS[(i + ki + c) % len(VENDOR_KEYS)], None) for c in range(n_clean)]
            series += [(VENDOR_KEYS[(i + ki + j) % len(VENDOR_KEYS)], (t, int(rng.integers(lo, 6))))
                       for j, t in enumerate(_defects(kind))]
            out.append((st, seed, kind, tuple(series), int(split == "train")))
    return out


def _job_rows(job: tuple) -> list[dict[str, Any]]:
    from curation.quality.metrics import compute_metrics
    from synth.acquisitions import adc_map_volume, dce_series, diffusion_series
    from training.quality import acquisition_row

    setting, seed, kind, series, augmented = job
    rows = []
    for c, (vendor, defect) in enumerate(series):
        s = seed + 7919 * c if defect is None else seed  # several clean series of one setting: other noise
        if kind == SeriesKind.DWI:
            frames, spacing, b_values, facts = diffusion_series(setting, s, vendor, defect)
            ms = compute_metrics(frames[0], spacing, kind, frames=frames, b_values=b_values)
        elif kind == SeriesKind.DCE:
            frames, spacing, facts = dce_series(setting, s, vendor, defect)
            ms = compute_metrics(frames[0], spacing, kind, frames=frames)
        else:
            vol, spacing, facts = adc_map_volume(setting, s, vendor, defect)
            ms = compute_metrics(vol, spacing, kind)
        rows.append(acquisition_row(seed, kind, vendor, setting, defect, augmented, facts, ms, METRIC_COLUMNS_4D,
                                    suffix=f"-{c}"))
    return rows


def rows(split: str = "train", seed: int = TRAIN_SEED, n_settings: int = TRAIN_SETTINGS,
         processes: int = 2) -> list[dict[str, Any]]:
    """Metric rows of `jobs` (in job order, whatever the number of processes)."""
    from training.quality import run_jobs

    return run_jobs(_job_rows, jobs(split, seed, n_settings), processes)


def fit(table_rows: Sequence[dict[str, Any]]) -> dict[str, tuple]:
    """{kind: (model, meta)} trained on the table's rows of each kind."""
    from qc_models import quality_classifier
    from training.quality import reference_stats

    out = {}
    for kind in KINDS_4D:
        kr = [r for r in table_rows if r["kind"] == kind]
        metrics = tuple(m for m, _, _ in KIND_METRICS[kind])
        ref, fill = reference_stats(kr, metrics)
        x = np.stack([kind_features(r, kind, fill, r) for r in kr])
        y = [int(r["degraded"]) for r in kr]
        meta = {"name": f"quality_{kind.lower()}", "kinds": [kind], "reference": ref, "fill": fill,
                "train_seeds": sorted({int(r["seed"]) for r in kr}), "n_augmented": int(sum(r["augmented"] for r in kr))}
        out[kind] = quality_classifier.train_kind(x, y, kind_feature_names(kind), meta)
    return out


def train(table: Path = TABLE, out_dir: Path | None = None) -> dict[str, Path]:
    """Fit from the table and save each kind's weights (the shipped files unless `out_dir`)."""
    from qc_models import mlp, quality_classifier
    from training.quality import read_table

    saved = {}
    for kind, (model, meta) in fit(read_table(table, METRIC_COLUMNS_4D)).items():
        path = quality_classifier.kind_weights(kind)
        path = Path(out_dir) / path.name if out_dir else path
        mlp.save(model, path, meta)
        saved[kind] = path
    return saved


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    from training.quality import evaluate, report, write_table

    p = argparse.ArgumentParser(prog="python -m training.quality_4d")
    p.add_argument("command", choices=("table", "train", "evaluate"))
    p.add_argument("--table", type=Path, default=TABLE)
    p.add_argument("--out-dir", type=Path, default=None, help="train: write the weights here")
    p.add_argument("--processes", type=int, default=2)
    args = p.parse_args(argv)
    if args.command == "table":
        write_table(rows("train", processes=args.processes), args.table, METRIC_COLUMNS_4D)
        print(f"wrote {args.table}")
    elif args.command == "train":
        for kind, path in train(args.table, args.out_dir).items():
            print(f"{kind}: {path}")
    else:
        report(evaluate(rows("heldout", HELDOUT_SEED, HELDOUT_SETTINGS, args.processes)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
