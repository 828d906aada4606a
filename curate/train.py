"""`curate train quality` / `curate train classifier`: rebuild the shipped models from synthetic sites;
`curate train findings --release NAME@VERSION`: train the findings model from a release (docs/ai.md).

The classifier also learns from a physics-labelled sample generated from a fixed seed
(`curation.classify.physics`), so it knows MR contrast physics beyond the sites' protocol table.
Deterministic end to end: the sites are generated from fixed seeds, features are computed the same
way, and training is seeded and single-threaded -- so the command reproduces the shipped weights.
`--table` saves the training table (quality: metrics CSV; classifier: header summaries JSON);
`--from-table` trains from one without generating sites.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from curate._common import CliError, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the quality classifier, the series classifier or the findings model")
    tsub = p.add_subparsers(dest="train_command", metavar="MODEL")
    tsub.required = True
    for name, helptext in (("quality", "quality classifier (clean vs degraded, on image-quality metrics)"),
                           ("classifier", "series-kind classifier (on header features)")):
        t = tsub.add_parser(name, help=helptext)
        t.add_argument("--workdir", default=None, help="where training sites are generated (default: CURATE_HOME/train)")
        t.add_argument("--seeds", default=None, help="comma-separated site seeds (default: 101,202,303)")
        t.add_argument("--patients", type=int, default=None, help="patients per site (default: 6)")
        t.add_argument("--out", default=None, help="weights file (default: the shipped one in qc_models/weights/)")
        t.add_argument("--json", action="store_true")
        t.add_argument("--table", default=None, help="also write the training table here")
        t.add_argument("--from-table", default=None, help="train from this table instead of generating sites")
        t.set_defaults(func=run_quality if name == "quality" else run_classifier)
    f = tsub.add_parser("findings", help="chest findings model (nodule, opacity, effusion) from a release")
    f.add_argument("--release", required=True, help="NAME@VERSION of a published release")
    f.add_argument("--store", default=None, help="the release's store (default: the platform's store)")
    f.add_argument("--split", default="train", help="split to train on (default: train)")
    f.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    f.add_argument("--epochs", type=int, default=None, help="epochs (default: training.findings.EPOCHS)")
    f.add_argument("--truth", default=None, help="synthetic site of the release (its ground truth): adds the "
                   "pointing game to the card")
    f.add_argument("--out", default=None, help="folder for the weights and card (default: qc_models/weights/)")
    f.add_argument("--json", action="store_true")
    f.set_defaults(func=run_findings)


def _common(args: argparse.Namespace, default_seeds, default_patients):
    from curation.config import curate_home

    seeds = tuple(int(s) for s in args.seeds.split(",")) if args.seeds else tuple(default_seeds)
    patients = args.patients or default_patients
    workdir = Path(args.workdir) if args.workdir else curate_home() / "train"
    return seeds, patients, workdir


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_quality(args: argparse.Namespace) -> int:
    import training.quality as training
    import training.quality_4d as quality_4d
    from qc_models import mlp, quality_classifier

    seeds, patients, workdir = _common(args, training.TRAIN_SEEDS, training.TRAIN_PATIENTS)
    if args.from_table:
        if not Path(args.from_table).exists():
            raise CliError(f"{args.from_table}: no such table")
        rows = training.read_table(Path(args.from_table))
    else:
        _say(f"train quality: generating/reading sites {seeds} x {patients} patients under {workdir}")
        rows = training.build_table(workdir, seeds, patients, progress=None)
    if args.table:
        training.write_table(rows, Path(args.table))
    model, meta = training.fit(rows)
    out = Path(args.out) if args.out else quality_classifier.WEIGHTS
    mlp.save(model, out, meta)
    # DWI, ADC and DCE have their own small models on their own metrics, trained from the shipped 4D
    # table (`python -m training.quality_4d table` rebuilds it); written beside `out`.
    kinds = quality_4d.train(quality_4d.TABLE, out.parent if args.out else None)
    summary = {"weights": str(out), "rows": len(rows), "degraded": meta["n_degraded"], "seeds": meta["train_seeds"],
               "bytes": out.stat().st_size, "kind_weights": {str(k): str(v) for k, v in kinds.items()}}
    print_json(summary) if args.json else print(f"quality classifier: {summary['rows']} rows "
                                                f"({summary['degraded']} degraded) -> {out} ({summary['bytes']} bytes); "
                                                f"{', '.join(str(k) for k in kinds)}: {out.parent if args.out else 'shipped'}")
    return 0


def run_classifier(args: argparse.Namespace) -> int:
    import training.classify as training
    from qc_models import mlp, series_classifier

    seeds, patients, workdir = _common(args, training.TRAIN_SEEDS, training.TRAIN_PATIENTS)
    if args.from_table:
        if not Path(args.from_table).exists():
            raise CliError(f"{args.from_table}: no such table")
        rows = training.read_table(Path(args.from_table))
        seeds = tuple(dict.fromkeys(r["seed"] for r in rows))
    else:
        _say(f"train classifier: generating/reading sites {seeds} x {patients} patients under {workdir}")
        rows = training.build_table(workdir, seeds, patients)
    if args.table:
        training.write_table(rows, Path(args.table))
    x, labels = training.training_set(rows)  # the sites' series and the physics-labelled sample
    model, meta = training.fit(x, labels, seeds)
    out = Path(args.out) if args.out else series_classifier.WEIGHTS
    mlp.save(model, out, meta)
    summary = {"weights": str(out), "examples": int(len(labels)), "seeds": list(seeds), "bytes": out.stat().st_size}
    print_json(summary) if args.json else print(f"series classifier: {summary['examples']} examples -> {out} "
                                                f"({summary['bytes']} bytes)")
    return 0


def run_findings(args: argparse.Namespace) -> int:
    import training.findings as training
    from curation.release.reader import open_release
    from curation.settings import settings
    from curation.store import open_store
    from qc_models.findings import model as findings_model

    if "@" not in args.release:
        raise CliError(f"--release {args.release!r}: expected NAME@VERSION")
    where = args.store or settings().store_location
    release = open_release(where, args.release)
    truth = training.site_truth(Path(args.truth), open_store(where)) if args.truth else None
    model, card = training.train_from_release(release, args.seed, args.split, args.epochs or training.EPOCHS,
                                              truth=truth, say=_say)
    out = Path(args.out) / findings_model.WEIGHTS.name if args.out else findings_model.WEIGHTS
    findings_model.save(model, out)
    summary = {"weights": str(out), "card": str(findings_model.card_path(out)), "bytes": out.stat().st_size,
               "release": card["data"]["release"], "seed": args.seed,
               "auc": {split: {label: m["auc"]["auc"] for label, m in block["labels"].items()}
                       for split, block in card["metrics"].items()}}
    print_json(summary) if args.json else print(f"findings model: {card['data']['train_images']} images of "
                                                f"{summary['release']} -> {out} ({summary['bytes']} bytes); "
                                                f"AUC {summary['auc']}")
    return 0
