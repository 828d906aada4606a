"""`curate classify PATH`: the kind of a series (DICOM series folder, a DICOM file, or a NIfTI file),
with its confidence, the rule that fired and the attributes -- from headers only."""
from __future__ import annotations

import argparse
from pathlib import Path

from curate._common import CliError, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("classify", help="classify a series: kind, confidence, rule, plane, 2D/3D/4D, contrast")
    p.add_argument("path", help="DICOM series folder, DICOM file, or NIfTI file (.nii/.nii.gz)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--rules", default=None, help="rules YAML (default: include/classify/rules.yaml)")
    p.add_argument("--no-model", action="store_true", help="rules only, without the header-feature model")
    p.add_argument("--evidence", action="store_true", help="also print every stage's rule and the model")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curation.classify import classify_series

    path = Path(args.path)
    if not path.exists():
        raise CliError(f"{args.path}: no such file or folder")
    config = {"rules": args.rules} if args.rules else {}
    if args.no_model:
        config["model"] = False
    try:
        r = classify_series(path, config)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    if r["rule"] == "no_dicom":
        raise CliError(f"{args.path}: no readable DICOM file (nor a NIfTI file)")
    if args.json:
        out = {k: r[k] for k in ("kind", "confidence", "rule", "stage", "detail", "modality", "plane", "planes",
                                 "dimensions", "contrast", "derived", "body_part", "n_files")}
        if args.evidence:
            out["evidence"] = r["evidence"]
        print_json(out)
        return 0
    print(f"{r['kind']}  (confidence {r['confidence']:.2f}, rule {r['rule']}{': ' + r['detail'] if r['detail'] else ''})")
    print(f"  modality {r['modality']}, plane {r['plane'] or 'mixed/none'}, {r['dimensions']}, "
          f"contrast {'yes' if r['contrast'] else 'no'}, derived {'yes' if r['derived'] else 'no'}, "
          f"body part {r['body_part'] or 'unknown'}, {r['n_files']} file(s)")
    if args.evidence:
        for stage, m in (r["evidence"].get("rules") or {}).items():
            if m:
                print(f"  {stage:9s} {m['rule']} -> {m['kind']} ({m['confidence']})")
        if r["evidence"].get("model"):
            mm = r["evidence"]["model"]
            print(f"  model     {mm['kind']} (p={mm['confidence']:.3f})")
    return 0
