"""The per-series stages one after another, in process (what the DAG runs as three mapped tasks)."""
from __future__ import annotations

from curation.catalog import Catalog
from curation.pipeline import SeriesRef, classify, deid, quality
from curation.store import Store


def curate_series(catalog: Catalog, store: Store, series_id: int) -> SeriesRef:
    """deid -> classify -> quality of one catalogued series; the last stage's reference."""
    ref = SeriesRef(series_id)
    for stage in (deid, classify, quality):
        ref = stage.run(ref, store, catalog).ref
    return ref
