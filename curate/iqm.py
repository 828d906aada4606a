"""`curate iqm PATH`: image-quality metrics of a series (lower-case names: snr, snr_dietrich, cnr, cjv,
efc, fber, wm2max, qi1, ...; NaN as null with its reason), mask sizes, and the approve/review/exclude
decision when the quality model covers the series' kind."""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import yaml

from curate._common import CliError, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("iqm", help="image-quality metrics and decision of a series")
    p.add_argument("path", help="DICOM series folder, DICOM file, or NIfTI file (.nii/.nii.gz)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--kind", default=None, help="skip classification and treat the series as this kind")
    p.add_argument("--config", default=None, help="YAML with overrides of include/quality/thresholds.yaml")
    p.add_argument("--no-model", action="store_true", help="limits only, no learned decision")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curation.classify import classify_series
    from curation.quality import assess_series
    from curation.quality.results import jsonable

    path = Path(args.path)
    if not path.exists():
        raise CliError(f"{args.path}: no such file or folder")
    overrides = {}
    if args.config:
        try:
            overrides = yaml.safe_load(Path(args.config).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise CliError(f"{args.config}: {exc}") from exc
    try:
        cls = classify_series(path) if args.kind is None else {"kind": args.kind.upper(), "body_part": None}
        if cls.get("rule") == "no_dicom":
            raise CliError(f"{args.path}: no readable DICOM file (nor a NIfTI file)")
        r = assess_series(path, overrides, classification=cls, model=None if args.no_model else "default")
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    metrics = {k: r["metrics"][k] for k in sorted(r["metrics"])}
    if args.json:
        print_json(jsonable({**metrics, "kind": r["kind"], "nan_reasons": r["nan_reasons"], "masks": r["masks"],
                             "decision": r["decision"]}))
        return 0
    print(f"{r['kind']}: {r['decision']['decision']} -- {r['decision']['reason']}")
    for k, v in metrics.items():
        if math.isfinite(v):
            print(f"  {k:18s} {v:.6g}")
        else:
            print(f"  {k:18s} NaN  ({r['nan_reasons'].get(k, '')})")
    print("  masks: " + ", ".join(f"{k} {v}" for k, v in r["masks"].items()))
    return 0
