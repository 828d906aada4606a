"""Airflow hooks and operators: thin wrappers over the `curation` and `deid` libraries."""
