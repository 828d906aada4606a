"""`curate demo`: generate a synthetic hospital and run the whole pipeline on it, in-process.

The DAG runs through Airflow's own `dag.test()`, so the demo exercises exactly what the scheduler
runs, without starting one.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="generate a synthetic site and run curate_source on it end to end")
    p.add_argument("--patients", type=int, default=3, help="synthetic patients (default 3)")
    p.add_argument("--seed", type=int, default=7, help="seed of the synthetic site (default 7)")
    p.add_argument("--site", default="demo-hospital", help="site name (default demo-hospital)")
    p.add_argument("--fresh", action="store_true", help="start from an empty catalog and store")
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
    import importlib.util

    path = REPO / "dags" / f"{dag_id}.py"
    spec = importlib.util.spec_from_file_location(f"curate_dag_{dag_id}", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module.dag


def run(args: argparse.Namespace) -> int:
    home = _setup_env()
    if args.fresh:
        import shutil

        for name in ("catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm"):
            (home / name).unlink(missing_ok=True)
        shutil.rmtree(home / "store", ignore_errors=True)

    from curation.synth import generate_site

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

    dag = _load_dag("curate_source")
    t1 = time.monotonic()
    dagrun = dag.test(run_conf={"source": str(site_dir), "site": args.site, "exclude": ["ground_truth.json"]})
    state = str(getattr(dagrun, "state", "unknown"))
    print(f"demo: curate_source finished with state {state} in {time.monotonic() - t1:.1f} s", file=sys.stderr)
    _print_report(truth)
    return 0 if state.endswith("success") else 1


def _print_stage_report(catalog, truth: dict) -> None:  # noqa: ANN001 - Catalog
    """Per-series stage outcomes against the synthetic ground truth: de-identification counts, the
    confusion of series kinds and the quality decisions (series named by catalog id, never UID)."""
    from collections import Counter

    from sqlalchemy import select

    from curation.catalog import Series, StageResult
    from curation.classify.report import confusion_from_results, format_decisions

    by_uid = {t["series_instance_uid"]: t for t in truth.get("series", [])}
    with catalog.session() as s:
        uid_of = dict(s.execute(select(Series.id, Series.series_instance_uid)).all())
        rows = s.execute(select(StageResult.stage, StageResult.subject_id, StageResult.status,
                                StageResult.metrics, StageResult.reason)
                         .where(StageResult.subject_type == "series")
                         .order_by(StageResult.id)).all()
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
        print(confusion_from_results(results, truths))
    if decisions:
        print("\n== Quality decisions ==")
        print(format_decisions(decisions))


def _print_report(truth: dict) -> None:
    """What the catalog now holds for the demo site, and what was quarantined, with reasons."""
    from sqlalchemy import func, select

    from curation.catalog import Catalog, Instance, Patient, QuarantineRecord, Series, Study, verify_chain
    from curation.cli.ingest import describe_file

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
        from collections import Counter

        by_stage = Counter(q[0] for q in quarantine)
        print(f"\n== Quarantine (stage, file: reason) == {dict(by_stage)}")
        for stage, f, sha, code, reason in quarantine:
            print(f"  {stage:<7} {describe_file(f, sha, show_paths=False)}: [{code}] {reason}")
    _print_stage_report(catalog, truth)
    report = verify_chain(catalog)
    print(f"\n== Audit ledger: {'intact' if report.ok else 'BROKEN'}, {report.events} events ==")
