"""The run summary counts the references the last stages returned, as XCom JSON or as references."""
from __future__ import annotations

from curation.pipeline.refs import SeriesRef, StudyRef
from curation.pipeline.summary import flagged, summarize


def test_summary_counts_statuses_kinds_decisions_and_registrations():
    series = [SeriesRef(1, status="ok", kind="T1W", decision="approve"),
              SeriesRef(2, status="ok", kind="T1W", decision="review", decision_reason="noisy").to_xcom(),
              SeriesRef(3, status="failed")]
    studies = [StudyRef("p/s1", status="ok", derived=2).to_xcom(), StudyRef("p/s2", status="skipped", derived=0)]
    assert summarize(series, studies) == {
        "series": 3, "deid": {"ok": 2, "failed": 1}, "kinds": {"T1W": 2, "unclassified": 1},
        "decisions": {"approve": 1, "review": 1, "none": 1}, "studies_registered": 1, "derived_series": 2}
    assert [r.series_id for r in flagged(series)] == [2]
