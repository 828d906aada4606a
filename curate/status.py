"""`curate status [--json] [--site S]`: where the catalog stands, per site (the operator's page on the
command line): patients, studies, series, instances; each stage's subjects by outcome; the quarantine
by reason code; the series awaiting human quality review; rounds in progress; releases. No PHI."""
from __future__ import annotations

import argparse
from typing import Any

from curate._common import print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="per-site counts, stage outcomes, quarantine, reviews, rounds, releases")
    p.add_argument("--db", default=None, help="catalog URL (default: CURATE_DB_URL or the embedded SQLite)")
    p.add_argument("--site", default=None, help="only this site")
    p.add_argument("--json", action="store_true", help="one JSON document (keys: sites, awaiting_review, rounds, "
                                                       "releases)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from curation.catalog import Catalog
    from curation.status import status

    report = status(Catalog(args.db), args.site)
    if args.json:
        print_json(report)
    else:
        print("\n".join(render(report)))
    return 0


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {word}" for word, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))) or "-"


def render(report: dict[str, Any]) -> list[str]:
    """The report as text: one block per site, then the lists that span sites."""
    from curation.status import STAGE_UNITS, ordered_stages

    lines: list[str] = []
    if not report["sites"]:
        lines.append("the catalog is empty: nothing ingested yet")
    for site in report["sites"]:
        lines.append(f"site {site['site'] or '(none)'}: {site['patients']} patients, {site['studies']} studies, "
                     f"{site['series']} series, {site['instances']} instances")
        for stage in ordered_stages(site["stages"]):
            counts = site["stages"][stage]
            unit = STAGE_UNITS.get(stage, "series")
            took = site["stage_seconds"].get(stage)
            timing = f"  ({took:.1f} s of work)" if took else ""
            lines.append(f"  {stage:<10} {sum(counts.values()):>7} {unit:<9} {_counts(counts)}{timing}")
        total = sum(site["quarantine"].values())
        lines.append(f"  quarantine {total:>7} files     {_counts(site['quarantine'])}")
        lines.append(f"  awaiting quality review: {site['awaiting_review']} series")
    waiting = report["awaiting_review"]
    if waiting:
        lines.append(f"series awaiting human quality review ({len(waiting)}):")
        for w in waiting:
            lines.append(f"  series {w['series_id']} ({w['site']}, {w['modality'] or '?'} {w['kind'] or '?'}) "
                         f"since {w['since']}: {w['reason'] or ''}".rstrip(": "))
    lines.append(f"annotation rounds in progress: {len(report['rounds'])}")
    for r in report["rounds"]:
        done = f"{r['completion']:.0%}" if r["completion"] is not None else "not collected yet"
        lines.append(f"  {r['project']}/{r['name']} [{r['state']}] {r['items']} items x "
                     f"{r['readers_per_item'] or '?'} readers, {r['readers']} readers seen, {done}, "
                     f"deadline {r['deadline'] or '-'}")
    lines.append(f"releases: {len(report['releases'])}")
    for rel in report["releases"]:
        files = f", {rel['files']} files" if rel["files"] is not None else ""
        lines.append(f"  {rel['name']}@{rel['version']} {rel['state']} at {rel['at']}{files}")
    return lines
