"""Choosing series for annotation rounds from a real catalog: filters by kind, final quality
decision, modality and body part; a seeded sample that is repeatable and stable when series arrive;
series read in earlier rounds of the project left out when asked; the quality-review selection; and
the final decision (a person's over the model's) that release selection reads."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from curation.annotation_schema import load_schema
from curation.catalog import Catalog, Instance, Series, Source, StageRecord
from curation.catalog.models import QualityReview, Reading
from curation.pipeline import dispatch
from curation.pipeline.select import (
    ItemRef, Selection, final_quality_decision, select_for_release, select_review, select_series,
)
from curation.vocabulary import QualityDecision, SeriesKind, StageStatus

STATUS = {QualityDecision.APPROVE: StageStatus.OK, QualityDecision.REVIEW: StageStatus.REVIEW,
          QualityDecision.EXCLUDE: StageStatus.EXCLUDED}


@pytest.fixture
def catalog(tmp_path):
    c = Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    yield c
    c.dispose()


def add_series(catalog: Catalog, n: int, *, kind: str = SeriesKind.CR, decision: str = QualityDecision.APPROVE,
               modality: str = "CR", body_part: str | None = "CHEST", size: tuple[int, int] = (256, 256)) -> int:
    """A de-identified, classified and quality-checked DICOM series as the stages record it."""
    uid = f"2.25.{1000 + n}"
    with catalog.session() as s:
        src = s.query(Source).first() or Source(kind="folder", uri="/data/in")
        series = Series(series_instance_uid=f"1.2.840.{n}", modality=modality)
        s.add_all([src, series])
        s.flush()
        s.add(Instance(series_id=series.id, sop_instance_uid=f"1.2.840.{n}.1", sha256=f"{n:064x}", size=1,
                       raw_key=f"objects/{n}", source_id=src.id, source_path=f"p{n}.dcm", rows=size[1],
                       columns=size[0]))
        subject = dict(subject_type="series", subject_id=series.id, input_hash="i" * 64, config_hash="c" * 64)
        s.add(StageRecord(stage="deid", stage_version="1", status=StageStatus.OK, **subject,
                          metrics={"outputs": [f"ANON{n:04d}/2.25.9{n}/{uid}/2.25.8{n}.dcm"]}))
        s.add(StageRecord(stage="classify", stage_version="1", status=StageStatus.OK, **subject,
                          metrics={"kind": str(kind), "body_part": body_part}))
        s.add(StageRecord(stage="quality", stage_version="1", status=STATUS[decision], **subject,
                          reason=f"model says {decision}",
                          metrics={"decision": {"decision": str(decision), "reason": "r", "p_degraded": 0.4},
                                   "metrics": {"snr": 12.5, "efc": None}}))
        return series.id


def test_filters_match_kind_final_decision_modality_and_body_part(catalog):
    chest = [add_series(catalog, i) for i in range(4)]
    review = add_series(catalog, 10, decision=QualityDecision.REVIEW)
    add_series(catalog, 11, decision=QualityDecision.EXCLUDE)
    brain = add_series(catalog, 12, kind=SeriesKind.FLAIR, modality="MR", body_part="BRAIN")
    head_ct = add_series(catalog, 13, kind=SeriesKind.CT, modality="CT", body_part="HEAD")
    ids = lambda refs: [r.series_id for r in refs]  # noqa: E731
    assert ids(select_series(catalog, Selection(series_kinds=("CR", "DX")))) == chest
    assert ids(select_series(catalog, Selection(quality_decisions=("approve", "review"), modalities=("CR",)))) \
        == chest + [review]
    assert ids(select_series(catalog, Selection(body_parts=("BRAIN", "HEAD")))) == [brain, head_ct]
    ref = select_series(catalog, Selection(series_kinds=("FLAIR",)))[0]
    assert (ref.item_key, ref.kind, ref.modality, ref.decision, ref.width, ref.height) == \
        ("2.25.1012", "FLAIR", "MR", "approve", 256, 256)
    assert ItemRef.from_xcom(json.loads(json.dumps(ref.to_xcom()))) == ref
    # a schema's default selection fills what the DAG's Params leave empty
    chest_schema = load_schema("chest_findings_v1")
    sel = Selection.from_params({"size": "", "seed": 3, "modalities": "CR, DX"}, chest_schema.selection)
    assert (sel.series_kinds, sel.body_parts, sel.modalities, sel.size, sel.seed) == \
        (("CR", "DX"), ("CHEST",), ("CR", "DX"), None, 3)


def test_the_seeded_sample_repeats_and_stays_when_series_arrive(catalog):
    for i in range(30):
        add_series(catalog, i)
    first = select_series(catalog, Selection(size=8, seed=7))
    assert len(first) == 8 and select_series(catalog, Selection(size=8, seed=7)) == first
    assert select_series(catalog, Selection(size=8, seed=8)) != first
    for i in range(30, 33):
        add_series(catalog, i)
    again = {r.series_id for r in select_series(catalog, Selection(size=8, seed=7))}
    assert len(again & {r.series_id for r in first}) >= 5  # new series outrank at most three


def test_series_read_in_earlier_rounds_of_the_project_are_left_out(catalog):
    ids = [add_series(catalog, i) for i in range(6)]
    schema = load_schema("chest_findings_v1")
    refs = select_series(catalog, Selection(project="chest"))
    rnd = dispatch.plan_round(catalog, project="chest", name="run-1", schema=schema, items=refs[:3])
    # dispatched but unread: still selectable
    assert [r.series_id for r in select_series(catalog, Selection(project="chest"))] == ids
    with catalog.session() as s:
        from curation.catalog.models import AnnotationItem

        item = s.query(AnnotationItem).filter_by(round_id=rnd.round_id, series_id=ids[0]).one()
        s.add(Reading(round_id=rnd.round_id, item_id=item.id, task_id=1, record="label", label="nodule",
                      reader="rdr-1", value=1))
    assert [r.series_id for r in select_series(catalog, Selection(project="chest"))] == ids[1:]
    assert [r.series_id for r in select_series(catalog, Selection(project="chest"), round_name="run-1")] == ids
    assert [r.series_id for r in select_series(catalog, Selection(project="other"))] == ids
    assert [r.series_id for r in select_series(catalog, Selection(project="chest", exclude_read=False))] == ids


def _review(catalog, series_id, decision, reviewer, minutes=0, round_id=None, reason=""):
    with catalog.session() as s:
        s.add(QualityReview(series_id=series_id, series_key=f"2.25.{1000 + series_id}", round_id=round_id,
                            decision=decision, reason=reason, reviewer=reviewer,
                            decided_at=datetime(2026, 12, 5, tzinfo=timezone.utc) + timedelta(minutes=minutes)))


def test_the_final_decision_is_the_human_one_when_present_and_release_reads_it(catalog):
    approved = add_series(catalog, 1)
    overruled = add_series(catalog, 2)
    reviewed = add_series(catalog, 3, decision=QualityDecision.REVIEW)
    pending = add_series(catalog, 4, decision=QualityDecision.REVIEW)
    assert [r.series_id for r in select_review(catalog)] == [reviewed, pending]
    assert select_for_release(catalog) == [approved, overruled]
    model = final_quality_decision(catalog, approved)
    assert (model.decision, model.source, model.reason) == ("approve", "model", "model says approve")

    _review(catalog, reviewed, "approve", "rdr-a")
    _review(catalog, overruled, "quarantine", "rdr-b", reason="burned-in text left")
    final = final_quality_decision(catalog, "2.25.1003")  # by the de-identified series key too
    assert (final.series_id, final.decision, final.source, final.reviewers) == (reviewed, "approve", "human", ("rdr-a",))
    assert final_quality_decision(catalog, overruled).reason == "burned-in text left"
    assert select_for_release(catalog) == [approved, reviewed]
    assert [r.series_id for r in select_review(catalog)] == [pending]
    assert select_for_release(catalog, ("approve", "review")) == [approved, reviewed, pending]
    with pytest.raises(ValueError, match="not in the catalog"):
        final_quality_decision(catalog, "2.25.999999")


def test_reviewers_of_one_round_vote_and_a_later_round_overrides(catalog):
    sid = add_series(catalog, 1, decision=QualityDecision.REVIEW)
    schema = load_schema("quality_review_v1")
    first = dispatch.plan_round(catalog, project="qr", name="r1", schema=schema, items=select_review(catalog))
    _review(catalog, sid, "approve", "rdr-a", 1, first.round_id)
    _review(catalog, sid, "exclude", "rdr-b", 2, first.round_id, "motion")
    tied = final_quality_decision(catalog, sid)
    assert (tied.decision, tied.reviewers) == ("exclude", ("rdr-a", "rdr-b"))  # a tie: the more cautious
    _review(catalog, sid, "approve", "rdr-c", 3, first.round_id)
    assert final_quality_decision(catalog, sid).decision == "approve"  # two of three
    second = dispatch.plan_round(catalog, project="qr", name="r2", schema=schema,
                                 items=[ItemRef(series_id=sid, item_key="2.25.1001")])
    _review(catalog, sid, "quarantine", "rdr-a", 10, second.round_id, "wrong patient orientation label")
    latest = final_quality_decision(catalog, sid)
    assert (latest.decision, latest.reviewers, latest.decided_at.minute) == ("quarantine", ("rdr-a",), 10)
