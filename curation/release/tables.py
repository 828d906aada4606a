"""The release's tables as Parquet with fixed Arrow schemas: explicit column types, rows sorted by the
caller, no pandas index metadata, one compression setting. Same rows, same bytes: a table is hashed
into the manifest, so a release built twice from the same catalog (with the same pyarrow) is
byte-identical.

Columns whose values have no fixed shape (quality metrics, classifier attributes, freehand points)
are canonical JSON text; lists of names (reviewers, a reader's QC flags) are Parquet lists.
"""
from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from curation.confighash import canonical_json

#: Where each table lives in a release.
SERIES_TABLE, READINGS_TABLE, CONSENSUS_TABLE = "tables/series.parquet", "tables/readings.parquet", "tables/consensus.parquet"
AGREEMENT_TABLE = "tables/agreement.json"

TEXT, INT, FLOAT, BOOL, NAMES = pa.string(), pa.int64(), pa.float64(), pa.bool_(), pa.list_(pa.string())


def _schema(*columns: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(name, kind, nullable=True) for name, kind in columns])


_BOX = (("x0", FLOAT), ("y0", FLOAT), ("x1", FLOAT), ("y1", FLOAT))
SERIES_SCHEMA = _schema(
    ("series", TEXT), ("patient", TEXT), ("study", TEXT), ("site", TEXT), ("split", TEXT), ("format", TEXT),
    ("modality", TEXT), ("kind", TEXT), ("body_part", TEXT), ("n_files", INT), ("content_sha256", TEXT),
    ("final_decision", TEXT), ("decision_source", TEXT), ("decision_reason", TEXT), ("reviewers", NAMES),
    ("model_decision", TEXT), ("quality_metrics", TEXT), ("attributes", TEXT))
READING_SCHEMA = _schema(
    ("round", INT), ("series", TEXT), ("reader", TEXT), ("reader_passes_qc", BOOL), ("reader_qc_flags", NAMES),
    ("record", TEXT), ("label", TEXT), ("ordinal", INT), ("value", INT), ("confidence", FLOAT), ("seconds", FLOAT),
    ("roi_kind", TEXT), ("instance", INT), ("frame", INT), *_BOX, ("points", TEXT), ("is_gold", BOOL))
CONSENSUS_SCHEMA = _schema(
    ("round", INT), ("series", TEXT), ("label", TEXT), ("method", TEXT), ("ordinal", INT), ("value", INT),
    ("posterior", FLOAT), ("n_readers", INT), ("n_positive", INT), *_BOX, ("instance", INT), ("frame", INT),
    ("mask", TEXT))
#: Consensus columns added after the first releases (a STAPLE row's slice and mask): a release built
#: before them reads with these columns null instead of being refused.
CONSENSUS_MASK_COLUMNS = ("instance", "frame", "mask")
#: manifest.parquet: the manifest's entries as a table (see curation.release.manifest).
MANIFEST_SCHEMA = _schema(("path", TEXT), ("size", INT), ("sha256", TEXT), ("role", TEXT))

SERIES_COLUMNS = tuple(SERIES_SCHEMA.names)
READING_COLUMNS = tuple(READING_SCHEMA.names)
CONSENSUS_COLUMNS = tuple(CONSENSUS_SCHEMA.names)
#: Text columns holding canonical JSON (objects, point lists, masks' run lengths), decoded by the readers.
JSON_COLUMNS = ("quality_metrics", "attributes", "points", "mask")


def _cell(column: str, value: Any) -> Any:
    if value is not None and column in JSON_COLUMNS:
        return canonical_json(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def to_parquet(rows: Iterable[Mapping[str, Any]], schema: pa.Schema) -> bytes:
    """Rows (dicts; a missing key is a null) as Parquet bytes of exactly `schema`."""
    table = pa.Table.from_pylist([{c: _cell(c, row.get(c)) for c in schema.names} for row in rows], schema=schema)
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd", compression_level=3, use_dictionary=True, write_statistics=True,
                   row_group_size=1 << 20, store_schema=True)
    return out.getvalue()


def read_arrow(data: bytes, schema: pa.Schema) -> pa.Table:
    """A release table as Arrow, refused unless it has the documented columns (cast to their types)."""
    table = pq.read_table(io.BytesIO(data))
    if schema.equals(CONSENSUS_SCHEMA):
        for column in CONSENSUS_MASK_COLUMNS:
            if column not in table.column_names:
                table = table.append_column(schema.field(column), pa.nulls(len(table), schema.field(column).type))
    missing = [c for c in schema.names if c not in table.column_names]
    if missing:
        raise ValueError(f"table lacks the documented columns {missing}")
    return table.select(schema.names).cast(schema)


def read_rows(data: bytes, schema: pa.Schema) -> list[dict[str, Any]]:
    """Rows as Python values (None for nulls; JSON columns decoded): what diff compares."""
    rows = read_arrow(data, schema).to_pylist()
    for row in rows:
        for column in JSON_COLUMNS:
            if isinstance(row.get(column), str):
                row[column] = json.loads(row[column])
    return rows


__all__ = ["AGREEMENT_TABLE", "CONSENSUS_COLUMNS", "CONSENSUS_MASK_COLUMNS", "CONSENSUS_SCHEMA", "CONSENSUS_TABLE", "JSON_COLUMNS",
           "MANIFEST_SCHEMA", "READINGS_TABLE", "READING_COLUMNS", "READING_SCHEMA", "SERIES_COLUMNS", "SERIES_SCHEMA",
           "SERIES_TABLE", "read_arrow", "read_rows", "to_parquet"]
