"""`curate agreement CSV` and `curate reward CSV --budget B`: reader QC, inter-reader agreement,
consensus and per-reader feedback; and the split of a reward budget between the readers QC kept.

CSV is the long reading table (`item,label,annotator,value[,confidence,seconds,ai_probability,gold]`)
or MarkIt's wide `agreement_list.csv` (one True/False column per annotator, `case`, `label`,
`ai_prediction`), recognised by its columns. Formulas and fields: docs/agreement.md.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from curate._common import CliError, print_json

# readings x bootstrap resamples above which progress goes to stderr (about 2 s on a laptop core)
SLOW_WORK = 100_000_000


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("agreement", help="reader QC, inter-reader agreement, consensus and feedback of a reading table")
    _input_options(p)
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                   help="bootstrap resamples over items for the 95%% intervals (0: point estimates only; default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    p.add_argument("--tie-rule", choices=["negative", "positive", "undecided"], default="negative",
                   help="majority vote ties: negative (MarkIt), positive, or left undecided (default negative)")
    p.set_defaults(func=run_agreement)

    p = sub.add_parser("reward", help="split a reward budget between the readers QC kept")
    _input_options(p)
    p.add_argument("--budget", type=float, required=True, help="tokens to split")
    p.add_argument("--times", default=None, metavar="TIMES.csv",
                   help="mean reading time per label (columns Label,Mean time); default: the seconds column")
    p.add_argument("--mode", choices=["general", "paper", "published"], default="general",
                   help="general (any number of readers, default), paper (MarkIt Eq. 1), "
                        "published (the split MarkIt printed)")
    p.set_defaults(func=run_reward)


def _input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("csv", help="long reading table, or MarkIt's wide agreement_list.csv")
    p.add_argument("--ai-threshold", type=float, default=0.5,
                   help="ai_probability at or above which the model's pseudo answer is yes (default 0.5)")
    p.add_argument("--kappa-min", type=float, default=0.05,
                   help="a reader's Cohen kappa against the model must exceed this on every label (default 0.05)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def read_readings(path: str):
    """The long table, or MarkIt's wide table when its columns say so (`case` and `label`, no `annotator`)."""
    from curation.agreement.table import TableError, read_long, read_markit

    source = Path(path)
    if not source.is_file():
        raise CliError(f"{path}: no such file")
    try:
        header = set(pd.read_csv(source, nrows=0).columns)
        wide = {"case", "label"} <= header and "annotator" not in header
        return read_markit(source) if wide else read_long(source)
    except (TableError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise CliError(f"{path}: {exc}") from exc


def _qc_config(args: argparse.Namespace):
    from curation.agreement.qc import QcConfig

    if not 0 <= args.ai_threshold <= 1:
        raise CliError("--ai-threshold must be in [0, 1]")
    if not -1 <= args.kappa_min <= 1:
        raise CliError("--kappa-min must be in [-1, 1]")
    return QcConfig(ai_threshold=args.ai_threshold, kappa_min=args.kappa_min)


def _progress(start: float):
    def say(message: str) -> None:
        print(f"curate agreement [{time.monotonic() - start:5.1f} s] {message}", file=sys.stderr, flush=True)
    return say


def run_agreement(args: argparse.Namespace) -> int:
    from curation.agreement.report import agreement_report, agreement_tables

    if args.bootstrap < 0:
        raise CliError("--bootstrap must be >= 0")
    readings = read_readings(args.csv)
    config = _qc_config(args)
    slow = args.bootstrap * len(readings.frame) > SLOW_WORK
    try:
        report = agreement_report(readings, config, n_boot=args.bootstrap, seed=args.seed, tie_rule=args.tie_rule,
                                  progress=_progress(time.monotonic()) if slow else (lambda _: None))
    except ValueError as exc:
        raise CliError(f"{args.csv}: {exc}") from exc
    if args.json:
        print_json(report)
    else:
        print(agreement_tables(report))
    return 0


def run_reward(args: argparse.Namespace) -> int:
    from curation.agreement.report import reward_report, reward_table
    from curation.agreement.reward import read_times

    readings = read_readings(args.csv)
    config = _qc_config(args)
    times = None
    if args.times:
        if not Path(args.times).is_file():
            raise CliError(f"{args.times}: no such file")
        try:
            times = read_times(args.times)
        except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise CliError(f"{args.times}: {exc}") from exc
    try:
        report = reward_report(readings, args.budget, args.mode, times=times, config=config)
    except ValueError as exc:
        raise CliError(f"{args.csv}: {exc}") from exc
    if args.json:
        print_json(report)
    else:
        print(reward_table(report, args.budget))
    return 0
