"""`curate synth OUT --patients N --seed S`: write a synthetic hospital export with its ground truth."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from curate._common import CliError, print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "synth",
        help="generate a deterministic synthetic hospital export (DICOM, PNG/JPEG, NIfTI + ground truth)",
        description="Generate a synthetic site: MR/CT/CR/DX/US/SC DICOM with planted PHI, defects, motion "
        "and bad inputs, PNG/JPEG chest images, NIfTI head volumes, and OUT/ground_truth.json. "
        "The same arguments give byte-identical files.",
    )
    p.add_argument("out", type=Path, help="output folder (created; must be empty or absent)")
    p.add_argument("--patients", type=int, default=3, help="number of patients (default 3: every kind at least once)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--matrix", type=int, default=128, help="MR in-plane matrix (default 128)")
    p.add_argument("--slices", type=int, default=24, help="slices of 3D/2D stacks (default 24; 4D series use half)")
    p.add_argument("--no-phi-locations", action="store_true",
                   help="leave out the per-file phi_locations list (smaller ground truth for big sites)")
    p.add_argument("--force", action="store_true", help="write into a non-empty OUT")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from synth import generate_site, summarize

    if args.patients < 1:
        raise CliError("--patients must be at least 1")
    if args.matrix < 32 or args.slices < 4:
        raise CliError("--matrix must be at least 32 and --slices at least 4")
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise CliError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not args.force:
        raise CliError(f"{out} is not empty (use --force to write into it)")
    t0 = time.monotonic()
    truth = generate_site(out, args.patients, args.seed, matrix=args.matrix, slices=args.slices,
                          phi_locations=not args.no_phi_locations)
    summary = summarize(truth)
    summary["seconds"] = round(time.monotonic() - t0, 1)
    summary["out"] = str(out)
    if args.json:
        print_json(summary)
        return 0
    print(f"synthetic site written to {out} in {summary['seconds']} s", file=sys.stderr)
    print(f"  patients {summary['patients']}  studies {summary['studies']}  series {summary['series']}  "
          f"instances {summary['instances']}")
    print("  series by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["series_by_kind"].items())))
    print("  files by type:  " + ", ".join(f"{k} {v}" for k, v in sorted(summary["files_by_type"].items())))
    print(f"  ground truth:   {out / 'ground_truth.json'} ({summary['phi_locations']} PHI locations)")
    return 0
