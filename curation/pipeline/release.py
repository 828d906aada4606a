"""The release stage's glue for the `release_dataset` DAG: the form's Params as a `ReleaseSpec`, the
staged build as a typed reference (`StagedRelease`) that travels in XCom, and the ledger events of
the steps the release library does not record itself (select, verify of the staging copy, the data
owner's approval). Build and publish record their own events (`curation.release.build/publish`).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from curation.catalog import Catalog, append_event
from curation.pipeline.refs import XcomRef
from curation.pipeline.result import StageResult
from curation.release.build import FORMAT_DICOM, STAGE, ReleaseError, ReleaseSpec, choose
from curation.release.layout import published_versions
from curation.release.splits import SplitPlan
from curation.release.verify import verify_build
from curation.release.version import Version, check_name, next_version
from curation.store import Store
from curation.vocabulary import StageStatus


def spec_from_params(params: Mapping[str, Any]) -> ReleaseSpec:
    """The release the DAG's form asks for. `version` (explicit, empty: the bump of the newest
    published), `kinds`, `decisions`, `rounds`, `sites` (the ingest sources' sites; empty: any),
    `split_ratios` ({split: ratio}), `split_seed` and `formats` (dicom always; nifti adds conversions)."""
    ratios = params.get("split_ratios") or {}
    plan = SplitPlan(tuple((str(k), float(v)) for k, v in ratios.items()), int(params.get("split_seed") or 0)) \
        if ratios else SplitPlan(seed=int(params.get("split_seed") or 0))
    version = str(params.get("version") or "").strip() or None
    formats = tuple(str(f) for f in params.get("formats") or ()) or (FORMAT_DICOM,)
    return ReleaseSpec(name=check_name(str(params["name"])), bump=str(params.get("bump") or "minor"),
                       version=str(Version.parse(version)) if version else None,
                       kinds=tuple(str(k) for k in params.get("kinds") or ()),
                       decisions=tuple(str(d) for d in params.get("decisions") or ()),
                       rounds=tuple(int(r) for r in params.get("rounds") or ()),
                       sites=tuple(str(s) for s in params.get("sites") or ()), splits=plan, formats=formats)


def spec_to_json(spec: ReleaseSpec) -> dict[str, Any]:
    """The spec as the Params that make it again (XCom between select and build)."""
    return {"name": spec.name, "bump": spec.bump, "version": spec.version, "kinds": list(spec.kinds),
            "decisions": list(spec.decisions), "rounds": list(spec.rounds), "sites": list(spec.sites),
            "split_ratios": dict(spec.splits.ratios), "split_seed": spec.splits.seed, "formats": list(spec.formats)}


@dataclass(frozen=True)
class StagedRelease(XcomRef):
    """A build waiting in its staging prefix: what verify, approval and publish are about."""

    name: str
    version: str
    prefix: str
    manifest_sha256: str
    previous: str | None = None
    counts: dict[str, Any] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        return f"release:{self.name}@{self.version}"


def select(catalog: Catalog, store: Store, spec: ReleaseSpec) -> StageResult:
    """The series the spec selects and the version a build will get; refused (ReleaseError) before
    anything is written when nothing matches or the version is already published."""
    published = published_versions(store, spec.name)
    previous = published[-1] if published else None
    version = Version.parse(spec.version) if spec.version else next_version(previous, spec.bump)
    if version in published:
        raise ReleaseError(f"release {spec.name}@{version} is already published; published releases are immutable "
                           "(leave the version empty to bump the newest one)")
    chosen = choose(catalog, spec)
    if not chosen:
        raise ReleaseError(f"the selection {spec.selection_json()} matches no de-identified series")
    metrics = {"version": str(version), "previous": str(previous) if previous else None, "series": len(chosen),
               "patients": len({c.patient for c in chosen}), "selection": spec.selection_json()}
    append_event(catalog, stage=STAGE, action="select", subject=f"release:{spec.name}@{version}",
                 inputs=[f"series:{c.series_id}" for c in chosen], details=metrics)
    return StageResult(metrics=metrics)


def verify_staged(catalog: Catalog, store: Store, staged: StagedRelease) -> StageResult:
    """The verify step before approval: every checksum of the staging copy against its manifest and
    the build's manifest hash, and every content check (`verify_build`: labels valid by dciodvfy and
    referencing released instances, images de-identified and not raw-zone objects). The result's
    status is failed, naming each problem, when the copy is not the build or fails a check."""
    report = verify_build(catalog, store, staged.name, staged.version, expected_sha256=staged.manifest_sha256)
    problems = [str(p) for p in report.problems]
    append_event(catalog, stage=STAGE, action="verify", subject=staged.subject,
                 outputs=[f"sha256:{report.manifest_sha256}"] if report.manifest_sha256 else [],
                 details={"prefix": staged.prefix, "files_checked": report.files_checked, "ok": report.ok,
                          "problems": problems[:50]})
    return StageResult(status=StageStatus.OK if report.ok else StageStatus.FAILED,
                       metrics={"files_checked": report.files_checked, "problems": problems},
                       reason="; ".join(problems[:10]) or None,
                       output_hashes=[report.manifest_sha256] if report.manifest_sha256 else [])


def record_approval(catalog: Catalog, staged: StagedRelease, answer: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ledger's record of the approval step: the data owner's answer (Approve or Reject, who,
    when), or that the run did not ask for one."""
    if answer:
        who = answer.get("responded_by_user") or {}
        details = {"required": True, "chosen": list(answer.get("chosen_options") or []),
                   "by": who.get("name") or who.get("id"), "at": str(answer.get("responded_at"))}
        actor = str(details["by"] or "curate")
    else:
        details, actor = {"required": False}, "curate"
    append_event(catalog, stage=STAGE, action="approval", subject=staged.subject, actor=actor,
                 outputs=[f"sha256:{staged.manifest_sha256}"], details=details)
    return details


__all__ = ["StagedRelease", "record_approval", "select", "spec_from_params", "spec_to_json", "verify_staged"]
