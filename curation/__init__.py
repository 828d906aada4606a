"""Curation library: catalog, stores, ingest, de-identification stage, classification, quality, registration. Never imports Airflow, the annotation service, the CLI or the synthetic hospital."""
