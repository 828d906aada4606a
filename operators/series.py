"""Per-series stage operators of curate_source (mapped over the series an ingest saw): deid,
classify, quality, and the run summary. Each is a few lines over `curation.series_stages`."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from operators.hooks.curation import CurationHook


class _SeriesStageOperator(BaseOperator):
    ui_color = "#e8f8f5"

    def __init__(self, *, curate_conn_id: str = CurationHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.curate_conn_id = curate_conn_id

    def _hook(self) -> CurationHook:
        return CurationHook(self.curate_conn_id)


class DeidOperator(_SeriesStageOperator):
    """De-identify one series (by catalog id) from the raw zone into the deid zone."""

    template_fields: Sequence[str] = ("series_id", "profile", "options")

    def __init__(self, *, series_id: int, profile: str = "default", options: Sequence[str] = (), **kwargs: Any):
        super().__init__(**kwargs)
        self.series_id, self.profile, self.options = series_id, profile, options

    def execute(self, context: Any) -> dict[str, Any]:
        from curation.series_stages import deid_series

        hook = self._hook()
        ref = deid_series(hook.get_catalog(), hook.get_store(), int(self.series_id), profile=self.profile,
                          options=list(self.options or ()))
        self.log.info("deid of series %s: %s%s (%d instances quarantined)%s", self.series_id, ref["status"],
                      f", {ref['reason']}" if ref["reason"] else "", ref["quarantined"],
                      " [result reused]" if ref["reused"] else "")
        return ref


class ClassifyOperator(_SeriesStageOperator):
    """Series kind and attributes of a de-identified series."""

    def __init__(self, *, ref: dict[str, Any], **kwargs: Any):
        super().__init__(**kwargs)
        self.ref = ref

    def execute(self, context: Any) -> dict[str, Any]:
        from curation.series_stages import classify_deid_series

        hook = self._hook()
        out = classify_deid_series(hook.get_catalog(), hook.get_store(), self.ref)
        self.log.info("classify of series %s: %s (confidence %s, rule %s)", out["series_id"], out.get("kind"),
                      out.get("confidence"), out.get("rule"))
        return out


class QualityOperator(_SeriesStageOperator):
    """Quality metrics and the approve / review / exclude decision."""

    def __init__(self, *, ref: dict[str, Any], **kwargs: Any):
        super().__init__(**kwargs)
        self.ref = ref

    def execute(self, context: Any) -> dict[str, Any]:
        from curation.series_stages import assess_deid_series

        hook = self._hook()
        out = assess_deid_series(hook.get_catalog(), hook.get_store(), self.ref)
        self.log.info("quality of series %s (%s): %s%s", out["series_id"], out.get("kind"), out.get("decision"),
                      f" because {out['decision_reason']}" if out.get("decision_reason") else "")
        # The outputs list was only needed downstream of deid; keep XCom small from here on.
        out.pop("outputs", None)
        return out


class CurationSummaryOperator(BaseOperator):
    """Counts of the run by stage outcome, logged for operators (no PHI)."""

    template_fields: Sequence[str] = ("results", "registrations")
    ui_color = "#fdebd0"

    def __init__(self, *, results: Sequence[dict[str, Any]], registrations: Sequence[dict[str, Any]] = (),
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.results = results
        self.registrations = registrations

    def execute(self, context: Any) -> dict[str, Any]:
        from collections import Counter

        results = list(self.results or [])
        registrations = list(self.registrations or [])
        summary = {
            "series": len(results),
            "deid": dict(Counter(r.get("status") for r in results)),
            "kinds": dict(Counter(r.get("kind") or "unclassified" for r in results)),
            "decisions": dict(Counter(r.get("decision") or "none" for r in results)),
            "studies_registered": sum(1 for r in registrations if r.get("status") == "ok"),
            "derived_series": sum(int(r.get("derived") or 0) for r in registrations),
        }
        self.log.info("curation summary: %s", summary)
        for r in results:
            if r.get("decision") in ("review", "exclude"):
                self.log.info("series %s (%s) sent to %s: %s", r["series_id"], r.get("kind"), r["decision"],
                              r.get("decision_reason"))
        return summary


class StudiesOperator(BaseOperator):
    """Bundle per-series results by study (the unit of co-registration)."""

    template_fields: Sequence[str] = ("results",)

    def __init__(self, *, results: Sequence[dict[str, Any]], **kwargs: Any):
        super().__init__(**kwargs)
        self.results = results

    def execute(self, context: Any) -> list[dict[str, Any]]:
        from curation.study_stages import group_by_study

        studies = group_by_study(list(self.results or []))
        self.log.info("%d studies to register", len(studies))
        return studies


class RegisterOperator(_SeriesStageOperator):
    """Motion correction and co-registration of one study; derived series go to the derived zone."""

    template_fields: Sequence[str] = ("config",)

    def __init__(self, *, study: dict[str, Any], config: dict[str, Any] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.study, self.config = study, config

    def execute(self, context: Any) -> dict[str, Any]:
        from curation.study_stages import register_study_stage

        hook = self._hook()
        out = register_study_stage(hook.get_catalog(), hook.get_store(), self.study, dict(self.config or {}) or None)
        self.log.info("register: %s, %s derived series (fixed image: %s)%s", out["status"], out.get("derived"),
                      out.get("fixed_reason"), " [result reused]" if out.get("reused") else "")
        return out
