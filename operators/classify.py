"""ClassifyOperator: series kind and attributes of a batch of de-identified series (`curation.pipeline.classify`)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from operators.base import CurationOperator


class ClassifyOperator(CurationOperator):
    """Classify the series `refs` names (one deid task's references); returns them for quality."""

    def __init__(self, *, refs: Sequence[dict[str, Any]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.refs = refs

    def execute(self, context: Any) -> list[dict[str, Any]]:
        from curation.pipeline import classify
        from curation.pipeline.ingest import run_batch

        hook = self.hook()
        store, catalog = hook.get_store(), hook.get_catalog()

        def one(ref: Any) -> Any:
            result = classify.run(ref, store, catalog)
            self.log.info("classify of series %s: %s (confidence %s, rule %s)", result.ref.series_id,
                          result.ref.kind, result.ref.confidence, result.ref.rule)
            return result

        return run_batch(one, self.refs)
