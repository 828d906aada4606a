"""CurationSummaryOperator: counts of the run by stage outcome (`curation.pipeline.summary`)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator


class CurationSummaryOperator(BaseOperator):
    """Counts of the run by stage outcome, logged for operators (no PHI)."""

    template_fields: Sequence[str] = ("results", "registrations")
    ui_color = "#fdebd0"

    def __init__(self, *, results: Sequence[dict[str, Any]], registrations: Sequence[dict[str, Any]] = (),
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.results, self.registrations = results, registrations

    def execute(self, context: Any) -> dict[str, Any]:
        from curation.pipeline.ingest import series_of
        from curation.pipeline.summary import flagged, summarize

        results = series_of(self.results)
        summary = summarize(results, series_of(self.registrations))  # register tasks return batches
        self.log.info("curation summary: %s", summary)
        for r in flagged(results):
            self.log.info("series %s (%s) sent to %s: %s", r.series_id, r.kind, r.decision, r.decision_reason)
        return summary
