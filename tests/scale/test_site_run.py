"""The scale suite: what a whole synthetic site's `curate_source` run under the real scheduler left behind is
correct, whatever its size and executor. `benchmarks/end_to_end.py` runs it after every run (it is marked
`scale` and deselected from `make test`: a 10,000-instance site takes about ten minutes of two cores).
The benchmark describes its run in a JSON file (`--scale-run`): the site, the run's final state, the
catalog's URL and the store's folder. With `--scale-reference` (an earlier benchmark's JSON output, e.g.
LocalExecutor's), the catalog and store must equal that run's, table by table and zone by zone.

    .venv/bin/python benchmarks/end_to_end.py --site /tmp/h7-site --out local.json
    .venv/bin/python benchmarks/end_to_end.py --site /tmp/h7-site --executor celery --workers 2 \\
        --reference local.json
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.catalog_facts import catalog_facts, facts_digest, zone_hashes

pytestmark = pytest.mark.scale

#: The per-series stages every series of a site goes through, whatever its kind.
SERIES_STAGES = ("deid", "classify", "quality")


@pytest.fixture(scope="module")
def run(request: pytest.FixtureRequest) -> dict[str, Any]:
    path = request.config.getoption("--scale-run")
    if not path:
        pytest.fail("the scale suite checks a benchmark's run: start it with benchmarks/end_to_end.py "
                    "(or pass --scale-run RUN.json)", pytrace=False)
    return json.loads(Path(path).read_text())


@pytest.fixture(scope="module")
def truth(run: dict[str, Any]) -> dict[str, Any]:
    return json.loads((Path(run["site"]) / "ground_truth.json").read_text())


@pytest.fixture(scope="module")
def catalog(run: dict[str, Any]) -> Any:
    from curation.catalog import Catalog

    return Catalog(run["db_url"])


@pytest.fixture(scope="module")
def store(run: dict[str, Any]) -> Any:
    from curation.store import open_store

    return open_store(run["store"])


@pytest.fixture(scope="module")
def store_root(store: Any) -> str:
    """The store's root as stage results spell it (replaced by a placeholder when two runs are compared)."""
    return store.uri_for("raw", "x").rsplit("/raw/", 1)[0]


@pytest.fixture(scope="module")
def latest(catalog: Any) -> dict[tuple[str, str, int], Any]:
    """(stage, subject type, subject id) -> the newest stage record (a retried task may leave older ones)."""
    from sqlalchemy import select

    from curation.catalog import StageRecord

    with catalog.session() as s:
        return {(r.stage, r.subject_type, r.subject_id): r
                for r in s.scalars(select(StageRecord).order_by(StageRecord.id))}


def test_the_run_succeeded(run: dict[str, Any]) -> None:
    assert run["state"] == "success", run


def test_every_file_of_the_site_is_one_instance_or_in_quarantine(run: dict[str, Any], truth: dict[str, Any],
                                                                 catalog: Any) -> None:
    """Nothing lost, nothing doubled: each file the site holds is an instance (a byte-identical copy is the
    same instance) or an ingest quarantine record, as the site's ground truth says."""
    from sqlalchemy import select

    from curation.catalog import Instance, QuarantineRecord

    on_disk = {p.relative_to(run["site"]).as_posix() for p in Path(run["site"]).rglob("*") if p.is_file()}
    assert on_disk - {"ground_truth.json"} == set(truth["files"]), "the site changed since `curate synth` wrote it"
    with catalog.session() as s:
        instances = Counter(s.scalars(select(Instance.sha256)))
        quarantined = {q.sha256 for q in s.scalars(select(QuarantineRecord).where(QuarantineRecord.stage == "ingest"))}
    expected = {k: {f["sha256"] for f in truth["files"].values() if f["expected"] == k}
                for k in ("ingest", "skip_duplicate", "quarantine")}
    doubled = {h: n for h, n in instances.items() if n > 1}
    assert not doubled, f"{len(doubled)} contents catalogued more than once"
    assert set(instances) == expected["ingest"] | expected["skip_duplicate"], (
        f"missing {len(expected['ingest'] - set(instances))}, unexpected {len(set(instances) - expected['ingest'])}")
    assert quarantined == expected["quarantine"], (
        f"quarantine: missing {len(expected['quarantine'] - quarantined)}, "
        f"unexpected {len(quarantined - expected['quarantine'])}")


def test_no_duplicate_rows(catalog: Any, store_root: str) -> None:
    """One row per patient, study, series, instance, stage result and ledger event (a task retried after
    a lost worker must not write twice): `catalog_facts` asserts it table by table."""
    facts = catalog_facts(catalog, store_root=store_root)
    assert facts["counts"]["instance"] > 0


