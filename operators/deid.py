"""DeidOperator: de-identify one series from the raw zone into the deid zone (`curation.pipeline.deid`)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from operators.base import SeriesOperator


class DeidOperator(SeriesOperator):
    """De-identify the series `ref` names with the profile `profile` (a name in include/deid/)."""

    template_fields: Sequence[str] = ("profile", "options")

    def __init__(self, *, profile: str | None = None, options: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.profile, self.options = profile, options

    def execute(self, context: Any) -> dict[str, Any]:
        from curation.pipeline import deid

        hook = self.hook()
        result = deid.run(self.series_ref(), hook.get_store(), hook.get_catalog(),
                          {"profile": self.profile, "options": list(self.options or ())})
        self.log.info("deid of series %s: %s%s (%d instances quarantined)%s", result.ref.series_id, result.status,
                      f", {result.reason}" if result.reason else "", result.ref.quarantined or 0,
                      " [result reused]" if result.reused else "")
        return result.ref.to_xcom()
