"""`curate deid SRC DST`: de-identify a folder of DICOM files (PS3.15 Annex E profile + options,
pixel text masking, verification), and `curate deid reidentify`: read the encrypted map."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from curation.cli._common import CliError, print_json

DEFAULT_VAULT = Path("var/vault")


def register(subparsers: argparse._SubParsersAction) -> None:
    from deid.profile import SUPPORTED_OPTIONS, available_profiles

    p = subparsers.add_parser(
        "deid",
        help="de-identify DICOM files (Annex E profile, burned-in text masking, verification)",
        description="De-identify every DICOM file under SRC_DIR into DST_DIR. Exit status 0 when the run "
        "completed (quarantined files are listed in the report), non-zero only when it could not run. "
        "`curate deid reidentify PSEUDONYM` reads the encrypted re-identification map.",
    )
    p.add_argument("src", metavar="SRC_DIR", help="folder with raw DICOM files (or 'reidentify')")
    p.add_argument("dst", metavar="DST_DIR", nargs="?", help="output folder (or the pseudonym, after 'reidentify')")
    p.add_argument("--profile", default="default", help=f"profile name or YAML path ({', '.join(available_profiles())})")
    p.add_argument("--option", action="append", default=[], metavar="NAME",
                   help=f"add an option (repeatable): {', '.join(sorted(SUPPORTED_OPTIONS))}")
    p.add_argument("--secret-file", type=Path, default=DEFAULT_VAULT / "deid_secret",
                   help="HMAC site secret in the vault zone, created (0600) if missing (default var/vault/deid_secret)")
    p.add_argument("--map", type=Path, default=None, help="encrypted re-identification map, or a folder of per-series fragments (default: beside the secret)")
    p.add_argument("--key-file", type=Path, default=None, help="key of the map (default: beside the secret)")
    p.add_argument("--report", type=Path, default=None, help="write the run report (JSON) here")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: 2, the machine's cores)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.src == "reidentify":
        return _reidentify(args)
    from deid.batch import deidentify_tree
    from deid.profile import ProfileError

    if not args.dst:
        raise CliError("DST_DIR is required")
    src = Path(args.src)
    if not src.is_dir():
        raise CliError(f"source folder {src} does not exist")

    def progress(done: int, total: int, quarantined: int) -> None:
        if not args.quiet and (done % 50 == 0 or done == total):
            print(f"\rdeid: {done}/{total} files, {quarantined} quarantined", end="", file=sys.stderr, flush=True)

    try:
        report = deidentify_tree(
            src, args.dst, profile=args.profile, options=tuple(args.option), secret_file=args.secret_file,
            reid_map=args.map, reid_key_file=args.key_file, workers=args.workers, progress=progress,
        )
    except (ProfileError, ValueError, FileNotFoundError, PermissionError) as exc:
        raise CliError(str(exc)) from exc
    if not args.quiet:
        print(file=sys.stderr)
    if args.report:
        report.write(args.report)
    summary = report.as_dict()
    short = {k: summary[k] for k in ("profile", "options", "files_seen", "written", "unchanged", "duplicates",
                                     "quarantined_count", "patients", "seconds", "files_per_second")}
    if args.json:
        print_json(short)
    else:
        print(f"deid: {short['files_seen']} files, {short['written']} written, {short['unchanged']} unchanged, "
              f"{short['duplicates']} duplicates, {short['quarantined_count']} quarantined, {short['patients']} patients, "
              f"{short['files_per_second']} files/s (profile {short['profile']}: {', '.join(short['options'])})")
        for q in summary["quarantined"][:20]:
            print(f"  quarantined {q['file']}: {q['reason']}")
        if len(summary["quarantined"]) > 20:
            print(f"  ... {len(summary['quarantined']) - 20} more in the report")
    return 0


def _reidentify(args: argparse.Namespace) -> int:
    """Print the original identifiers of one pseudonym: the only command that shows PHI, and only
    to whoever holds the map's key."""
    import json

    from deid.vault import ReidentificationMap, read_map_fragments

    if not args.dst:
        raise CliError("usage: curate deid reidentify PSEUDONYM --key-file KEY [--map MAP]")
    vault = args.secret_file.parent
    map_path = args.map or vault / "reid_map.fernet"
    key_path = args.key_file or vault / "reid_map.key"
    if not map_path.exists():
        raise CliError(f"no re-identification map at {map_path}")
    if not key_path.is_file():
        raise CliError(f"no key file at {key_path}")
    key = key_path.read_bytes().strip()
    try:
        if map_path.is_dir():  # the pipeline's vault: one fragment per series
            blobs = [p.read_bytes() for p in sorted(map_path.rglob("*.fernet"))]
            entry = read_map_fragments(blobs, key).get(args.dst)
        else:
            entry = ReidentificationMap(map_path, key).lookup(args.dst)
    except (PermissionError, ValueError) as exc:
        raise CliError(str(exc)) from exc
    if entry is None:
        raise CliError(f"pseudonym {args.dst} is not in the map")
    print(json.dumps({args.dst: entry}, indent=2, sort_keys=True))
    return 0
