"""Release tables are Parquet with fixed Arrow types: the same rows give the same bytes, nulls stay
nulls, no pandas metadata rides along, and manifest.parquet is manifest.json's entries but itself."""
from __future__ import annotations

import io
import json

import pyarrow.parquet as pq

from curation.release.build import ReleaseSpec, build
from curation.release.layout import StoreTree
from curation.release.manifest import MANIFEST_PARQUET
from curation.release.reader import read_table
from curation.release.tables import MANIFEST_SCHEMA, READING_SCHEMA, SERIES_SCHEMA, read_rows, to_parquet
from tests.release.world import add_round, add_series

ROWS = [{"round": 1, "series": "2.25.1", "reader": "rdr-a", "reader_passes_qc": True, "reader_qc_flags": ["slow"],
         "record": "roi", "label": "nodule", "ordinal": 0, "value": None, "confidence": 0.5, "seconds": 3.25,
         "roi_kind": "freehand", "instance": 2, "frame": None, "x0": 1.0, "y0": 2.0, "x1": 3.0, "y1": 4.5,
         "points": [[1, 2], [3, 4]], "is_gold": False},
        {"round": 1, "series": "2.25.2", "reader": "rdr-b", "label": "nodule", "record": "label", "value": 1}]


def test_same_rows_same_bytes_with_the_documented_types():
    data = to_parquet(ROWS, READING_SCHEMA)
    assert to_parquet([dict(r) for r in ROWS], READING_SCHEMA) == data
    parquet = pq.read_table(io.BytesIO(data))
    assert parquet.schema.equals(READING_SCHEMA) and b"pandas" not in (parquet.schema.metadata or {})
    rows = read_rows(data, READING_SCHEMA)
    assert rows[0]["points"] == [[1, 2], [3, 4]] and rows[0]["reader_qc_flags"] == ["slow"]
    assert rows[1]["confidence"] is None and rows[1]["reader_qc_flags"] is None and rows[1]["value"] == 1
    frame = read_table(data, READING_SCHEMA)
    assert tuple(frame.columns) == tuple(READING_SCHEMA.names)
    assert {c: str(frame[c].dtype) for c in ("round", "value", "seconds", "is_gold", "reader", "points")} == {
        "round": "Int64", "value": "Int64", "seconds": "Float64", "is_gold": "boolean", "reader": "string",
        "points": "object"}
    assert frame["value"].isna().tolist() == [True, False] and frame["reader_qc_flags"][0] == ["slow"]
    empty = read_table(to_parquet([], SERIES_SCHEMA), SERIES_SCHEMA)
    assert len(empty) == 0 and str(empty["n_files"].dtype) == "Int64"


def test_manifest_parquet_lists_every_file_but_the_two_manifests(world):
    catalog, store = world
    a = add_series(catalog, store, 1, patient="ANON01")
    add_round(catalog, [a], {a: 1})
    built = build(catalog, store, ReleaseSpec("chest"))
    tree = StoreTree(store, built.prefix)
    listed = {f["path"]: f for f in json.loads(tree.read("manifest.json"))["files"]}
    assert listed[MANIFEST_PARQUET]["role"] == "manifest"
    table = read_rows(tree.read(MANIFEST_PARQUET), MANIFEST_SCHEMA)
    assert [r["path"] for r in table] == sorted(p for p in listed if p != MANIFEST_PARQUET)
    assert all(listed[r["path"]] == r for r in table)
