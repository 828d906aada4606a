"""`curate rounds list` / `curate rounds show ROUND`: what a project manager reads after an annotation
round, from the catalog: agreement with its intervals, who QC excluded and why, the consensus counts
and the rewards. Readers appear only by their catalog pseudonym (`rdr-...`): the catalog holds no
usernames (curation.pipeline.collect.reader_pseudonym)."""
from __future__ import annotations

import argparse
from typing import Any

from curate._common import CliError, print_json

_DB_HELP = "catalog URL (default: CURATE_DB_URL or the embedded SQLite)"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rounds", help="annotation rounds in the catalog: agreement, QC, consensus, rewards")
    rsub = p.add_subparsers(dest="rounds_command", metavar="ACTION")
    rsub.required = True
    ls = rsub.add_parser("list", help="every round: project, state, items, readers, Fleiss' kappa")
    ls.add_argument("--db", default=None, help=_DB_HELP)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=run_list)
    show = rsub.add_parser("show", help="one round's agreement, QC decisions per reader and rewards")
    show.add_argument("round_id", type=int, metavar="ROUND", help="the round's catalog id (see `curate rounds list`)")
    show.add_argument("--db", default=None, help=_DB_HELP)
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=run_show)


def _number(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _with_ci(summary: dict[str, Any], name: str) -> str:
    ci = summary.get(f"{name}_ci95")
    interval = f" (95% CI {_number(ci[0])} to {_number(ci[1])})" if ci else ""
    return f"{_number(summary.get(name))}{interval}"


def round_rows(catalog: Any) -> list[dict[str, Any]]:
    """One plain row per round, newest first."""
    from sqlalchemy import select

    from curation.catalog.models import AnnotationRound

    with catalog.session() as s:
        rounds = s.scalars(select(AnnotationRound).order_by(AnnotationRound.id.desc())).all()
        return [{"id": r.id, "project": r.project, "name": r.name, "kind": r.kind,
                 "schema": f"{r.schema_name}_v{r.schema_version}", "state": r.state,
                 "items": (r.summary or {}).get("items", r.n_items), "readers": (r.summary or {}).get("readers"),
                 "fleiss_kappa": (r.summary or {}).get("fleiss_kappa"),
                 "created_at": r.created_at.isoformat() if r.created_at else None} for r in rounds]


def round_report(catalog: Any, round_id: int) -> dict[str, Any]:
    """The round's summary as the analysis stored it, with every reader's report."""
    from curation.catalog.models import AnnotationRound
    from curation.pipeline.analyse import reader_reports

    with catalog.session() as s:
        rnd = s.get(AnnotationRound, round_id)
        if rnd is None:
            raise CliError(f"no annotation round {round_id} in the catalog (see `curate rounds list`)")
        head = {"id": rnd.id, "project": rnd.project, "name": rnd.name, "kind": rnd.kind, "state": rnd.state,
                "schema": f"{rnd.schema_name}_v{rnd.schema_version}", "summary": dict(rnd.summary or {})}
    return {**head, "readers": reader_reports(catalog, round_id)}


def _print_show(report: dict[str, Any]) -> None:
    summary = report["summary"]
    print(f"round {report['id']}: {report['project']} ({report['kind']}, {report['schema']}), {report['state']}, "
          f"name {report['name']}")
    if "fleiss_kappa" not in summary:
        print("  not analysed yet" if report["kind"] != "quality_review" else f"  decisions: {summary}")
        return
    print(f"  {summary.get('items')} items, {summary.get('answers')} answers, {summary.get('readers')} readers "
          f"({len(summary.get('readers_kept', []))} kept by QC)")
    print(f"  Fleiss' kappa {_with_ci(summary, 'fleiss_kappa')}; "
          f"Krippendorff's alpha {_with_ci(summary, 'krippendorff_alpha')}")
    for label, block in sorted((summary.get("per_label") or {}).items()):
        print(f"    {label:24s} kappa {_with_ci(block, 'fleiss_kappa')}")
    rewards = summary.get("rewards") or {}
    print(f"  rewards ({rewards.get('mode')} mode, budget {rewards.get('budget')}):"
          + (f" not paid: {rewards['unpaid']}" if rewards.get("unpaid") else ""))
    print(f"  {'reader':22s} {'answers':>7s}  {'QC':8s} {'reward':>8s}  flags (reasons)")
    for reader, r in report["readers"].items():
        reasons = "; ".join(r["reasons"])
        flags = ", ".join(r["qc_flags"]) or "-"
        print(f"  {reader:22s} {r['n_readings']:7d}  {'pass' if r['passes_qc'] else 'EXCLUDED':8s} "
              f"{r['reward']:8.2f}  {flags}{f' ({reasons})' if reasons else ''}")


def run_list(args: argparse.Namespace) -> int:
    from curation.catalog import Catalog

    rows = round_rows(Catalog(args.db))
    if args.json:
        print_json(rows)
        return 0
    for r in rows:
        print(f"#{r['id']:<4d} {r['project']:24s} {r['kind']:14s} {r['state']:10s} {r['schema']:22s} "
              f"items {r['items']:<5} readers {r['readers'] if r['readers'] is not None else '-':<3} "
              f"kappa {_number(r['fleiss_kappa'])}  {r['name']}")
    print(f"{len(rows)} annotation rounds")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from curation.catalog import Catalog

    report = round_report(Catalog(args.db), args.round_id)
    if args.json:
        print_json(report)
    else:
        _print_show(report)
    return 0