def test_every_series_went_through_every_stage(catalog: Any, latest: dict) -> None:
    from sqlalchemy import select

    from curation.catalog import Series
    from curation.pipeline.register import NOT_REGISTERED

    with catalog.session() as s:
        study_of = dict(s.execute(select(Series.id, Series.study_id)).tuples().all())
    missing = [(stage, sid) for sid in study_of for stage in SERIES_STAGES if (stage, "series", sid) not in latest]
    assert not missing, f"{len(missing)} stage results missing (stage, series id), e.g. {missing[:5]}"
    failed = Counter(k[0] for k, r in latest.items() if r.status == "failed")
    assert not failed, f"failed stage results: {dict(failed)}"
    # every study with a volume that quality passed (curation.pipeline.studies: not excluded, not awaiting
    # review) has a registration result
    volume_studies = {study_of.get(sid) for (stage, _, sid), r in latest.items()
                      if stage == "classify" and (r.metrics or {}).get("kind") not in NOT_REGISTERED
                      and latest[("quality", "series", sid)].status == "ok"} - {None}
    unregistered = sorted(s for s in volume_studies if ("register", "study", s) not in latest)
    assert volume_studies and not unregistered, (
        f"{len(unregistered)} of {len(volume_studies)} studies with a volume not registered")


def test_series_kinds_equal_the_ground_truth(catalog: Any, latest: dict, truth: dict[str, Any]) -> None:
    from sqlalchemy import select

    from curation.catalog import Series
    from curation.classify.report import format_confusion, truth_kind

    with catalog.session() as s:
        ids = dict(s.execute(select(Series.series_instance_uid, Series.id)).tuples().all())
    kind = {sid: (r.metrics or {}).get("kind") for (stage, _, sid), r in latest.items() if stage == "classify"}
    pairs = [(truth_kind(t["kind"]), kind.get(ids.get(t["series_instance_uid"]))) for t in truth["series"]]
    pairs = [(t, p) for t, p in pairs if p is not None]
    assert len(pairs) >= 0.95 * len(truth["series"]), f"{len(pairs)} of {len(truth['series'])} series catalogued"
    assert all(t == p for t, p in pairs), format_confusion(pairs)


def test_the_audit_ledger_verifies(catalog: Any) -> None:
    from curation.catalog import verify_chain

    report = verify_chain(catalog)
    assert report.ok and report.events > 0, report


def test_catalog_and_store_equal_the_reference_run(request: pytest.FixtureRequest, run: dict[str, Any],
                                                   catalog: Any, store: Any, store_root: str) -> None:
    """Under another executor or worker count the same site gives the same rows, decisions, ledger
    content and bytes. Writes this run's digest for the benchmark's output, then compares."""
    facts = catalog_facts(catalog, store_root=store_root)
    zones = {zone: zone_hashes(store, zone) for zone in ("raw", "deid", "derived")}
    digest = facts_digest(facts, zones)
    Path(run["digest_out"]).write_text(json.dumps(digest, indent=1, sort_keys=True))
    Path(run["facts_out"]).write_text(json.dumps({"catalog": facts, "store": zones}, sort_keys=True, default=str))
    reference = request.config.getoption("--scale-reference")
    if not reference:
        pytest.skip("no --scale-reference run given: this run's digest was written for a later comparison")
    expected = json.loads(Path(reference).read_text()).get("digest")
    assert expected, f"{reference} holds no digest (a benchmark output of this version is needed)"
    differ = sorted(k for k in expected.keys() | digest.keys() if expected.get(k) != digest.get(k))
    assert not differ, f"differs from the reference run in: {differ}" + _examples(differ, Path(reference), facts, zones)


def _examples(differ: list[str], reference: Path, facts: dict[str, Any], zones: dict[str, Any]) -> str:
    """A few entries of each differing table or zone that only one of the runs has (from the reference's
    facts file, which the benchmark writes beside its output)."""
    ref_path = reference.with_suffix(".facts.json")
    if not ref_path.exists():
        return f" ({ref_path} not found: no examples)"
    ref = json.loads(ref_path.read_text())
    ours = json.loads(json.dumps({"catalog": facts, "store": zones}, sort_keys=True, default=str))
    lines = []
    for key in differ:
        part, _, table = key.partition(".")
        a, b = ref[part].get(table), ours[part].get(table)
        if isinstance(a, list) and isinstance(b, list):
            only_ref = [x for x in a if x not in b][:3]
            only_ours = [x for x in b if x not in a][:3]
        elif isinstance(a, dict) and isinstance(b, dict):
            only_ref = [(k, a[k]) for k in sorted(a) if a[k] != b.get(k)][:3]
            only_ours = [(k, b[k]) for k in sorted(b) if b[k] != a.get(k)][:3]
        else:
            only_ref, only_ours = [a], [b]
        lines.append(f"\n{key}: reference only {only_ref}\n{key}: this run only {only_ours}")
    return "".join(lines)
