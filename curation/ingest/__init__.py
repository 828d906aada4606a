"""Ingest: bring files from a folder, an archive, an S3 prefix or a DICOMweb server into the raw
zone (by content hash) and the catalog, validating each and quarantining the bad ones."""
from curation.ingest.pipeline import IngestSummary, ingest
from curation.ingest.sources import Limits, SourceError, source_kind

__all__ = ["IngestSummary", "Limits", "SourceError", "ingest", "source_kind"]
