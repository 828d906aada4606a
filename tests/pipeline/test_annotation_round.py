"""A whole annotation round on the pipeline's side, on a real catalog (SQLite and PostgreSQL):
select -> plan and dispatch bookkeeping -> collect the service's export (made by the service's own
exporter from simulated readings, through CSV) -> QC -> agreement -> consensus -> rewards, and the
quality-review round whose human decisions become the series' final decisions.

Simulated readers: three careful ones (sensitivity and specificity 0.9, boxes within a few pixels of
the truth), one answering at random, one answering "no" to everything. Acceptance of issue 14:
consensus accuracy >= 0.95 against the truth, box consensus IoU >= 0.7, the random and the
straight-lining reader excluded from consensus and rewards."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import numpy as np
import pytest
from sqlalchemy import func, select, text

from annotation.exports.readings import Reading as ExportReading
from annotation.exports.tabular import CSV_COLUMNS, quality_decisions, to_csv
from annotation.schemas import ItemIn
from curation.agreement.roi import box_iou
from curation.annotation_schema import load_schema
from curation.catalog import Catalog, LineageEvent, verify_chain
from curation.catalog.models import AnnotationRound, ConsensusLabel, Reading
from curation.pipeline import analyse as analysis
from curation.pipeline import dispatch
from curation.pipeline.collect import collect, collect_quality, export_tables, reader_pseudonym
from curation.pipeline.select import Selection, final_quality_decision, select_for_release, select_review, select_series
from curation.store import open_store
from curation.vocabulary import QualityDecision
from tests.pipeline.test_annotation_select import add_series

SECRET = b"test-pseudonym-secret"
LABELS = ("opacity", "effusion", "nodule")
SIZE = 256
READERS = {"careful-1": "careful", "careful-2": "careful", "careful-3": "careful", "random-1": "random",
           "flat-1": "flat"}


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'c.sqlite'}" if request.param == "sqlite" else \
        request.getfixturevalue("fresh_postgres_url")
    c = Catalog(url)
    yield c
    c.dispose()


@dataclass
class Truth:
    values: dict[tuple[str, str], int]  # (item, label) -> 0/1
    boxes: dict[tuple[str, str], tuple[float, float, float, float]]  # positive (item, label) -> box


def make_truth(items: list[str], rng: np.random.Generator) -> Truth:
    values, boxes = {}, {}
    for item in items:
        for label in LABELS:
            values[item, label] = int(rng.random() < 0.35)
            if values[item, label]:
                x0, y0 = rng.uniform(10, 150, 2)
                w, h = rng.uniform(30, 80, 2)
                boxes[item, label] = (x0, y0, x0 + w, y0 + h)
    return Truth(values, boxes)


def _answer(profile: str, truth: int, rng: np.random.Generator) -> int:
    if profile == "careful":
        return truth if rng.random() < 0.9 else 1 - truth
    if profile == "random":
        return int(rng.random() < 0.5)
    return 0  # flat: straight-lining "no"


def _box(profile: str, true_box, rng: np.random.Generator) -> list[list[float]]:
    if profile == "careful" and true_box is not None:
        x0, y0, x1, y1 = np.asarray(true_box) + rng.normal(0, 2.0, 4)
    else:  # a box where there is nothing (or drawn at random)
        x0, y0 = rng.uniform(0, 180, 2)
        x1, y1 = x0 + rng.uniform(20, 70), y0 + rng.uniform(20, 70)
    return [[round(float(x0), 2), round(float(y0), 2)], [round(float(x1), 2), round(float(y1), 2)]]


def simulate_export(items: list[str], gold: list[str], truth: Truth, seed: int) -> list[dict[str, str]]:
    """The service's CSV export (its own exporter) of every reader reading every item once."""
    rng = np.random.default_rng(seed)
    project = SimpleNamespace(name="chest")
    readings, task = [], 0
    start = datetime(2026, 12, 5, 8, tzinfo=timezone.utc).replace(tzinfo=None)
    for n, item in enumerate(items + gold):
        record = SimpleNamespace(id=n + 1, external_id=item, modality="CR", body_part="CHEST",
                                 instances=[SimpleNamespace(sop_instance_uid=f"2.25.77{n}")], context={})
        for reader, profile in READERS.items():
            task += 1
            labels, rois, label_ms = [], [], {}
            for label in LABELS:
                value = _answer(profile, truth.values[item, label], rng)
                labels.append({"label": label, "value": bool(value),
                               "confidence": int(rng.choice([60, 80, 100])) if profile == "careful" else 100})
                label_ms[label] = int(rng.uniform(6000, 20000) if profile != "flat" else rng.uniform(1500, 3000))
                if value:
                    rois.append({"label": f"{label}_box", "kind": "box", "instance": 0, "frame": 0,
                                 "points": _box(profile, truth.boxes.get((item, label)), rng)})
            readings.append(ExportReading(
                task_id=task, item=record, reader=reader, reader_level="senior", kind="annotate", status="submitted",
                round=1, verify_level=0, decision=None, schema_version=1, schema_labels={}, is_gold=item in gold,
                gold_score=None, labels=labels, rois=rois, wall_ms=sum(label_ms.values()) + 500,
                active_ms=sum(label_ms.values()), idle_ms=0, label_ms=label_ms,
                submitted_at=start + timedelta(seconds=task)))
    # a skipped reading and a verification: neither is a reading of the round
    readings.append(ExportReading(task_id=task + 1, item=record, reader="careful-1", reader_level="senior",
                                  kind="annotate", status="skipped", round=1, verify_level=0, decision=None,
                                  schema_version=1, schema_labels={}, is_gold=False, gold_score=None,
                                  skip_reason="image does not load"))
    readings.append(ExportReading(task_id=task + 2, item=record, reader="careful-2", reader_level="senior",
                                  kind="verify", status="submitted", round=1, verify_level=1, decision="accept",
                                  schema_version=1, schema_labels={}, is_gold=False, gold_score=None,
                                  labels=[{"label": "nodule", "value": True, "confidence": 100}]))
    text_ = to_csv(project, readings)
    rows = list(csv.DictReader(io.StringIO(text_)))
    assert list(rows[0]) == CSV_COLUMNS
    return rows


