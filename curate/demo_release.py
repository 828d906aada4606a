"""`curate demo`'s last step: publish release `demo` of the series the demo curated, people reviewed and
readers annotated, through the `release_dataset` DAG under `dag.test()` (approval off, as the form
allows for demos), then show what a data scientist gets and the commands they run next.

The selection is the demo's labels round (`rounds`) and final quality decision `approve` (a person's
where the quality-review round decided): exactly the series a reader labelled and nobody excluded.
The first run publishes `demo@1.0.0`; a later run without `--fresh` reads a new round, so it
publishes the next minor version, with CHANGES.md against the one before (published releases are
never replaced).
"""
from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from curation.vocabulary import QualityDecision

DAG_ID = "release_dataset"
NAME = "demo"


def release_conf(rounds: Sequence[int]) -> dict[str, Any]:
    """The DAG's form for the demo: the next version of `demo` (1.0.0 first), the series of `rounds`
    whose final decision is approve, default splits, no data owner's approval."""
    return {"name": NAME, "bump": "minor", "version": "", "rounds": [int(r) for r in rounds],
            "decisions": [str(QualityDecision.APPROVE)], "require_approval": False}


def run(home: Path, rounds: Sequence[int], *, verbose: bool = False,
        say: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True)) -> dict[str, Any]:
    """Run `release_dataset` for the demo and return its summary (`summarise`), or the DAG's state
    and log when nothing was published."""
    from curate.demo import run_quietly
    from curation.release.layout import published_versions
    from curation.settings import settings
    from curation.store import open_store

    started = time.monotonic()
    store = open_store(settings().store_location)
    before, ledger_head = published_versions(store, NAME), _newest_event_id()
    log_path = (home / "demo" / f"{DAG_ID}.log").resolve()
    say(f"demo: running {DAG_ID} under dag.test() (release {NAME!r}, approval off); its full log: {log_path}")
    state = run_quietly(DAG_ID, release_conf(rounds), log_path, verbose=verbose)
    new = [v for v in published_versions(store, NAME) if v not in before]
    if not state.endswith("success") or not new:
        return {"dag_state": state, "log": str(log_path), "seconds": round(time.monotonic() - started, 1),
                "verify_problems": verify_problems(ledger_head)}
    summary = summarise(store, settings().store_location, f"{NAME}@{new[-1]}", str(before[-1]) if before else None)
    summary.update(dag_state=state, log=str(log_path), seconds=round(time.monotonic() - started, 1))
    say(f"demo: release step (DAG run and summary) in {summary['seconds']} s")
    return summary


def _newest_event_id() -> int:
    from curate.demo_annotation import newest_id
    from curation.catalog.models import LineageEvent

    return newest_id(LineageEvent)


