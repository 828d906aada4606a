"""The stage layer of curate_source: one module per stage, each `run(ref, store, catalog, config) ->
StageResult`, over the domain packages (deid, curation.ingest, .classify, .quality, .registration).

A stage runs once per key (`idempotency`: stage, version, subject, input content hash, hash of the
resolved configuration); what travels between tasks is a typed reference (`refs`), small JSON
without PHI. Operators (operators/) are a few lines over these modules; nothing here imports Airflow.
"""
from curation.pipeline.refs import SeriesRef, StudyRef
from curation.pipeline.result import StageResult

__all__ = ["SeriesRef", "StageResult", "StudyRef"]
