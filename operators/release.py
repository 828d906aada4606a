"""Operators of a dataset release, each a few lines over `curation.release` and its glue
`curation.pipeline.release`: select -> build (staging) -> verify -> approval gate -> (data owner's
approval) -> publish, which emits the `dataset_release` asset.

XCom between them: the spec as Params, then the staged build (`StagedRelease`: name, version,
prefix, manifest hash, counts); no pixels, no PHI. A refusal (version already published, empty
selection, a staging copy that is not the build) fails the task at once without retries: trying
again cannot change the answer.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow.providers.standard.operators.branch import BaseBranchOperator
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk.exceptions import AirflowFailException

from operators.base import CurationOperator
from operators.hooks.curation import CurationHook


class _ReleaseOperator(CurationOperator):
    ui_color = "#fef5e7"

    def _refusals(self) -> tuple[type[Exception], ...]:
        from curation.release.build import ReleaseError

        return (ReleaseError, ValueError)


class SelectReleaseOperator(_ReleaseOperator):
    """Resolve the form into a release spec, name the version it gets and count the series it
    selects; fails before anything is written when the version exists or nothing matches."""

    template_fields: Sequence[str] = ("release",)

    def __init__(self, *, release: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.release = release

    def execute(self, context: Any) -> dict[str, Any]:
        from curation.pipeline.release import select, spec_from_params, spec_to_json

        hook = self.hook()
        try:
            spec = spec_from_params(self.release)
            result = select(hook.get_catalog(), hook.get_store(), spec)
        except self._refusals() as exc:
            raise AirflowFailException(str(exc)) from exc
        self.log.info("release %s@%s: %s series of %s patients selected by %s (previous %s)", spec.name,
                      result.metrics["version"], result.metrics["series"], result.metrics["patients"],
                      result.metrics["selection"], result.metrics["previous"])
        return {"spec": {**spec_to_json(spec), "version": result.metrics["version"]}, **result.metrics}


class BuildReleaseOperator(_ReleaseOperator):
    """Build the selected release into `releases/<name>/.staging-<version>/` (deterministic: the
    same selection gives the same manifest hash; a rebuild of the version replaces the staging copy)."""

    template_fields: Sequence[str] = ("selected",)

    def __init__(self, *, selected: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.selected = selected

    def execute(self, context: Any) -> dict[str, Any]:
        from curation.pipeline.release import StagedRelease, spec_from_params
        from curation.release.build import build

        hook = self.hook()
        try:
            done = build(hook.get_catalog(), hook.get_store(), spec_from_params(self.selected["spec"]))
        except self._refusals() as exc:
            raise AirflowFailException(str(exc)) from exc
        self.log.info("built %s@%s into %s: manifest SHA-256 %s, counts %s", done.name, done.version, done.prefix,
                      done.manifest_sha256, done.counts)
        return StagedRelease(done.name, done.version, done.prefix, done.manifest_sha256, done.previous,
                             dict(done.counts)).to_xcom()


class VerifyReleaseOperator(_ReleaseOperator):
    """Verify the staging copy before anyone approves it: every checksum against its manifest and the
    build's hash, and every content check (dciodvfy on labels, label references, PHI rules, raw-zone
    objects); fails naming each file and problem."""

    template_fields: Sequence[str] = ("staged",)

    def __init__(self, *, staged: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.staged = staged

    def execute(self, context: Any) -> dict[str, Any]:
        from curation.pipeline.release import StagedRelease, verify_staged
        from curation.vocabulary import StageStatus

        staged = StagedRelease.from_xcom(self.staged)
        hook = self.hook()
        result = verify_staged(hook.get_catalog(), hook.get_store(), staged)
        if result.status != StageStatus.OK:
            raise AirflowFailException(f"the staging copy of {staged.name}@{staged.version} failed verification "
                                       f"({len(result.metrics['problems'])} problems): {result.reason}")
        self.log.info("verified %s@%s: %d files match manifest %s and pass the content checks", staged.name,
                      staged.version,
                      result.metrics["files_checked"], staged.manifest_sha256)
        return staged.to_xcom()


class ApprovalGateOperator(BaseBranchOperator):
    """Send the run to the data owner's approval task, or straight to publish when the run's form
    turned approval off (the demo)."""

    template_fields: Sequence[str] = ("require_approval",)
    ui_color = "#fef5e7"

    def __init__(self, *, require_approval: bool | str, approval_task_id: str, publish_task_id: str,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.require_approval = require_approval
        self.approval_task_id, self.publish_task_id = approval_task_id, publish_task_id

    def choose_branch(self, context: Any) -> str:
        required = self.require_approval
        if isinstance(required, str):  # a template rendered as text
            required = required.strip().lower() not in ("false", "0", "no", "")
        self.log.info("approval by a data owner %s", "required" if required else "not required by this run")
        return self.approval_task_id if required else self.publish_task_id


class OwnerApprovalOperator(ApprovalOperator):
    """Airflow's human-in-the-loop `ApprovalOperator` (Approve / Reject in Required Actions or over the
    REST API; Reject skips publish) that also writes the data owner's answer, who and when, to the
    lineage ledger, so a rejected build is on record too."""

    template_fields: Sequence[str] = (*ApprovalOperator.template_fields, "staged")

    def __init__(self, *, staged: Mapping[str, Any], curate_conn_id: str = CurationHook.default_conn_name,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.staged, self.curate_conn_id = staged, curate_conn_id

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        from curation.pipeline.release import StagedRelease, record_approval

        if "error" not in event:  # an answer (a timeout fails in super() with nothing to record)
            # recorded before super(): on Reject it skips publish by raising to the task runner
            self.validate_chosen_options(event["chosen_options"])
            staged = StagedRelease.from_xcom(self.staged)
            details = record_approval(CurationHook(self.curate_conn_id).get_catalog(), staged, event)
            self.log.info("%s@%s: data owner answered %s", staged.name, staged.version, details)
        return super().execute_complete(context, event)


class PublishReleaseOperator(_ReleaseOperator):
    """Record that no approval was asked (when the run turned it off; the approval task records its
    answer itself), publish the staged build atomically (manifest
    last; refused when the version exists) and set the `extra` of its outlet assets: name, version,
    manifest SHA-256, location and counts."""

    template_fields: Sequence[str] = ("staged", "approval")

    def __init__(self, *, staged: Mapping[str, Any], approval: Mapping[str, Any] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.staged, self.approval = staged, approval

    def execute(self, context: Any) -> dict[str, Any]:
        from curation.pipeline.release import StagedRelease, record_approval
        from curation.release.publish import publish

        staged = StagedRelease.from_xcom(self.staged)
        hook = self.hook()
        catalog, store = hook.get_catalog(), hook.get_store()
        answer = self.approval if isinstance(self.approval, Mapping) else None
        approval = record_approval(catalog, staged, None) if answer is None else {
            "required": True, "chosen": list(answer.get("chosen_options") or []),
            "by": (answer.get("responded_by_user") or {}).get("name")}
        try:
            done = publish(catalog, store, staged.name, staged.version)
        except self._refusals() as exc:
            raise AirflowFailException(str(exc)) from exc
        if done.manifest_sha256 != staged.manifest_sha256:
            raise AirflowFailException(f"published {done.name}@{done.version} has manifest {done.manifest_sha256}, "
                                       f"not the verified build's {staged.manifest_sha256}")
        extra = {"name": done.name, "version": done.version, "manifest_sha256": done.manifest_sha256,
                 "location": done.location, "files": done.files, "previous": staged.previous,
                 "counts": dict(staged.counts), "approval": approval}
        for asset in self.outlets:
            context["outlet_events"][asset].extra.update(extra)
        self.log.info("published %s@%s at %s (manifest SHA-256 %s)", done.name, done.version, done.location,
                      done.manifest_sha256)
        return extra


__all__ = ["ApprovalGateOperator", "BuildReleaseOperator", "OwnerApprovalOperator", "PublishReleaseOperator",
           "SelectReleaseOperator", "VerifyReleaseOperator"]
