"""Typed references travel through XCom as small JSON: a round trip gives the same reference, None
fields are left out, vocabulary members become plain text, and a study of many series stays small."""
from __future__ import annotations

import json

import pytest

from curation.pipeline.refs import SeriesRef, StudyRef
from curation.pipeline.studies import group_by_study
from curation.vocabulary import QualityDecision, SeriesKind, StageStatus


def _series(i: int, **over) -> SeriesRef:
    kw = dict(series_id=i, format="dicom", status=StageStatus.OK, deid_record=100 + i,
              deid_prefix=f"ANONPATIENT0000000001/1.2.826.0.1.3680043.10.1.{i // 10}/1.2.826.0.1.3680043.10.2.{i}/",
              quarantined=0, kind=SeriesKind.T2W, confidence=0.93, plane="axial", dimensions="3D", contrast=False,
              derived=False, body_part="BRAIN", rule="description:t2", decision=QualityDecision.APPROVE,
              decision_reason="all metrics within limits", reused=False)
    kw.update(over)
    return SeriesRef(**kw)


def test_series_ref_round_trips_through_json():
    ref = _series(7)
    data = json.loads(json.dumps(ref.to_xcom()))
    assert SeriesRef.from_xcom(data) == ref
    assert type(data["kind"]) is str and data["kind"] == "T2W"
    assert SeriesRef.from_xcom(ref) is ref


def test_none_fields_are_left_out_and_unknown_keys_ignored():
    assert SeriesRef(series_id=3).to_xcom() == {"series_id": 3}
    assert SeriesRef.from_xcom({"series_id": 3, "outputs": ["a/b.dcm"]}) == SeriesRef(series_id=3)
    with pytest.raises(TypeError):
        SeriesRef.from_xcom({"kind": "T1W"})  # a reference names its series


def test_study_ref_round_trips_with_its_series():
    study = StudyRef(study="ANONPATIENT0000000001/1.2.3", series=(_series(1), _series(2)), status=StageStatus.OK,
                     derived=2, fixed_reason="rule: T2W, 3D, axial", reused=True)
    data = json.loads(json.dumps(study.to_xcom()))
    back = StudyRef.from_xcom(data)
    assert back == study and all(isinstance(s, SeriesRef) for s in back.series)


def test_references_stay_small():
    assert len(json.dumps(_series(1).to_xcom())) < 600
    study = group_by_study([_series(i).to_xcom() for i in range(4)])
    assert len(study) == 1 and len(json.dumps(study[0].to_xcom())) < 2000


def test_grouping_keeps_deidentified_dicom_series_not_excluded():
    refs = [_series(1), _series(2, decision=QualityDecision.EXCLUDE), _series(3, status=StageStatus.FAILED),
            _series(4, format="png"), _series(5, deid_prefix=None), _series(6)]
    (study,) = group_by_study([r.to_xcom() for r in refs])
    assert [s.series_id for s in study.series] == [1, 6]
    assert study.study == "ANONPATIENT0000000001/1.2.826.0.1.3680043.10.1.0"
    assert study.series[0].rule is None  # only what registration reads travels on
