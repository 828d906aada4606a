"""The plugin's tests use the DAG tests' Airflow home (SQLite metadata DB, migrated once per session)."""
from tests.dags.conftest import airflow_env  # noqa: F401 - a fixture, shared
