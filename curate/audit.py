"""`curate audit verify`: check the lineage ledger's hash chain end to end (stage events and
re-identifications alike); `curate audit reidentifications`: who re-identified which pseudonym, when."""
from __future__ import annotations

import argparse

from curate._common import print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="audit ledger tools")
    asub = p.add_subparsers(dest="audit_command", metavar="ACTION")
    asub.required = True
    v = asub.add_parser("verify", help="recompute every ledger event's hash and check the chain")
    v.add_argument("--db", default=None, help="catalog URL (default: CURATE_DB_URL or the embedded SQLite)")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=run_verify)
    r = asub.add_parser("reidentifications", help="list every recorded re-identification (who, when, which pseudonym)")
    r.add_argument("--db", default=None, help="catalog URL (default: CURATE_DB_URL or the embedded SQLite)")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=run_reidentifications)


def run_verify(args: argparse.Namespace) -> int:
    from curation.catalog import Catalog, verify_chain
    from curation.catalog.lineage import reidentification_events

    catalog = Catalog(args.db)
    report = verify_chain(catalog)
    n_reid = len(reidentification_events(catalog))
    if args.json:
        print_json({"ok": report.ok, "events": report.events, "first_bad_id": report.first_bad_id,
                    "problem": report.problem, "reidentifications": n_reid})
    elif report.ok:
        print(f"audit ledger intact: {report.events} events ({n_reid} re-identifications), hash chain verified")
    else:
        print(f"audit ledger BROKEN at event #{report.first_bad_id}: {report.problem}")
    return 0 if report.ok else 1


def run_reidentifications(args: argparse.Namespace) -> int:
    from curation.catalog import Catalog
    from curation.catalog.lineage import reidentification_events

    events = reidentification_events(Catalog(args.db))
    if args.json:
        print_json(events)
        return 0
    for ev in events:
        reason = f" reason: {ev['reason']}" if ev.get("reason") else ""
        print(f"#{ev['id']} {ev['at']} {ev['actor']} {ev['pseudonym']} {ev.get('outcome')} key {ev.get('key')}{reason}")
    print(f"{len(events)} re-identifications recorded")
    return 0
