"""DeidOperator: de-identify a batch of series from the raw zone into the deid zone (`curation.pipeline.deid`)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from operators.base import CurationOperator


class DeidOperator(CurationOperator):
    """De-identify the series `refs` names (one batch of ingest's) with the profile `profile` (a name in
    include/deid/); returns their references for classify, in the same order."""

    template_fields: Sequence[str] = ("profile", "options")

    def __init__(self, *, refs: Sequence[dict[str, Any]], profile: str | None = None, options: Sequence[str] = (),
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.refs, self.profile, self.options = refs, profile, options

    def execute(self, context: Any) -> list[dict[str, Any]]:
        from curation.pipeline import deid
        from curation.pipeline.ingest import run_batch

        hook = self.hook()
        store, catalog = hook.get_store(), hook.get_catalog()
        config = {"profile": self.profile, "options": list(self.options or ())}

        def one(ref: Any) -> Any:
            result = deid.run(ref, store, catalog, config)
            self.log.info("deid of series %s: %s%s (%d instances quarantined)%s", result.ref.series_id,
                          result.status, f", {result.reason}" if result.reason else "", result.ref.quarantined or 0,
                          " [result reused]" if result.reused else "")
            return result

        return run_batch(one, self.refs)
