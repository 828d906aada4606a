"""Idempotent stage execution: a stage's result is keyed by (stage, version, subject, input content
hash, config hash). A rerun with the same key finds the stored result and skips the work; a new
version, new input bytes or a new config runs again. `config` is the stage's RESOLVED configuration
(files read, weights named by content hash: see `curation.confighash`), so an edited profile,
rules or thresholds file re-runs the stage. Each result commits together with its lineage
event."""
from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from curation.catalog import Catalog, Instance, StageResult, add_event
from curation.confighash import config_hash

log = logging.getLogger(__name__)


def series_input_hash(catalog: Catalog, series_id: int) -> str:
    """SHA-256 over the sorted content hashes of a series' instances (its input identity)."""
    with catalog.session() as s:
        shas = sorted(s.scalars(select(Instance.sha256).where(Instance.series_id == series_id)))
    return hashlib.sha256("\n".join(shas).encode()).hexdigest()


@dataclass
class Outcome:
    """What a stage function returns: status (ok | failed | review | excluded | quarantined),
    metrics (small, JSON-able, no PHI), a reason sentence and where its output went."""

    status: str = "ok"
    metrics: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    output_uri: str | None = None
    output_hashes: list[str] = field(default_factory=list)


@dataclass
class StageRun:
    stage: str
    subject_id: int
    status: str
    metrics: dict[str, Any]
    reason: str | None
    output_uri: str | None
    reused: bool

    def as_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "subject_id": self.subject_id, "status": self.status,
                "reason": self.reason, "reused": self.reused, "metrics": self.metrics}


def run_stage(catalog: Catalog, *, stage: str, version: str, subject_type: str, subject_id: int,
              input_hash: str, config: dict[str, Any] | None, work: Callable[[], Outcome]) -> StageRun:
    """Run `work` once per key; return the stored result on a rerun."""
    key = dict(stage=stage, stage_version=version, subject_type=subject_type, subject_id=subject_id,
               input_hash=input_hash, config_hash=config_hash(config))
    with catalog.session() as s:
        prior = s.scalars(select(StageResult).filter_by(**key)).first()
        if prior is not None:
            return StageRun(stage, subject_id, prior.status, prior.metrics, prior.reason, prior.output_uri, True)
    started = time.monotonic()
    outcome = work()
    metrics = dict(outcome.metrics)
    metrics.setdefault("seconds", round(time.monotonic() - started, 3))
    for attempt in range(10):
        try:
            with catalog.session() as s:
                existing = s.scalars(select(StageResult).filter_by(**key)).first()
                if existing is not None:  # a concurrent run of the same key finished first
                    return StageRun(stage, subject_id, existing.status, existing.metrics, existing.reason,
                                    existing.output_uri, True)
                s.add(StageResult(status=outcome.status, metrics=metrics, reason=outcome.reason,
                                  output_uri=outcome.output_uri, **key))
                add_event(s, stage=stage, action=f"{stage}:{outcome.status}", subject=f"{subject_type}:{subject_id}",
                          inputs=[input_hash], outputs=outcome.output_hashes,
                          details={"stage_version": version, "config_hash": key["config_hash"]})
            break
        except IntegrityError:
            time.sleep(0.05 * (attempt + 1))
    else:
        raise RuntimeError(f"could not record the {stage} result of {subject_type} {subject_id}")
    return StageRun(stage, subject_id, outcome.status, metrics, outcome.reason, outcome.output_uri, False)
