"""The release's tables as canonical CSV: fixed columns, rows sorted by the caller, '\n' line ends,
empty cells for missing values, nested values as canonical JSON. Same rows, same bytes: a table is
hashed into the manifest, so a release built twice from the same catalog is byte-identical.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from curation.confighash import canonical_json

SERIES_COLUMNS = ("series", "patient", "study", "site", "split", "format", "modality", "kind", "body_part", "n_files",
                  "content_sha256", "final_decision", "decision_source", "decision_reason", "reviewers",
                  "model_decision", "quality_metrics", "attributes")
READING_COLUMNS = ("round", "series", "reader", "reader_passes_qc", "record", "label", "ordinal", "value",
                   "confidence", "seconds", "roi_kind", "instance", "frame", "x0", "y0", "x1", "y1", "points",
                   "is_gold")
CONSENSUS_COLUMNS = ("round", "series", "label", "method", "ordinal", "value", "posterior", "n_readers",
                     "n_positive", "x0", "y0", "x1", "y1")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list, tuple)):
        return canonical_json(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def to_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return out.getvalue().encode()


def from_csv(data: bytes) -> list[dict[str, str]]:
    """Rows as text (what diff compares); empty cells are ''."""
    return list(csv.DictReader(io.StringIO(data.decode())))


__all__ = ["CONSENSUS_COLUMNS", "READING_COLUMNS", "SERIES_COLUMNS", "from_csv", "to_csv"]
