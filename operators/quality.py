"""QualityOperator: quality metrics and the approve / review / exclude decision of a batch of series
(`curation.pipeline.quality`)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from operators.base import CurationOperator


class QualityOperator(CurationOperator):
    """Score the series `refs` names (one classify task's references); returns them with their decisions."""

    def __init__(self, *, refs: Sequence[dict[str, Any]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.refs = refs

    def execute(self, context: Any) -> list[dict[str, Any]]:
        from curation.pipeline import quality
        from curation.pipeline.ingest import run_batch

        hook = self.hook()
        store, catalog = hook.get_store(), hook.get_catalog()

        def one(ref: Any) -> Any:
            result = quality.run(ref, store, catalog)
            self.log.info("quality of series %s (%s): %s%s", result.ref.series_id, result.ref.kind,
                          result.ref.decision,
                          f" because {result.ref.decision_reason}" if result.ref.decision_reason else "")
            return result

        return run_batch(one, self.refs)
