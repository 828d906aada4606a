"""Operators of the register stage: bundle the series by study, then motion-correct and co-register
each study (`curation.pipeline.studies`, `curation.pipeline.register`)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from operators.base import CurationOperator


class StudiesOperator(BaseOperator):
    """Bundle the quality tasks' references (batches of series) by study, the unit of co-registration;
    only studies with a series the register stage registers become register tasks."""

    template_fields: Sequence[str] = ("results",)

    def __init__(self, *, results: Sequence[dict[str, Any]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.results = results

    def execute(self, context: Any) -> list[dict[str, Any]]:
        from curation.pipeline.ingest import series_of
        from curation.pipeline.register import registrable
        from curation.pipeline.studies import group_by_study

        grouped = group_by_study(series_of(self.results))
        studies = [s for s in grouped if registrable(s)]
        self.log.info("%d studies to register (%d without a volume to register)", len(studies),
                      len(grouped) - len(studies))
        return [s.to_xcom() for s in studies]


class RegisterOperator(CurationOperator):
    """Motion correction and co-registration of one study; derived series go to the derived zone."""

    template_fields: Sequence[str] = ("config",)

    def __init__(self, *, study: dict[str, Any], config: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.study, self.config = study, config

    def execute(self, context: Any) -> dict[str, Any]:
        from curation.pipeline import StudyRef, register

        hook = self.hook()
        ref = register.run(StudyRef.from_xcom(self.study), hook.get_store(), hook.get_catalog(), self.config).ref
        self.log.info("register: %s, %s derived series (fixed image: %s)%s", ref.status, ref.derived,
                      ref.fixed_reason, " [result reused]" if ref.reused else "")
        return ref.to_xcom()
