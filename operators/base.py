"""What every stage operator shares: the connection it works on (catalog and store)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from operators.hooks.curation import CurationHook

if TYPE_CHECKING:
    from curation.pipeline.refs import SeriesRef


class CurationOperator(BaseOperator):
    """A task over one `curation.pipeline` stage, on the catalog and store of `curate_conn_id`."""

    ui_color = "#e8f8f5"

    def __init__(self, *, curate_conn_id: str = CurationHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.curate_conn_id = curate_conn_id

    def hook(self) -> CurationHook:
        return CurationHook(self.curate_conn_id)


class SeriesOperator(CurationOperator):
    """A task on one series, named by the reference (`SeriesRef` as XCom JSON) the task before returned."""

    def __init__(self, *, ref: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ref = ref

    def series_ref(self) -> SeriesRef:
        from curation.pipeline.refs import SeriesRef

        return SeriesRef.from_xcom(self.ref)
