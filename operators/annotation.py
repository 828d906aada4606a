"""Operators of an annotation round, each a few lines over `curation.pipeline` (select, dispatch,
collect, analyse) and the annotation service's hook: select -> dispatch -> wait (deferrable) ->
collect -> analyse (labels) or apply the review (quality review).

XCom between them: the selection (round name, schema key, `ItemRef`s), then the round (`RoundRef`
with the service's project id), then counts; catalog ids and pseudonyms only.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowSkipException

from operators.base import CurationOperator
from operators.hooks.annotation import AnnotationServiceHook
from operators.triggers.annotation import (
    DEADLINE, DONE_STATES, ERROR, AnnotationRoundTrigger, parse_deadline, round_counts,
)

#: Round kinds a task serves (the schema's project kind; annotation_schema.PROJECT_KINDS).
LABELS, QUALITY_REVIEW = "labels", "quality_review"
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.:+\-]")


def round_name(dag_id: str, run_id: str) -> str:
    """The round's name on the service and in the catalog: `<dag_id>.<run_id>` in the service's
    alphabet, at most 128 characters. Stable for a DAG run, so a re-run of any task finds the
    round it made instead of making another."""
    name = _NAME_CHARS.sub("-", f"{dag_id}.{run_id}")
    if len(name) > 128:
        name = f"{name[:111]}.{hashlib.sha256(name.encode()).hexdigest()[:16]}"
    return name


class AnnotationOperator(CurationOperator):
    """A round's task: the catalog and store (`curate_conn_id`) and the service (`annotation_conn_id`)."""

    ui_color = "#f4ecf7"

    def __init__(self, *, annotation_conn_id: str = AnnotationServiceHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.annotation_conn_id = annotation_conn_id

    def service(self) -> AnnotationServiceHook:
        return AnnotationServiceHook(self.annotation_conn_id)

    @staticmethod
    def _round(round_: Mapping[str, Any]) -> Any:
        from curation.pipeline.dispatch import RoundRef

        return RoundRef.from_xcom(round_["round"])


class SelectRoundOperator(AnnotationOperator):
    """Choose the round's series from the catalog (`select_series`, or `select_review` for the
    quality-review round); skips the round's tasks when nothing is to be read."""

    template_fields: Sequence[str] = ("project", "schema", "selection")

    def __init__(self, *, project: str, schema: str, selection: Mapping[str, Any] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.project, self.schema, self.selection = project, schema, selection or {}

    def execute(self, context: Any) -> dict[str, Any]:
        from curation.annotation_schema import load_schema
        from curation.pipeline.select import Selection, select_review, select_series

        if not self.project:
            raise AirflowSkipException(f"no annotation project named for {self.schema}: no round")
        schema = load_schema(self.schema)
        name = round_name(context["dag"].dag_id, context["run_id"])
        params = {**dict(self.selection), "project": self.project}
        catalog = self.hook().get_catalog()
        if schema.project_kind == QUALITY_REVIEW:
            selection = Selection.from_params(params)
            refs = select_review(catalog, selection.size, selection.seed, self.project, name)
        else:
            selection = Selection.from_params(params, schema.selection)
            refs = select_series(catalog, selection, name)
        self.log.info("round %s of %s (%s): %d series selected by %s", name, self.project, schema.key, len(refs),
                      selection.to_json())
        if not refs:
            raise AirflowSkipException(f"no series to read in {self.project} for {schema.key} "
                                       f"(selection {selection.to_json()})")
        return {"round_name": name, "project": self.project, "schema": schema.key,
                "selection": selection.to_json(), "items": [r.to_xcom() for r in refs]}


class DispatchRoundOperator(AnnotationOperator):
    """Plan the round in the catalog and register it with its items on the service, both keyed by
    the round's name: a re-run registers nothing twice (the service answers `existing`)."""

    template_fields: Sequence[str] = ("selected", "readers_per_item", "gold_share", "deadline_hours", "predictions")

    def __init__(self, *, selected: Mapping[str, Any], readers_per_item: int = 3, gold_share: float = 0.0,
                 deadline_hours: float = 72.0, predictions: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.selected, self.readers_per_item = selected, readers_per_item
        self.gold_share, self.deadline_hours = gold_share, deadline_hours
        self.predictions = predictions  # the predict task's result (None when it was skipped)

    def execute(self, context: Any) -> dict[str, Any]:
        from curation.annotation_schema import load_schema
        from curation.pipeline.dispatch import plan_round, record_dispatch, service_items

        sel = self.selected
        schema = load_schema(sel["schema"])
        hook = self.hook()
        catalog = hook.get_catalog()
        settings = {"readers_per_item": int(self.readers_per_item), "gold_share": float(self.gold_share),
                    "deadline_hours": float(self.deadline_hours), "selection": sel["selection"]}
        model = (self.predictions or {}).get("model")
        if model:
            settings["model"] = dict(model)
        ref = plan_round(catalog, project=sel["project"], name=sel["round_name"], schema=schema, items=sel["items"],
                         params=settings)
        bodies = service_items(catalog, hook.get_store(), sel["items"],
                               quality_context=schema.project_kind == QUALITY_REVIEW)
        service = self.service()
        project_id = service.project_id(sel["project"])
        # A round that exists keeps its settings on the service (deadline included): only new items are added.
        deadline = datetime.now(timezone.utc) + timedelta(hours=float(self.deadline_hours))
        answer = service.create_round(project_id, {"name": sel["round_name"], "readers_per_item": settings[
            "readers_per_item"], "gold_share": settings["gold_share"], "deadline": deadline.isoformat()}, bodies)
        result = record_dispatch(catalog, ref.round_id, answer)
        suggested = 0
        if model:
            from curation.assist.predictions import round_bodies

            suggested = service.put_predictions(round_bodies(catalog, hook.get_store(), ref.round_id, model))
            self.log.info("model %s %s: predictions registered with %d items", model["name"], model["version"],
                          suggested)
        self.log.info("round %s dispatched to project %s as round %s: %d items registered now, %d already there; "
                      "deadline %s", sel["round_name"], sel["project"], answer["round"]["number"],
                      len(answer["created"]), len(answer["existing"]), answer["round"]["deadline"])
        return {"round": result.refs[0].to_xcom(), "project_id": project_id, "created": len(answer["created"]),
                "existing": len(answer["existing"]), "deadline": answer["round"]["deadline"], "suggested": suggested}


class WaitForRoundOperator(AnnotationOperator):
    """Wait for people to read the round without holding a worker slot: defers to
    `AnnotationRoundTrigger`, resumes in `execute_complete`. However the wait ends (complete,
    closed by a manager, or the deadline with part of the round read) the round is closed on the
    service, so no reading arrives after collect, and the outcome is recorded in the catalog and
    the result: `partial` says whether items were left unread."""

    template_fields: Sequence[str] = ("dispatched", "poll_interval_s")

    def __init__(self, *, dispatched: Mapping[str, Any], poll_interval_s: float = 60.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dispatched, self.poll_interval_s = dispatched, poll_interval_s

    def execute(self, context: Any) -> dict[str, Any]:
        ref = self._round(self.dispatched)
        project_id = int(self.dispatched["project_id"])
        status = self.service().get_round(project_id, ref.service_round_number)
        deadline = parse_deadline(status.get("deadline"))
        if status["state"] in DONE_STATES:
            return self._finish(status["state"], round_counts(status))
        if deadline is not None and datetime.now(timezone.utc) >= deadline:
            return self._finish(DEADLINE, round_counts(status))
        self.log.info("deferring until round %s of project %s is read (deadline %s): %s of %s items complete",
                      ref.service_round_number, project_id, status.get("deadline"), status["complete_items"],
                      status["items"])
        self.defer(trigger=AnnotationRoundTrigger(project_id=project_id, round_number=ref.service_round_number,
                                                  deadline=deadline.isoformat() if deadline else None,
                                                  poll_interval_s=float(self.poll_interval_s),
                                                  annotation_conn_id=self.annotation_conn_id),
                   method_name="execute_complete")

    def execute_complete(self, context: Any, event: Mapping[str, Any]) -> dict[str, Any]:
        if event.get("status") == ERROR:
            raise AirflowException(f"waiting for the round failed: {event.get('message')}")
        return self._finish(str(event["status"]), dict(event.get("round") or {}))

    def _finish(self, outcome: str, seen: Mapping[str, Any]) -> dict[str, Any]:
        from curation.pipeline.dispatch import record_close

        ref = self._round(self.dispatched)
        closed = self.service().close_round(int(self.dispatched["project_id"]), ref.service_round_number)
        result = record_close(self.hook().get_catalog(), ref.round_id, closed)
        metrics = dict(result.metrics)
        if outcome == DEADLINE:
            self.log.warning("round %s closed at its deadline with %s of %s items complete (%s of %s readings); "
                             "going on with what was read", ref.name, metrics["complete_items"], metrics["items"],
                             metrics["readings_submitted"], metrics["readings_required"])
        else:
            self.log.info("round %s %s: %s of %s items complete; closed", ref.name, outcome, metrics["complete_items"],
                          metrics["items"])
        return {**dict(self.dispatched), "round": result.refs[0].to_xcom(),
                "wait": {"outcome": outcome, "partial": metrics["partial"], "at_wait_end": round_counts(seen),
                         **{k: metrics[k] for k in ("items", "complete_items", "readings_required",
                                                    "readings_submitted")}}}


class CollectRoundOperator(AnnotationOperator):
    """Pull the closed round's readings (answers, regions, confidence, time) or quality decisions from
    the service's export into the catalog, each once, readers as pseudonyms."""

    template_fields: Sequence[str] = ("waited",)

    def __init__(self, *, waited: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.waited = waited

    def execute(self, context: Any) -> dict[str, Any]:
        from curation.pipeline.collect import collect, collect_quality
        from curation.reid_vault import store_secret

        ref = self._round(self.waited)
        hook, service = self.hook(), self.service()
        project_id = int(self.waited["project_id"])
        secret = store_secret(hook.get_store())
        if ref.kind == QUALITY_REVIEW:
            rows = service.export_quality(project_id, ref.service_round_number)
            result = collect_quality(hook.get_catalog(), ref.round_id, rows, secret)
        else:
            rows = service.export_rows(project_id, ref.service_round_number)
            result = collect(hook.get_catalog(), ref.round_id, rows, secret)
        self.log.info("collected round %s: %s", ref.name, result.metrics)
        return {**dict(self.waited), "collected": dict(result.metrics)}


class AnalyseRoundOperator(AnnotationOperator):
    """QC -> agreement -> consensus -> rewards of a labels round, written to the catalog
    (`curation.pipeline.analyse`); for a quality-review round, the human decisions made the series'
    final decisions. Sets the `extra` of its outlet assets: round id, counts, kappa."""

    template_fields: Sequence[str] = ("collected", "n_boot")

    def __init__(self, *, collected: Mapping[str, Any], n_boot: int = 1000, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.collected, self.n_boot = collected, n_boot

    def execute(self, context: Any) -> dict[str, Any]:
        from curation.pipeline.analyse import AnalysisConfig, analyse, apply_quality_review, reader_reports

        ref = self._round(self.collected)
        catalog = self.hook().get_catalog()
        counts = self.collected.get("collected") or {}
        if ref.kind == QUALITY_REVIEW:
            metrics = dict(apply_quality_review(catalog, ref.round_id).metrics)
            self.log.info("quality review %s: final decisions %s", ref.name, metrics)
        else:
            if not counts.get("answers"):
                raise AirflowSkipException(f"round {ref.name} has no readings to analyse "
                                           f"(wait: {self.collected.get('wait')})")
            metrics = dict(analyse(catalog, ref.round_id, AnalysisConfig(n_boot=int(self.n_boot))).metrics)
            for reader, report in reader_reports(catalog, ref.round_id).items():
                self.log.info("reader %s: passes QC %s, flags %s, reward %.2f", reader, report["passes_qc"],
                              report["qc_flags"], report["reward"])
        wait = self.collected.get("wait") or {}
        extra = {"round_id": ref.round_id, "project": ref.project, "round": ref.name, "kind": ref.kind,
                 "schema": ref.schema, "service_round": ref.service_round_number, "outcome": wait.get("outcome"),
                 "partial": wait.get("partial"), "items": ref.n_items, "complete_items": wait.get("complete_items"),
                 **{k: v for k, v in metrics.items() if k != "round_id"}}
        for asset in self.outlets:
            context["outlet_events"][asset].extra.update(extra)
        self.log.info("round %s analysed: %s", ref.name, extra)
        return extra


__all__ = ["AnalyseRoundOperator", "CollectRoundOperator", "DispatchRoundOperator", "LABELS", "QUALITY_REVIEW",
           "SelectRoundOperator", "WaitForRoundOperator", "round_name"]