def verify_problems(after: int) -> dict[str, int]:
    """Problems by kind (invalid, reference, phi, raw; missing, extra, altered) that this run's verify
    step recorded in the ledger (events after `after`): why nothing was published. Counts only: a
    problem's detail may quote a value the check found, and the report must not print it."""
    from sqlalchemy import select

    from curation.catalog import Catalog
    from curation.catalog.models import LineageEvent

    catalog = Catalog()
    try:
        with catalog.session() as s:
            event = s.scalars(select(LineageEvent).where(
                LineageEvent.id > after, LineageEvent.action == "verify",
                LineageEvent.subject.startswith(f"release:{NAME}@")).order_by(LineageEvent.id.desc())).first()
            problems = list((event.details or {}).get("problems") or []) if event is not None else []
    finally:
        catalog.dispose()
    kinds: dict[str, int] = {}
    for problem in problems:
        kind = str(problem).split(":", 1)[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def summarise(store: Any, store_location: str, ref: str, previous: str | None) -> dict[str, Any]:
    """What the published release `ref` of `store` (opened from `store_location`) holds, read back
    through the data scientist's own reader (`open_release`): counts per split, consensus labels,
    agreement; and the next commands."""
    from curation.release import open_release
    from curation.release.layout import release_prefix
    from curation.vocabulary import Zone

    release = open_release(store, ref)
    prefix = release_prefix(release.name, release.version).rstrip("/")
    local = store.local_path(Zone.RELEASES, prefix)
    path = str(local) if local is not None else store.uri_for(Zone.RELEASES, prefix)
    series = release.series
    per_split = {str(k): {"series": int(len(g)), "patients": int(g["patient"].nunique())}
                 for k, g in series.groupby("split")}
    matrix = release.label_matrix()
    labels = {str(label): {"positive": int((matrix[label] == 1.0).sum()), "decided": int(matrix[label].notna().sum())}
              for label in matrix.columns}
    boxes = int(release.consensus["x0"].notna().sum())
    agreement = {rid: {k: (a.get("summary") or {}).get(k) for k in ("fleiss_kappa", "fleiss_kappa_ci95",
                                                                     "krippendorff_alpha", "krippendorff_alpha_ci95")}
                 | {"project": a.get("project")} for rid, a in sorted(release.agreement.items())}
    readings = release.readings
    return {"name": release.name, "version": str(release.version), "path": path, "previous": previous,
            "manifest_sha256": release.manifest_sha256, "files": len(release.manifest.entries),
            "series": int(len(series)), "patients": int(series["patient"].nunique()), "splits": per_split,
            "labels": labels, "consensus_boxes": boxes, "readings": int(len(readings)),
            "readers": int(readings["reader"].nunique()) if len(readings) else 0, "agreement": agreement,
            "next": next_commands(store_location, ref)}


def next_commands(store_location: str, ref: str) -> list[str]:
    """What a data scientist runs next (in the shell `make demo` used: `source include/airflow/env.sh`)."""
    one_liner = (f"from curation.release import open_release; r = open_release({json.dumps(store_location)}, "
                 f"{json.dumps(ref)}, verify=True); print(r.manifest_sha256, "
                 'r.series.groupby("split").size().to_dict())')
    return [f"curate release show {ref}", f"curate release verify {ref}", f"python -c {shlex.quote(one_liner)}"]


def public(summary: Mapping[str, Any]) -> dict[str, Any] | None:
    """`curate demo --json`'s `release`: name, version, path, manifest SHA-256 (None when none was published)."""
    if "manifest_sha256" not in summary:
        return None
    return {k: summary[k] for k in ("name", "version", "path", "manifest_sha256")}


def format_summary(summary: Mapping[str, Any]) -> str:
    """The release part of the demo's report, for a terminal."""
    from curate.demo_annotation import with_ci

    if "manifest_sha256" not in summary:
        problems = summary.get("verify_problems") or {}
        why = ("; the verify step found " + ", ".join(f"{n} {k}" for k, n in sorted(problems.items()))
               + " problems (each named in the log)") if problems else ""
        return (f"\n== Release {NAME}: nothing published ({DAG_ID} {summary['dag_state']}{why}); "
                f"its log: {summary['log']} ==")
    s = summary
    since = f", after {s['previous']} (CHANGES.md lists what changed)" if s["previous"] else ""
    lines = [f"\n== Release {s['name']}@{s['version']} ({DAG_ID} {s['dag_state']}{since}) ==",
             f"  path      {s['path']}",
             f"  manifest  SHA-256 {s['manifest_sha256']} (cite it with the version)",
             f"  holds     {s['series']} series of {s['patients']} patients, {s['files']} files, "
             f"{s['readings']} reading records (answers, boxes) by {s['readers']} readers, "
             f"{s['consensus_boxes']} consensus boxes",
             "  splits    " + ", ".join(f"{k} {v['series']} series / {v['patients']} patients"
                                       for k, v in s["splits"].items()),
             "  labels    " + (", ".join(f"{k} {v['positive']}/{v['decided']}" for k, v in s["labels"].items())
                               or "none") + " (consensus positive / decided series)"]
    for rid, a in s["agreement"].items():
        lines.append(f"  agreement round {rid} ({a['project']}): Fleiss' kappa "
                     f"{with_ci(a['fleiss_kappa'], a['fleiss_kappa_ci95'])}; Krippendorff's alpha "
                     f"{with_ci(a['krippendorff_alpha'], a['krippendorff_alpha_ci95'])}")
    lines.append("  next, in the shell `make demo` used (source include/airflow/env.sh):")
    lines += [f"    {command}" for command in s["next"]]
    return "\n".join(lines)


__all__ = ["format_summary", "public", "release_conf", "run", "summarise"]
