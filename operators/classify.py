"""ClassifyOperator: series kind and attributes of a de-identified series (`curation.pipeline.classify`)."""
from __future__ import annotations

from typing import Any

from operators.base import SeriesOperator


class ClassifyOperator(SeriesOperator):
    """Classify the series `ref` (the deid task's reference) names."""

    def execute(self, context: Any) -> dict[str, Any]:
        from curation.pipeline import classify

        hook = self.hook()
        ref = classify.run(self.series_ref(), hook.get_store(), hook.get_catalog()).ref
        self.log.info("classify of series %s: %s (confidence %s, rule %s)", ref.series_id, ref.kind,
                      ref.confidence, ref.rule)
        return ref.to_xcom()
