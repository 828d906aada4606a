"""IngestOperator: ingest one source into the raw zone and the catalog (`curation.pipeline.ingest`)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from operators.base import CurationOperator


class IngestOperator(CurationOperator):
    """Ingest `source` (folder, archive, s3:// prefix, DICOMweb URL) for `site` (default: the settings').

    Returns the references of the series it saw in at most `max_tasks` batches (what later stages
    map over: one task per batch) and pushes the run's counts under the XCom key `summary` (no paths,
    no UIDs, no PHI).
    """

    template_fields: Sequence[str] = ("source", "site", "exclude", "readmit")
    ui_color = "#d6eaf8"

    def __init__(self, *, source: str, site: str | None = None, exclude: Sequence[str] = (),
                 readmit: Mapping[str, Any] | str | None = None, workers: int | None = None,
                 max_tasks: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source, self.site, self.exclude, self.workers = source, site, exclude, workers
        self.readmit = readmit
        self.max_tasks = max_tasks

    def execute(self, context: Any) -> list[list[dict[str, Any]]]:
        from curation.ingest import SourceError
        from curation.pipeline import ingest

        hook = self.hook()
        config = {"site": self.site or hook.settings.site, "exclude": list(self.exclude or ()), "workers": self.workers}
        if isinstance(self.readmit, Mapping) and self.readmit:  # one quarantined file, from the operator's page
            config["readmit"] = dict(self.readmit)
        try:
            result = ingest.run(self.source, hook.get_store(), hook.get_catalog(), config)
        except SourceError as exc:
            # The source as a whole is unusable (missing, unreachable): fail the task, say why.
            raise RuntimeError(f"source cannot be ingested: {exc}") from exc
        context["ti"].xcom_push(key="summary", value=result.metrics)
        refs = [ref.to_xcom() for ref in result.refs]
        return ingest.batches(refs, self.max_tasks or ingest.MAX_TASKS_PER_STAGE)
