"""IngestOperator: ingest one source into the raw zone and the catalog."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from operators.hooks.curation import CurationHook


class IngestOperator(BaseOperator):
    """Ingest `source` (folder, archive, s3:// prefix, DICOMweb URL) for `site`.

    Returns the catalog ids of the series it saw (what later stages map over) and pushes the run's
    counts under the XCom key `summary` (no paths, no UIDs, no PHI).
    """

    template_fields: Sequence[str] = ("source", "site", "exclude")
    ui_color = "#d6eaf8"

    def __init__(self, *, source: str, site: str = "default", exclude: Sequence[str] = (),
                 workers: int | None = None,
                 curate_conn_id: str = CurationHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.site = site
        self.exclude = exclude
        self.workers = workers
        self.curate_conn_id = curate_conn_id

    def execute(self, context: Any) -> list[int]:
        from curation.ingest import SourceError, ingest

        hook = CurationHook(self.curate_conn_id)
        try:
            summary = ingest(self.source, hook.get_catalog(), hook.get_store(), site=self.site,
                             workers=self.workers, exclude=list(self.exclude or ()),
                             progress=self._progress)
        except SourceError as exc:
            # The source as a whole is unusable (missing, unreachable): fail the task, say why.
            raise RuntimeError(f"source cannot be ingested: {exc}") from exc
        result = summary.as_dict()
        self.log.info("ingest: %(patients)d patients, %(studies)d studies, %(series)d series, "
                      "%(instances)d instances (%(instances_new)d new), %(duplicates)d duplicates, "
                      "%(quarantined)d quarantined", result)
        for q in summary.quarantined:
            # File paths of hospital exports can carry names: log the content hash, not the path.
            self.log.warning("quarantined file sha256:%s: [%s] %s", (q["sha256"] or "unreadable")[:16],
                             q["reason_code"], q["reason"])
        context["ti"].xcom_push(key="summary", value=result)
        return summary.series_ids

    def _progress(self, done: int, total: int) -> None:
        if done == total or done % 2000 == 0:
            self.log.info("ingest progress: %d/%d files", done, total)
