"""`curate demo`: generate a synthetic hospital and run the whole pipeline on it, in-process:
curate_source, then an annotation round with simulated readers (`curate.demo_annotation`), then the
release of what they labelled (`curate.demo_release`).

The DAG runs through Airflow's own `dag.test()`, so the demo exercises exactly what the scheduler
runs, without starting one. What a new user reads: one line per stage (counts, seconds) and the
report; Airflow's task logs (several thousand lines) go to a file whose path is printed
(`--verbose`: on the terminal too, as they come).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any, TextIO

from curation.vocabulary import QualityDecision, StageStatus

REPO = Path(__file__).resolve().parents[1]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="generate a synthetic site, run curate_source on it end to end, then an "
                                    "annotation round with simulated readers, then publish release 'demo'")
    p.add_argument("--patients", type=int, default=3, help="synthetic patients (default 3)")
    p.add_argument("--seed", type=int, default=7, help="seed of the synthetic site (default 7)")
    p.add_argument("--site", default="demo-hospital", help="site name (default demo-hospital)")
    p.add_argument("--fresh", action="store_true", help="start from an empty catalog and store")
    p.add_argument("--verbose", action="store_true",
                   help="print Airflow's task logs on the terminal too (by default they go to the log file only)")
    p.add_argument("--log", type=Path, default=None,
                   help="file for Airflow's full output (default: $CURATE_HOME/demo/airflow.log)")
    p.add_argument("--serve", action="store_true",
                   help="keep the annotation service (viewer) running after the report, until Ctrl-C")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object instead of the report")
    p.add_argument("--no-annotation", action="store_true",
                   help="stop after curate_source (no annotation round, no release)")
    p.add_argument("--no-release", action="store_true",
                   help="stop after the annotation round (no release)")
    p.set_defaults(func=run)


def _setup_env() -> Path:
    """Embedded-default state inside the checkout, set before Airflow is imported."""
    home = Path(os.environ.setdefault("CURATE_HOME", str(REPO / "var"))).resolve()
    os.environ.setdefault("AIRFLOW_HOME", str(REPO / ".airflow"))
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    home.mkdir(parents=True, exist_ok=True)
    return home


def _load_dag(dag_id: str):  # noqa: ANN202 - airflow DAG
    """The DAG as Airflow itself finds it: parsed from the configured dags folder by a `DagBag`, the
    way the DAG processor does, so the demo runs what the scheduler would (and no path is hard-wired).
    Only what the folder holds counts: `DagBag.get_dag` would fall back to the file the metadata DB
    last recorded for the id, possibly another checkout's."""
    from airflow import settings
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=settings.DAGS_FOLDER)
    dag = bag.dags.get(dag_id)
    if dag is None:
        errors = "; ".join(f"{path}: {err.strip().splitlines()[-1]}" for path, err in bag.import_errors.items())
        raise RuntimeError(f"DAG {dag_id!r} not found in {settings.DAGS_FOLDER}"
                           + (f" ({errors})" if errors else ""))
    return dag


def run(args: argparse.Namespace) -> int:
    home = _setup_env()
    if args.fresh:
        import shutil

        for name in ("catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm"):
            (home / name).unlink(missing_ok=True)
        shutil.rmtree(home / "store", ignore_errors=True)

    from synth import generate_site

    site_dir = home / "demo" / f"site-p{args.patients}-s{args.seed}"
    t0 = time.monotonic()
    if not (site_dir / "ground_truth.json").exists():
        print(f"demo: generating a synthetic site ({args.patients} patients, seed {args.seed}) in {site_dir}",
              file=sys.stderr)
        generate_site(site_dir, patients=args.patients, seed=args.seed)
    else:
        print(f"demo: reusing the synthetic site in {site_dir}", file=sys.stderr)
    truth = json.loads((site_dir / "ground_truth.json").read_text())
    print(f"demo: site ready in {time.monotonic() - t0:.1f} s", file=sys.stderr)

    log_path = (args.log or home / "demo" / "airflow.log").resolve()
    conf = {"source": str(site_dir), "site": args.site, "exclude": ["ground_truth.json"]}
    print(f"demo: running curate_source under Airflow's dag.test(); its full log: {log_path}", file=sys.stderr)
    report = None if args.json else (lambda: _print_report(truth))
    state = run_quietly("curate_source", conf, log_path, verbose=args.verbose, report=report)
    if not state.endswith("success") or args.no_annotation:
        if args.json:
            print(json.dumps({"curate_source": state}))
        return 0 if state.endswith("success") else 1
    from curate import demo_annotation

    summary = demo_annotation.run(site_dir, home, verbose=args.verbose, serve=args.serve)
    ok = summary["dag_state"].endswith("success")
    release = _release(home, summary, args) if ok and not args.no_release else None
    if args.json:
        from curate.demo_release import public

        extra = {} if release is None else {"release": public(release), "release_summary": release}
        print(json.dumps({"curate_source": state, **summary, **extra}, indent=2), flush=True)
    else:
        print(demo_annotation.format_summary(summary, serve=args.serve), flush=True)
        if release is not None:
            from curate.demo_release import format_summary

            print(format_summary(release), flush=True)
    if args.serve:
        demo_annotation.serve_until_interrupted(lambda m: print(m, file=sys.stderr, flush=True))
    return 0 if ok and (release is None or "manifest_sha256" in release) else 1


