"""Curation library: catalog, stores, ingest, synthetic site, CLI. Never imports Airflow."""
