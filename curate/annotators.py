"""`curate annotators simulate`: simulated readers working a project's queue on a live annotation
service (synth.readers for the answers, synth.reader_client for the REST calls)."""
from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from curate._common import CliError, print_json

ADMIN_TOKEN_ENV = "ANNOTATION_ADMIN_TOKEN"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("annotators", help="simulated annotators (readers) for rounds without people")
    sub = p.add_subparsers(dest="annotators_command", metavar="ACTION")
    sub.required = True
    s = sub.add_parser("simulate", help="readers with profiles answer a project's queue from the synthetic ground truth")
    s.add_argument("--url", required=True, help="the annotation service, e.g. http://127.0.0.1:8000")
    s.add_argument("--project", required=True, help="project id or name")
    s.add_argument("--readers", default="careful:3,random:1,flat:1",
                   help="PROFILE[:COUNT],... of careful, hasty, random, flat (straight-lining), slow "
                        "(default: careful:3,random:1,flat:1)")
    s.add_argument("--seed", type=int, default=0, help="answers depend on (seed, reader, item, label) only")
    s.add_argument("--admin-user", help="a site admin (creates the reader accounts); password from --admin-password-stdin "
                                        "or $ANNOTATION_ADMIN_PASSWORD, else prompted")
    s.add_argument("--admin-password-stdin", action="store_true", help="read the admin's password from standard input")
    s.add_argument("--admin-token", help=f"a site admin's session token instead of --admin-user (or ${ADMIN_TOKEN_ENV})")
    truth = s.add_mutually_exclusive_group(required=True)
    truth.add_argument("--site", type=Path, help="the synthetic site whose ground_truth.json the items come from")
    truth.add_argument("--truth-json", type=Path,
                       help="truth per item instead of a site: {external_id: {label: {value, boxes}}}")
    s.add_argument("--store", help="the pipeline's store (its vault secret re-keys the site's UIDs; its deid zone "
                                   "finds pictures and volumes)")
    s.add_argument("--truth-secret-file", type=Path,
                   help="the de-identification secret, if not from --store or $CURATE_PSEUDONYM_SECRET")
    s.add_argument("--concurrency", type=int, help="readers working at once (default: all)")
    s.add_argument("--fetch", choices=("all", "first", "none"), default="all",
                   help="instances fetched per task as the viewer does (default: all)")
    s.add_argument("--time-scale", type=float, default=0.0,
                   help="share of the simulated reading time actually waited before each submit (default 0)")
    s.add_argument("--quiet", action="store_true", help="no per-task progress on stderr")
    s.add_argument("--json", action="store_true", help="summary as JSON on stdout")
    s.set_defaults(func=run_simulate)


def _admin_token(args: argparse.Namespace, url: str) -> str:
    from synth.reader_client import ServiceError, login

    token = args.admin_token or os.environ.get(ADMIN_TOKEN_ENV)
    if token:
        return token
    if not args.admin_user:
        raise CliError(f"give --admin-user (with --admin-password-stdin) or --admin-token / ${ADMIN_TOKEN_ENV}")
    if args.admin_password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif os.environ.get("ANNOTATION_ADMIN_PASSWORD"):
        password = os.environ["ANNOTATION_ADMIN_PASSWORD"]
    else:
        password = getpass.getpass("admin password: ")
    try:
        return login(url, args.admin_user, password)
    except ServiceError as exc:
        raise CliError(f"admin login failed: {exc}") from None


def _secret(args: argparse.Namespace) -> bytes:
    from deid.vault import secret_from_environment

    if args.truth_secret_file:
        return args.truth_secret_file.read_bytes().strip()
    found = secret_from_environment()
    if found is not None:
        return found[0]
    if args.store:
        from curation.reid_vault import SECRET_KEY
        from curation.store import Zone, open_store

        store = open_store(args.store)
        if store.exists(Zone.VAULT, SECRET_KEY):  # never create one: a new secret would match nothing
            return store.get_bytes(Zone.VAULT, SECRET_KEY).strip()
        raise CliError(f"store {args.store} has no pseudonymisation secret in its vault")
    raise CliError("--site needs the de-identification secret: --store, --truth-secret-file or $CURATE_PSEUDONYM_SECRET")


def _truth(args: argparse.Namespace):
    from synth.reader_truth import truth_from_json, truth_from_site

    try:
        if args.truth_json:
            return truth_from_json(args.truth_json)
        deid_root = None
        if args.store:
            from curation.store import Zone, open_store

            store = open_store(args.store)
            root = store.local_path(Zone.DEID, "x")
            deid_root = root.parent if root is not None else None
        return truth_from_site(args.site, _secret(args), deid_root)
    except (OSError, ValueError) as exc:
        raise CliError(str(exc)) from None


def run_simulate(args: argparse.Namespace) -> int:
    from synth.reader_client import ServiceError, simulate
    from synth.readers import parse_readers

    try:
        readers = parse_readers(args.readers)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if args.concurrency is not None and args.concurrency < 1:
        raise CliError("--concurrency must be at least 1")
    if args.time_scale < 0:
        raise CliError("--time-scale must not be negative")
    truth = _truth(args)
    url = args.url.rstrip("/")
    token = _admin_token(args, url)

    def progress(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    try:
        result = simulate(url, args.project, readers, args.seed, truth, admin_token=token,
                          concurrency=args.concurrency, fetch=args.fetch, time_scale=args.time_scale, progress=progress)
    except ServiceError as exc:
        raise CliError(str(exc)) from None
    summary = result.to_json()
    if args.json:
        print_json(summary)
    else:
        for r in summary["readers"].values():
            print(f"{r['username']:<24} {r['profile']:<8} {r['tasks_done']:>5} readings  {r['seconds']:>9.1f} s simulated")
        print(f"{summary['tasks_done']} readings in {summary['wall_s']} s")
    return 0
