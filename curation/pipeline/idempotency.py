"""Run once per key: the one idempotency mechanism of the platform's stages.

A stage's key is (stage, stage version, subject, input content hash, config_hash of the RESOLVED
configuration: files read, weights named by content hash, see `curation.confighash`). A rerun with
the same key returns the stored record and does no work; a new version, new input bytes or an
edited profile, rules or thresholds file runs again. Each record commits together with its lineage
event (`curation.catalog.add_event`), so the ledger says what ran on what.
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from curation.catalog import Catalog, Instance, StageRecord, add_event
from curation.confighash import config_hash
from curation.pipeline.result import StageResult


@dataclass(frozen=True)
class StageKey:
    """The columns a stage's record is unique on."""

    stage: str
    stage_version: str
    subject_type: str
    subject_id: int
    input_hash: str
    config_hash: str

    @classmethod
    def of(cls, stage: str, version: str, subject_type: str, subject_id: int, input_hash: str,
           config: Mapping[str, Any] | None) -> StageKey:
        """The key of `stage` at `version` on a subject, with `config` the resolved configuration."""
        return cls(str(stage), str(version), str(subject_type), int(subject_id), input_hash, config_hash(config))

    def columns(self) -> dict[str, Any]:
        return {"stage": self.stage, "stage_version": self.stage_version, "subject_type": self.subject_type,
                "subject_id": self.subject_id, "input_hash": self.input_hash, "config_hash": self.config_hash}


def series_input_hash(catalog: Catalog, series_id: int) -> str:
    """SHA-256 over the sorted content hashes of a series' instances (its input identity)."""
    with catalog.session() as s:
        shas = sorted(s.scalars(select(Instance.sha256).where(Instance.series_id == series_id)))
    return hashlib.sha256("\n".join(shas).encode()).hexdigest()


def _stored(row: StageRecord) -> StageResult:
    return StageResult(status=row.status, metrics=row.metrics, reason=row.reason, output_uri=row.output_uri,
                       reused=True, record_id=row.id)


def find(catalog: Catalog, key: StageKey) -> StageResult | None:
    """The stored result of this key, if the stage ran on it before."""
    with catalog.session() as s:
        row = s.scalars(select(StageRecord).filter_by(**key.columns())).first()
        return None if row is None else _stored(row)


def run_once(catalog: Catalog, key: StageKey, work: Callable[[], StageResult]) -> StageResult:
    """Run `work` once per key and record its result with a lineage event; return the stored result
    on a rerun (or when a concurrent run of the same key recorded first)."""
    prior = find(catalog, key)
    if prior is not None:
        return prior
    started = time.monotonic()
    fresh = work()
    metrics = dict(fresh.metrics)
    metrics.setdefault("seconds", round(time.monotonic() - started, 3))
    subject = f"{key.subject_type}:{key.subject_id}"
    for attempt in range(10):
        try:
            with catalog.session() as s:
                existing = s.scalars(select(StageRecord).filter_by(**key.columns())).first()
                if existing is not None:
                    return _stored(existing)
                row = StageRecord(status=fresh.status, metrics=metrics, reason=fresh.reason,
                                  output_uri=fresh.output_uri, **key.columns())
                s.add(row)
                add_event(s, stage=key.stage, action=f"{key.stage}:{fresh.status}", subject=subject,
                          inputs=[key.input_hash], outputs=fresh.output_hashes,
                          details={"stage_version": key.stage_version, "config_hash": key.config_hash})
                s.flush()
                record_id = row.id
            break
        except IntegrityError:
            time.sleep(0.05 * (attempt + 1))
    else:
        raise RuntimeError(f"could not record the {key.stage} result of {subject}")
    return StageResult(status=fresh.status, metrics=metrics, reason=fresh.reason, output_uri=fresh.output_uri,
                       output_hashes=list(fresh.output_hashes), reused=False, record_id=record_id)


__all__ = ["StageKey", "find", "run_once", "series_input_hash"]
