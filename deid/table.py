"""PS3.15 Table E.1-1 (Application Level Confidentiality Profile Attributes) read from the
machine-readable copy in ``include/deid/``; the standard's edition travels with it."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from deid._paths import include_dir

TABLE_FILE = "annex_e_table_e1_1.json"

#: Option column names of Table E.1-1 (the Basic Profile column is ``basic``).
OPTION_COLUMNS = (
    "retain_safe_private",
    "retain_uids",
    "retain_device_identity",
    "retain_institution_identity",
    "retain_patient_characteristics",
    "retain_full_dates",
    "retain_modified_dates",
    "clean_descriptors",
    "clean_structured_content",
    "clean_graphics",
)


@dataclass(frozen=True)
class TableRow:
    """One attribute of Table E.1-1. ``mask`` is non-zero for repeating groups (50xx, 60xx)."""

    tag: int
    mask: int
    name: str
    keyword: str
    actions: dict[str, str] = field(hash=False)

    def matches(self, tag: int) -> bool:
        return (tag & self.mask) == self.tag


@dataclass(frozen=True)
class AnnexETable:
    edition: str
    edition_options_columns: str
    sources: dict[str, str]
    rows: tuple[TableRow, ...]
    private_actions: dict[str, str]

    def exact(self) -> dict[int, TableRow]:
        return {r.tag: r for r in self.rows if r.mask == 0xFFFFFFFF}

    def repeating(self) -> list[TableRow]:
        return [r for r in self.rows if r.mask != 0xFFFFFFFF]


def _parse_tag(text: str) -> tuple[int, int]:
    g, e = text.strip("()").split(",")
    value = int((g + e).replace("x", "0"), 16)
    mask = int("".join("0" if c == "x" else "F" for c in g + e), 16)
    return value, mask


@lru_cache(maxsize=4)
def load_table(path: str | None = None) -> AnnexETable:
    """Load Table E.1-1 (cached: the table is read once per process)."""
    p = Path(path) if path else include_dir() / TABLE_FILE
    data = json.loads(p.read_text())
    rows = []
    for r in data["rows"]:
        tag, mask = _parse_tag(r["tag"])
        actions = {k: r[k] for k in ("basic", *OPTION_COLUMNS) if k in r}
        rows.append(TableRow(tag, mask, r.get("name", ""), r.get("keyword", ""), actions))
    return AnnexETable(
        edition=data["edition"],
        edition_options_columns=data.get("edition_options_columns", data["edition"]),
        sources=data.get("sources", {}),
        rows=tuple(rows),
        private_actions=data.get("private_attributes", {"basic": "X"}),
    )