def test_export_rows_become_the_long_reading_table_and_the_box_table():
    truth = make_truth(["a", "b"], np.random.default_rng(0))
    rows = simulate_export(["a", "b"], [], truth, seed=1)
    tables = export_tables(rows, lambda name: reader_pseudonym(name, SECRET))
    assert len(tables.readings) == 2 * 5 * 3  # items x readers x labels; skipped and verify rows left out
    assert set(tables.readings["annotator"]) == {reader_pseudonym(r, SECRET) for r in READERS}
    assert not set(tables.readings["annotator"]) & set(READERS)
    flat = tables.readings[tables.readings["annotator"] == reader_pseudonym("flat-1", SECRET)]
    assert set(flat["value"]) == {0} and flat["seconds"].between(1.5, 3).all()
    assert len(tables.boxes) == sum(1 for r in rows if r["record"] == "roi")
    assert (tables.boxes["x1"] > tables.boxes["x0"]).all() and set(tables.boxes["roi_kind"]) == {"box"}
    assert reader_pseudonym("careful-1", SECRET) == reader_pseudonym("careful-1", SECRET) != \
        reader_pseudonym("careful-1", b"another secret")


def _events(catalog: Catalog, action: str) -> int:
    with catalog.session() as s:
        return s.scalar(select(func.count()).select_from(LineageEvent).where(LineageEvent.action == action))