def _release(home: Path, summary: Mapping[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Publish the demo's release of the labels round just read (`curate.demo_release`)."""
    from curate import demo_release

    round_id = summary["annotation_round"].get("round_id")
    if round_id is None:
        return {"dag_state": "not run: the annotation round read nothing", "log": "-"}
    return demo_release.run(home, [round_id], verbose=args.verbose)


@contextmanager
def airflow_output(log_path: Path, verbose: bool = False) -> Iterator[tuple[TextIO, TextIO]]:
    """Send everything written to stdout and stderr during the block (Airflow's task logs through
    structlog and logging, warnings, child processes) to `log_path`, at the file-descriptor level
    so nothing escapes; yield (stdout, stderr) streams to the terminal for what the user reads.
    `verbose`: no capture, everything on the terminal as it comes."""
    if verbose:
        yield sys.stdout, sys.stderr
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    out = os.fdopen(os.dup(saved_out), "w", buffering=1)
    err = os.fdopen(os.dup(saved_err), "w", buffering=1)
    try:
        with open(log_path, "wb") as log:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            try:
                yield out, err
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved_out, 1)
                os.dup2(saved_err, 2)
    finally:
        for stream in (out, err):
            stream.close()
        os.close(saved_out)
        os.close(saved_err)


def run_quietly(dag_id: str, conf: dict[str, Any], log_path: Path, verbose: bool = False,
                report: Callable[[], None] | None = None) -> str:
    """`dag.test()` of `dags/<dag_id>.py` with Airflow's output in `log_path` and one line per stage
    (counts and seconds) on the terminal, then `report()` (its prints reach the terminal; the log
    lines Airflow's logging set-up still emits meanwhile go to the file). Returns the final state."""
    with airflow_output(log_path, verbose) as (out, err):
        from operators.alerts import foreground_test
        from plugins.stage_progress import StageProgress

        dag = _load_dag(dag_id)
        order = [t.task_id for t in dag.topological_sort()] if hasattr(dag, "topological_sort") else list(dag.task_ids)

        tty = err.isatty()

        def number(tally) -> int:  # noqa: ANN001 - plugins.stage_progress.StageTally
            return order.index(tally.task_id) + 1 if tally.task_id in order else 0

        def progress(tally) -> None:  # noqa: ANN001
            line = describe_stage(tally.task_id, tally.states, tally.results, tally.seconds, number(tally), len(order))
            print(("\r\033[K" if tty else "") + line, file=err, flush=True)

        def ticker(tally) -> None:  # noqa: ANN001
            """On a terminal only: the stage in progress, rewritten in place (no extra lines)."""
            if tty:
                print(f"\r\033[K  [{number(tally)}/{len(order)}] {tally.task_id:<14} {len(tally.states)} tasks done "
                      f"({tally.seconds:.0f} s) ...", end="", file=err, flush=True)

        started = time.monotonic()
        with StageProgress(progress, ticker).listening():
            dagrun = foreground_test(dag, run_conf=conf)  # dag.test() without deadline alerts (Airflow 3.3.2)
        state = str(getattr(dagrun, "state", "unknown"))
        print(f"demo: {dag_id} finished with state {state} in {time.monotonic() - started:.1f} s; "
              f"Airflow's log: {log_path}", file=err, flush=True)
        if report is not None:
            with redirect_stdout(out):
                report()
            out.flush()
    return state


def _counts(counter: Counter, order: Sequence[str] = ()) -> str:
    keys = [k for k in order if counter.get(k)] + sorted(k for k in counter if k not in order)
    return ", ".join(f"{counter[k]} {k}" for k in keys)


def describe_stage(task_id: str, states: Mapping[int, str], results: Mapping[int, Any], seconds: float,
                   number: int = 0, total: int = 0) -> str:
    """One progress line: the stage, what its tasks returned (counts only, no identifiers), the
    task states when not all succeeded, and the wall time."""
    values = [v for v in results.values() if v is not None]
    # a mapped task returns one series' result, or a batch's list of them (curation.pipeline.ingest.batches)
    dicts = [x for v in values for x in (v if isinstance(v, list) else [v]) if isinstance(x, dict)]
    batched = any(isinstance(v, list) for v in values) and task_id not in ("ingest", "group_studies")
    n = len(dicts) if batched else len(states)
    if task_id == "ingest" and values and isinstance(values[0], list):
        what = f"{sum(len(b) if isinstance(b, list) else 1 for b in values[0])} series to curate"
    elif task_id == "deid":
        quarantined = sum(int(v.get("quarantined") or 0) for v in dicts)
        reused = sum(1 for v in dicts if v.get("reused"))
        statuses = _counts(Counter(v.get("status") for v in dicts),
                           (StageStatus.OK, StageStatus.SKIPPED, StageStatus.FAILED))
        what = (f"{n} series: {statuses}; "
                f"{quarantined} instances quarantined" + (f"; {reused} results reused" if reused else ""))
    elif task_id == "classify":
        kinds = Counter(v.get("kind") or "unclassified" for v in dicts)
        top = ", ".join(f"{k} {c}" for k, c in kinds.most_common(4))
        what = f"{n} series into {len(kinds)} kinds ({top}{', ...' if len(kinds) > 4 else ''})"
    elif task_id == "quality":
        decisions = Counter(v.get("decision") or "not assessed" for v in dicts)
        what = f"{n} series: {_counts(decisions, tuple(QualityDecision))}"
    elif task_id == "group_studies" and values and isinstance(values[0], list):
        what = f"{sum(len(b) if isinstance(b, list) else 1 for b in values[0])} studies to register"  # in batches
    elif task_id == "register":
        derived = sum(int(v.get("derived") or 0) for v in dicts)
        statuses = _counts(Counter(v.get("status") for v in dicts), (StageStatus.OK, StageStatus.SKIPPED))
        what = f"{n} studies: {statuses}; {derived} derived series"
    elif task_id == "summary" and dicts:
        v = dicts[0]
        what = (f"{v.get('series', 0)} series, {v.get('studies_registered', 0)} studies registered, "
                f"{v.get('derived_series', 0)} derived series")
    elif dicts and "manifest_sha256" in dicts[0]:  # release_dataset's build, verify and publish
        what = _describe_release_step(task_id, dicts[0])
    elif task_id == "select" and dicts and "version" in dicts[0]:
        v = dicts[0]
        what = f"{v.get('series')} series of {v.get('patients')} patients for version {v.get('version')}"
    else:
        what = f"{n} task{'s' if n != 1 else ''}"
    bad = Counter(s for s in states.values() if s != "success")
    if bad:
        what += f" [tasks {_counts(bad)}]"
    step = f"[{number}/{total}] " if number else ""
    return f"  {step}{task_id:<14} {what} ({seconds:.1f} s)"


def _describe_release_step(task_id: str, v: Mapping[str, Any]) -> str:
    """A release_dataset step's line: the release, its manifest hash (short) and what the step did."""
    release = f"{v.get('name')}@{v.get('version')}"
    done = {"build": "staged", "verify": "staging copy verified (checksums, dciodvfy, PHI rules, no raw object)",
            "publish": f"published, {v.get('files')} files"}.get(task_id, "")
    return f"{release} {done}; manifest {str(v['manifest_sha256'])[:12]}..."


def _print_stage_report(catalog, truth: dict) -> None:  # noqa: ANN001 - Catalog
    """Per-series stage outcomes against the synthetic ground truth: de-identification counts, the
    confusion of series kinds and the quality decisions (series named by catalog id, never UID)."""
    from sqlalchemy import select

    from curation.catalog import Series, StageRecord
    from curation.classify.report import confusion_from_results

    by_uid = {t["series_instance_uid"]: t for t in truth.get("series", [])}
    with catalog.session() as s:
        uid_of = dict(s.execute(select(Series.id, Series.series_instance_uid)).all())
        rows = s.execute(select(StageRecord.stage, StageRecord.subject_id, StageRecord.status,
                                StageRecord.metrics, StageRecord.reason)
                         .where(StageRecord.subject_type == "series")
                         .order_by(StageRecord.id)).all()
    latest: dict[tuple[str, int], tuple] = {}
    for stage, sid, status, metrics, reason in rows:
        latest[(stage, sid)] = (status, metrics or {}, reason)
    deid = Counter(v[0] for (stage, _), v in latest.items() if stage == "deid")
    print(f"\n== De-identification (series): {dict(deid)}")
    results, truths, decisions = [], [], []
    for (stage, sid), (status, metrics, _reason) in sorted(latest.items(), key=lambda kv: kv[0][1]):
        t = by_uid.get(uid_of.get(sid))
        if stage == "classify" and t is not None:
            results.append(metrics)
            truths.append(t)
        if stage == "quality" and isinstance(metrics.get("decision"), dict):
            decisions.append({"series": f"series #{sid}", "kind": metrics.get("kind", ""),
                              "decision": metrics["decision"], "truth": (t or {}).get("degradation")})
    if results:
        print("\n== Series classification against the ground truth ==")
        print(confusion_from_results(results, truths, matrix_when_all_correct=False))
    if decisions:
        print("\n== Quality decisions (per kind; series not approved listed with the reason) ==")
        print(format_quality_by_kind(decisions))


def format_quality_by_kind(rows: Sequence[dict[str, Any]]) -> str:
    """Approve / review / exclude counts per series kind, then one line per series that was not
    approved (decision, kind, series, p(degraded), reason, ground truth when known): what a curator
    acts on, without a line for every approved series. Rows: {"series", "kind", "decision": the
    quality decision dict, optional "truth": the synthetic site's planted defect}."""
    verdicts = tuple(QualityDecision)
    per_kind: dict[str, Counter] = {}
    for r in rows:
        per_kind.setdefault(str(r.get("kind") or "?"), Counter())[r["decision"]["decision"]] += 1
    lines = [f"  {'kind':<14}{'series':>7}" + "".join(f"{v:>9}" for v in verdicts)]
    total: Counter = Counter()
    for kind in sorted(per_kind):
        c = per_kind[kind]
        total.update(c)
        lines.append(f"  {kind:<14}{sum(c.values()):>7}" + "".join(f"{c.get(v, 0):>9}" for v in verdicts))
    lines.append(f"  {'all':<14}{sum(total.values()):>7}" + "".join(f"{total.get(v, 0):>9}" for v in verdicts))
    flagged = sorted((r for r in rows if r["decision"]["decision"] != QualityDecision.APPROVE),
                     key=lambda r: (r["decision"]["decision"] != QualityDecision.REVIEW, str(r.get("kind")),
                                    str(r.get("series"))))
    if flagged:
        lines.append("  not approved (decision, series, kind, p(degraded), reason [planted defect]):")
    for r in flagged:
        d, truth = r["decision"], r.get("truth")
        p = d.get("p_degraded")
        defect = " ".join(str(truth.get(k) or "") for k in ("type", "severity")).strip() if truth else ""
        planted = "" if truth is None else f" [truth: {defect or 'clean'}]"
        lines.append(f"  {d['decision']:<7} {str(r.get('series')):<11} {str(r.get('kind')):<12} "
                     f"{f'{p:.2f}' if isinstance(p, float) else '-':>4}  {d.get('reason', '')}{planted}")
    return "\n".join(lines)


def _print_report(truth: dict) -> None:
    """What the catalog now holds for the demo site, and what was quarantined, with reasons."""
    from sqlalchemy import func, select

    from curation.catalog import Catalog, Instance, Patient, QuarantineRecord, Series, Study, verify_chain
    from curate.ingest import describe_file

    catalog = Catalog()
    with catalog.session() as s:
        n = {name: s.scalar(select(func.count()).select_from(model))
             for name, model in (("patients", Patient), ("studies", Study), ("instances", Instance),
                                 ("quarantined files", QuarantineRecord))}
        n["series"] = s.scalar(select(func.count()).select_from(Series).where(Series.format == "dicom"))
        n["images (PNG/JPEG/NIfTI)"] = s.scalar(select(func.count()).select_from(Series)
                                                .where(Series.format != "dicom"))
        quarantine = s.execute(select(QuarantineRecord.stage, QuarantineRecord.file, QuarantineRecord.sha256,
                                      QuarantineRecord.reason_code, QuarantineRecord.reason)
                               .order_by(QuarantineRecord.id)).all()
    print("\n== Catalog after the demo run ==")
    for k in ("patients", "studies", "series", "instances", "images (PNG/JPEG/NIfTI)", "quarantined files"):
        print(f"  {k:<24} {n[k]:>8,}")
    expected_q = sum(1 for f in truth.get("files", {}).values() if f.get("expected") == "quarantine")
    print(f"  (ground truth: {len(truth.get('patients', []))} patients, {len(truth.get('series', []))} series, "
          f"{expected_q} files expected in ingest quarantine)")
    if quarantine:
        by_stage = Counter(q[0] for q in quarantine)
        print(f"\n== Quarantine (stage, file: reason) == {dict(by_stage)}")
        for stage, f, sha, code, reason in quarantine:
            print(f"  {stage:<7} {describe_file(f, sha, show_paths=False)}: [{code}] {reason}")
    _print_stage_report(catalog, truth)
    report = verify_chain(catalog)
    print(f"\n== Audit ledger: {'intact' if report.ok else 'BROKEN'}, {report.events} events ==")
