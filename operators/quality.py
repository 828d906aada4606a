"""QualityOperator: quality metrics and the approve / review / exclude decision (`curation.pipeline.quality`)."""
from __future__ import annotations

from typing import Any

from operators.base import SeriesOperator


class QualityOperator(SeriesOperator):
    """Score the series `ref` (the classify task's reference) names."""

    def execute(self, context: Any) -> dict[str, Any]:
        from curation.pipeline import quality

        hook = self.hook()
        ref = quality.run(self.series_ref(), hook.get_store(), hook.get_catalog()).ref
        self.log.info("quality of series %s (%s): %s%s", ref.series_id, ref.kind, ref.decision,
                      f" because {ref.decision_reason}" if ref.decision_reason else "")
        return ref.to_xcom()
