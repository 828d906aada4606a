"""CurationHook: the catalog and the store a task works on.

Configuration: `curation.settings` (the CURATE_* variables; the embedded default under CURATE_HOME
when none is set), overridden by the Airflow connection `curate_default` if it exists (its URI is the
catalog URL; extra `{"store_uri": ..., "site": ...}`), mapped by `Settings.with_connection`. Opened
lazily: nothing happens at DAG-parse time.
"""
from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from curation.settings import DEFAULT_CONNECTION_ID

if TYPE_CHECKING:
    from curation.catalog import Catalog
    from curation.settings import Settings
    from curation.store import Store


class CurationHook(BaseHook):
    conn_name_attr = "curate_conn_id"
    default_conn_name = DEFAULT_CONNECTION_ID
    conn_type = "curate"
    hook_name = "Curation platform"

    def __init__(self, curate_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.curate_conn_id = curate_conn_id

    @cached_property
    def settings(self) -> Settings:
        """The environment's settings with the connection (when there is one) mapped onto them."""
        from curation.settings import settings

        current = settings()
        try:
            conn = self.get_connection(self.curate_conn_id)
        except Exception:  # noqa: BLE001 - no such connection: the environment's settings apply
            return current
        # get_uri() appends the extra as a query; the extra is mapped on its own (store, site)
        uri = conn.get_uri().split("?", 1)[0] if conn.host or conn.schema else None
        return current.with_connection(uri, conn.extra_dejson or {}, conn_id=self.curate_conn_id)

    def get_catalog(self) -> Catalog:
        from curation.catalog import open_catalog

        return open_catalog(self.settings.db_url)

    def get_store(self) -> Store:
        from curation.config import default_store_uri
        from curation.store import open_store

        return open_store(self.settings.store_uri or default_store_uri())
