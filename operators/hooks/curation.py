"""CurationHook: the catalog and the store a task works on.

Configuration, in order: the Airflow connection `curate_default` if it exists (its URI is the catalog
URL; extra `{"store_uri": ...}`), else CURATE_DB_URL / CURATE_STORE_URI, else the embedded default
under CURATE_HOME. Opened lazily: nothing happens at DAG-parse time.
"""
from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from curation.catalog import Catalog
    from curation.store import Store


class CurationHook(BaseHook):
    conn_name_attr = "curate_conn_id"
    default_conn_name = "curate_default"
    conn_type = "curate"
    hook_name = "Curation platform"

    def __init__(self, curate_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.curate_conn_id = curate_conn_id

    @cached_property
    def _settings(self) -> tuple[str | None, str | None]:
        try:
            conn = self.get_connection(self.curate_conn_id)
        except Exception:  # noqa: BLE001 - no such connection: environment defaults apply
            return None, None
        extra = conn.extra_dejson or {}
        return conn.get_uri() if conn.host or conn.schema else None, extra.get("store_uri")

    def get_catalog(self) -> Catalog:
        from curation.catalog import open_catalog

        return open_catalog(self._settings[0])

    def get_store(self) -> Store:
        from curation.config import default_store_uri
        from curation.store import open_store

        return open_store(self._settings[1] or default_store_uri())
