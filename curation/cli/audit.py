"""`curate audit verify`: check the lineage ledger's hash chain end to end."""
from __future__ import annotations

import argparse

from curation.cli._common import print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="audit ledger tools")
    asub = p.add_subparsers(dest="audit_command", metavar="ACTION")
    asub.required = True
    v = asub.add_parser("verify", help="recompute every ledger event's hash and check the chain")
    v.add_argument("--db", default=None, help="catalog URL (default: CURATE_DB_URL or the embedded SQLite)")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=run_verify)


def run_verify(args: argparse.Namespace) -> int:
    from curation.catalog import Catalog, verify_chain

    report = verify_chain(Catalog(args.db))
    if args.json:
        print_json({"ok": report.ok, "events": report.events, "first_bad_id": report.first_bad_id,
                    "problem": report.problem})
    elif report.ok:
        print(f"audit ledger intact: {report.events} events, hash chain verified")
    else:
        print(f"audit ledger BROKEN at event #{report.first_bad_id}: {report.problem}")
    return 0 if report.ok else 1