def test_a_full_round_reaches_the_acceptance_figures(catalog, tmp_path):
    ids = [add_series(catalog, i, size=(SIZE, SIZE)) for i in range(105)]
    assert len(ids) == 105
    schema = load_schema("chest_findings_v1")
    selection = Selection.from_params({"project": "chest"}, schema.selection)
    refs = select_series(catalog, selection)
    regular, gold_refs = refs[:100], [r.replace(is_gold=True) for r in refs[100:]]
    truth = make_truth([r.item_key for r in refs], np.random.default_rng(5))
    gold_answers = {r.item_key: {label: truth.values[r.item_key, label] for label in LABELS} for r in gold_refs}

    rnd = dispatch.plan_round(catalog, project="chest", name="manual__1", schema=schema, items=regular + gold_refs,
                              params={"readers_per_item": 5}, gold_answers=gold_answers)
    again = dispatch.plan_round(catalog, project="chest", name="manual__1", schema=schema, items=regular)
    assert (rnd.n_items, again.round_id, again.n_items, _events(catalog, "plan")) == (105, rnd.round_id, 105, 1)

    store = open_store(tmp_path / "store")
    bodies = dispatch.service_items(catalog, store, regular[:2])
    assert bodies[0]["external_id"] == regular[0].item_key and bodies[0]["modality"] == "CR"
    assert all("/deid/" in uri and "/raw/" not in uri for b in bodies for uri in b["uris"])
    gold_body = dispatch.service_items(catalog, store, gold_refs[:1], gold_answers=gold_answers)[0]
    assert gold_body["is_gold"] and {lv["label"]: lv["value"] for lv in gold_body["gold_answer"]["labels"]} == \
        {label: bool(v) for label, v in gold_answers[gold_refs[0].item_key].items()}
    review_body = dispatch.service_items(catalog, store, regular[:1], quality_context=True)[0]
    for body in [*bodies, gold_body, review_body]:  # what the service's own model accepts
        ItemIn.model_validate(body)
    review = review_body["context"]["quality"]
    assert review == {"decision": "approve", "reason": "model says approve", "model": "quality (CR)",
                      "metrics": {"snr": 12.5}, "score": 0.4}  # metrics without a value are not sent

    answer = {"round": {"id": 41, "number": 1, "per_item": [
        {"item_id": 500 + n, "external_id": r.item_key} for n, r in enumerate(regular)]}}
    first = dispatch.record_dispatch(catalog, rnd.round_id, answer,
                                     item_ids={r.item_key: 900 + n for n, r in enumerate(gold_refs)})
    second = dispatch.record_dispatch(catalog, rnd.round_id, answer,
                                      item_ids={r.item_key: 900 + n for n, r in enumerate(gold_refs)})
    assert (first.metrics["registered"], first.reused, second.reused, _events(catalog, "dispatch")) == (105, False, True, 1)
    assert first.ref.state == "dispatched" and first.ref.service_round_id == 41

    rows = simulate_export([r.item_key for r in regular], [r.item_key for r in gold_refs], truth, seed=11)
    rows.append({**rows[0], "external_id": "not-in-this-round", "task_id": "99999"})
    part = collect(catalog, rnd.round_id, rows[: len(rows) // 2], SECRET)
    full = collect(catalog, rnd.round_id, rows, SECRET)
    repeat = collect(catalog, rnd.round_id, rows, SECRET)
    assert part.metrics["new"] > 0 and full.metrics["new"] > 0
    assert (repeat.metrics["new"], repeat.reused, _events(catalog, "readings_collected")) == (0, True, 2)
    assert full.metrics["answers"] == 105 * 5 * 3 and full.metrics["readers"] == 5
    assert full.metrics["rows_of_other_items"] == 1
    with catalog.session() as s:
        n_rows = s.scalar(select(func.count()).select_from(Reading))
        assert n_rows == sum(1 for r in rows[:-1] if r["record"] in ("label", "roi") and r["task_kind"] == "annotate")

    dispatch.record_close(catalog, rnd.round_id, {"state": "complete", "items": 100, "complete_items": 100})
    result = analysis.analyse(catalog, rnd.round_id, analysis.AnalysisConfig(n_boot=200, seed=1))
    m = result.metrics
    assert not result.reused and (m["items"], m["readers"], m["readers_excluded"]) == (100, 5, 2)
    assert 0.5 < m["fleiss_kappa"] <= 1 and m["fleiss_kappa_ci95"][0] < m["fleiss_kappa"] < m["fleiss_kappa_ci95"][1]
    assert m["krippendorff_alpha"] is not None and len(m["krippendorff_alpha_ci95"]) == 2
    assert not any(name in str(m) for name in READERS)

    reports = analysis.reader_reports(catalog, rnd.round_id)
    by_name = {name: reports[reader_pseudonym(name, SECRET)] for name in READERS}
    assert not by_name["random-1"]["passes_qc"] and "random_answering" in by_name["random-1"]["qc_flags"]
    assert not by_name["flat-1"]["passes_qc"] and "straight_lining" in by_name["flat-1"]["qc_flags"]
    assert by_name["random-1"]["reward"] == by_name["flat-1"]["reward"] == 0
    careful = [by_name[f"careful-{i}"] for i in (1, 2, 3)]
    assert all(r["passes_qc"] and r["reward"] > 0 for r in careful)
    assert sum(r["reward"] for r in careful) == pytest.approx(100.0)

    consensus = analysis.consensus_labels(catalog, rnd.round_id)
    assert len(consensus) == 100 * 3 and consensus["posterior"].between(0, 1).all()
    accuracy = np.mean([v == truth.values[i, k] for i, k, v in zip(consensus["item"], consensus["label"],
                                                                     consensus["value"])])
    majority = analysis.consensus_labels(catalog, rnd.round_id, "majority")
    majority_accuracy = np.mean([v == truth.values[i, k] for i, k, v in zip(majority["item"], majority["label"],
                                                                             majority["value"])])
    assert accuracy >= 0.95 and majority_accuracy >= 0.95, (accuracy, majority_accuracy)
    boxes = analysis.consensus_labels(catalog, rnd.round_id, "box")
    ious = [box_iou([b.x0, b.y0, b.x1, b.y1], truth.boxes[b.item, b.label.removesuffix("_box")])
            for b in boxes.itertuples() if (b.item, b.label.removesuffix("_box")) in truth.boxes]
    true_boxes = sum(1 for (item, _), v in truth.values.items() if v and item in {r.item_key for r in regular})
    assert len(ious) >= 0.9 * true_boxes and np.mean(ious) >= 0.7 and len(boxes) - len(ious) <= 3

    with catalog.session() as s:
        row = s.get(AnnotationRound, rnd.round_id)
        assert row.state == "analysed" and row.summary["readers_kept"] == sorted(
            reader_pseudonym(f"careful-{i}", SECRET) for i in (1, 2, 3))
        assert row.summary["per_label"]["nodule"]["fleiss_kappa"] is not None
        assert row.summary["box_agreement"]["mean_iou"] > 0.7
        n_consensus = s.scalar(select(func.count()).select_from(ConsensusLabel))
    rerun = analysis.analyse(catalog, rnd.round_id, analysis.AnalysisConfig(n_boot=200, seed=1))
    assert rerun.reused and rerun.metrics["fleiss_kappa"] == m["fleiss_kappa"]
    with catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(ConsensusLabel)) == n_consensus
    for action in ("plan", "dispatch", "close", "readings_collected", "qc", "consensus", "rewards"):
        assert _events(catalog, action) >= 1, action
    assert verify_chain(catalog).ok

    # no reader's username anywhere in the catalog: only pseudonyms
    with catalog.session() as s:
        for table in ("annotation_round", "annotation_item", "reading", "consensus_label", "reader_report",
                      "lineage_event", "stage_result"):
            dump = str(s.execute(text(f"SELECT * FROM {table}")).all())
            assert not any(name in dump for name in READERS), table


def test_the_quality_review_round_makes_the_human_decision_final(catalog):
    approved = add_series(catalog, 1)
    to_review = [add_series(catalog, n, decision=QualityDecision.REVIEW) for n in (2, 3, 4)]
    schema = load_schema("quality_review_v1")
    refs = select_review(catalog, project="quality")
    assert [r.series_id for r in refs] == to_review
    rnd = dispatch.plan_round(catalog, project="quality", name="review-1", schema=schema, items=refs)
    choices = {refs[0].item_key: [("careful-1", "approve", ""), ("careful-2", "approve", "")],
               refs[1].item_key: [("careful-1", "exclude", "severe motion"), ("careful-2", "quarantine", "text")],
               refs[2].item_key: [("careful-1", "exclude", "cut-off field of view"),
                                  ("careful-2", "exclude", "cut-off field of view")]}
    readings = []
    for n, (key, decided) in enumerate(choices.items()):
        item = SimpleNamespace(id=n + 1, external_id=key, modality="CR", body_part="CHEST", instances=[],
                               context={"quality": {"decision": "review", "score": 0.5, "reason": "noise"}})
        for reader, decision, reason in decided:
            readings.append(ExportReading(task_id=len(readings) + 1, item=item, reader=reader, reader_level="senior",
                                          kind="annotate", status="submitted", round=1, verify_level=0, decision=None,
                                          schema_version=None, schema_labels={}, is_gold=False, gold_score=None,
                                          quality_decision=decision, quality_reason=reason,
                                          submitted_at=datetime(2026, 12, 5, 9, n)))
    exported = quality_decisions(SimpleNamespace(id=3, name="quality", kind="quality_review"), readings)
    first = collect_quality(catalog, rnd.round_id, exported["decisions"], SECRET)
    # the same decisions through the CSV export: nothing new
    rows = list(csv.DictReader(io.StringIO(to_csv(SimpleNamespace(name="quality"), readings))))
    again = collect_quality(catalog, rnd.round_id, rows, SECRET)
    assert (first.metrics["new"], again.metrics["new"], again.reused) == (6, 0, True)

    applied = analysis.apply_quality_review(catalog, rnd.round_id)
    assert applied.metrics["by_decision"] == {"approve": 1, "quarantine": 1, "exclude": 1}
    assert applied.metrics["model_decision_overridden"] == 3
    assert analysis.apply_quality_review(catalog, rnd.round_id).reused
    assert _events(catalog, "final_quality_decision") == 1
    tied = final_quality_decision(catalog, refs[1].item_key)
    assert (tied.decision, tied.source) == ("quarantine", "human")  # a tie goes to the most cautious
    assert tied.reviewers == tuple(sorted(reader_pseudonym(r, SECRET) for r in ("careful-1", "careful-2")))
    assert select_for_release(catalog) == [approved, to_review[0]]
    assert select_review(catalog) == []
    assert verify_chain(catalog).ok


def test_a_round_closed_with_few_readings_is_handled_explicitly(catalog):
    for i in range(10):
        add_series(catalog, i)
    refs = select_series(catalog, Selection())
    rnd = dispatch.plan_round(catalog, project="chest", name="late", schema=load_schema("chest_findings_v1"),
                              items=refs)
    closed = dispatch.record_close(catalog, rnd.round_id, {"state": "closed", "items": 10, "complete_items": 0})
    assert closed.metrics["partial"] and closed.ref.state == "closed"
    empty = analysis.analyse(catalog, rnd.round_id)
    assert empty.status == "skipped" and "no readings" in empty.reason
    truth = make_truth([r.item_key for r in refs], np.random.default_rng(0))
    rows = [r for r in simulate_export([r.item_key for r in refs], [], truth, seed=1) if r["annotator"] == "careful-1"]
    collect(catalog, rnd.round_id, rows, SECRET)
    alone = analysis.analyse(catalog, rnd.round_id, analysis.AnalysisConfig(n_boot=20))
    assert alone.status == "ok" and alone.metrics["readers"] == 1 and alone.metrics["fleiss_kappa"] is None
    with catalog.session() as s:
        unpaid = s.get(AnnotationRound, rnd.round_id).summary["rewards"]["unpaid"]
    assert "cannot be split" in unpaid  # one reader: nothing to agree on, nobody paid, and the summary says why


def test_ten_seeds_catch_the_random_and_the_straight_lining_reader_every_time(tmp_path):
    """Issue 14's acceptance over 10 seeds: the random and the straight-lining reader are excluded
    from consensus and rewards in every one; consensus accuracy averages >= 0.95 (three readers at
    0.9 give 0.972 in expectation; a single round of 240 item-labels can dip just below 0.95)."""
    accuracies = []
    for seed in range(10):
        c = Catalog(f"sqlite:///{tmp_path / f'c{seed}.sqlite'}")
        for i in range(80):
            add_series(c, i)
        refs = select_series(c, Selection())
        truth = make_truth([r.item_key for r in refs], np.random.default_rng(seed))
        rnd = dispatch.plan_round(c, project="chest", name=f"seed-{seed}", schema=load_schema("chest_findings_v1"),
                                  items=refs)
        collect(c, rnd.round_id, simulate_export([r.item_key for r in refs], [], truth, seed=100 + seed), SECRET)
        analysis.analyse(c, rnd.round_id, analysis.AnalysisConfig(n_boot=0))
        reports = analysis.reader_reports(c, rnd.round_id)
        failed = {name for name in READERS if not reports[reader_pseudonym(name, SECRET)]["passes_qc"]}
        assert failed == {"random-1", "flat-1"}, seed
        assert all(reports[reader_pseudonym(name, SECRET)]["reward"] == 0 for name in failed)
        consensus = analysis.consensus_labels(c, rnd.round_id)
        accuracies.append(np.mean([v == truth.values[i, k]
                                   for i, k, v in zip(consensus["item"], consensus["label"], consensus["value"])]))
        c.dispose()
    assert np.mean(accuracies) >= 0.95 and min(accuracies) >= 0.92, accuracies
