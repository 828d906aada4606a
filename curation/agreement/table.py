"""The long reading table, one row per reading: `item,label,annotator,value` with optional
`confidence` (0-100), `seconds`, `ai_probability` and `gold`. Every statistic, consensus and reward
reads this one validated shape, so errors in the input are reported once, naming the column and the
rows, instead of surfacing later as a wrong kappa.

Also reads the MarkIt proof-of-concept wide CSV (one column per annotator) into the long table.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

KEYS = ("item", "label", "annotator")
REQUIRED = (*KEYS, "value")
OPTIONAL = ("confidence", "seconds", "ai_probability", "gold")
MARKIT_META = ("Pseudo ground truth", "ai_prediction", "case", "label")
_SHOWN_ROWS = 5


class TableError(ValueError):
    """The reading table breaks a rule; the message names the column and the first bad rows."""


@dataclass(frozen=True)
class Ratings:
    """One label's readings as an items x annotators array (NaN where a reader did not read)."""

    items: list[str]
    annotators: list[str]
    values: np.ndarray  # float, shape (n_items, n_annotators)


@dataclass(frozen=True)
class Readings:
    """A validated long table: keys are strings, `value` int 0/1, optional columns typed."""

    frame: pd.DataFrame

    @property
    def labels(self) -> list[str]:
        return sorted(self.frame["label"].unique())

    @property
    def annotators(self) -> list[str]:
        return sorted(self.frame["annotator"].unique())

    def ratings(self, label: str | None = None, column: str = "value",
                annotators: list[str] | None = None) -> Ratings:
        """Pivot one label (or all labels, items being item-label pairs) to items x annotators."""
        frame = self.frame if label is None else self.frame[self.frame["label"] == label]
        if frame.empty:
            raise TableError(f"no readings for label {label!r}")
        if column not in frame.columns:
            raise TableError(f"column {column!r} is absent")
        unit = frame["item"] if label is not None else frame["item"] + "\x1f" + frame["label"]
        wide = frame.assign(_unit=unit).pivot(index="_unit", columns="annotator", values=column)
        names = annotators if annotators is not None else sorted(wide.columns)
        wide = wide.reindex(columns=names)
        items = [str(u).replace("\x1f", "/") for u in wide.index]
        return Ratings(items, list(names), wide.to_numpy(dtype=float))


def _rows(mask: pd.Series) -> str:
    """The first bad rows as 1-based data-row numbers (CSV line = row + 1 with the header)."""
    bad = np.flatnonzero(mask.to_numpy()) + 1
    shown = ", ".join(str(r) for r in bad[:_SHOWN_ROWS])
    more = f" and {len(bad) - _SHOWN_ROWS} more" if len(bad) > _SHOWN_ROWS else ""
    return f"row {shown}{more}" if len(bad) == 1 else f"rows {shown}{more}"


def _binary(frame: pd.DataFrame, column: str, allow_missing: bool) -> pd.Series:
    """Accept 0/1, true/false, yes/no (any case); anything else is an error naming the rows."""
    text = frame[column].astype("string").str.strip().str.lower()
    mapped = text.map({"1": 1, "0": 0, "1.0": 1, "0.0": 0, "true": 1, "false": 0, "yes": 1, "no": 0})
    missing = text.isna() | (text == "")
    bad = mapped.isna() & ~missing if allow_missing else mapped.isna()
    if bad.any():
        raise TableError(f"column {column!r} must be 0/1 (or true/false, yes/no): {_rows(bad)}")
    return mapped.astype("Int64") if allow_missing else mapped.astype(int)


def _numeric(frame: pd.DataFrame, column: str, low: float, high: float) -> pd.Series:
    """A number in [low, high] or empty; text and out-of-range values are errors."""
    raw = frame[column]
    number = pd.to_numeric(raw, errors="coerce")
    present = raw.notna() & (raw.astype("string").str.strip() != "")
    bad = present & (number.isna() | (number < low) | (number > high))
    if bad.any():
        raise TableError(f"column {column!r} must be a number in [{low:g}, {high:g}]: {_rows(bad)}")
    return number.astype(float)


def validate(frame: pd.DataFrame) -> Readings:
    """Check and type a long reading table. Unknown extra columns are kept untouched."""
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise TableError(f"missing required column(s) {missing}; have {list(frame.columns)}")
    out = frame.reset_index(drop=True).copy()
    for key in KEYS:
        text = out[key].astype("string").str.strip()
        empty = text.isna() | (text == "")
        if empty.any():
            raise TableError(f"column {key!r} is empty: {_rows(empty)}")
        out[key] = text.astype(object).astype(str)
    out["value"] = _binary(out, "value", allow_missing=False)
    if "confidence" in out.columns:
        out["confidence"] = _numeric(out, "confidence", 0, 100)
    if "seconds" in out.columns:
        out["seconds"] = _numeric(out, "seconds", 0, np.inf)
    if "ai_probability" in out.columns:
        out["ai_probability"] = _numeric(out, "ai_probability", 0, 1)
        group = out.groupby(["item", "label"])["ai_probability"]
        bad = (group.transform("max") != group.transform("min")).fillna(False)
        if bad.any():
            raise TableError(f"column 'ai_probability' must be the same on every row of an item and label: "
                             f"{_rows(bad)}")
    if "gold" in out.columns:
        out["gold"] = _binary(out, "gold", allow_missing=True)
    duplicated = out.duplicated(list(KEYS), keep=False)
    if duplicated.any():
        raise TableError(f"more than one reading for the same item, label and annotator: {_rows(duplicated)}")
    return Readings(out)


def as_frame(readings: Readings | pd.DataFrame) -> pd.DataFrame:
    """The validated frame of `readings`: a `Readings` as it is, a raw table validated first. Lets
    every library function take either, so callers with a plain DataFrame need no extra step."""
    return readings.frame if isinstance(readings, Readings) else validate(readings).frame


def read_long(path: str | Path) -> Readings:
    """Read and validate a long CSV (`item,label,annotator,value[,...]`)."""
    return validate(pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""]))


def markit_annotators(path: str | Path) -> list[str]:
    """The annotator columns of a MarkIt wide CSV (every column but the case/label/AI ones)."""
    header = pd.read_csv(path, nrows=0).columns
    return [c for c in header if c not in MARKIT_META]


def read_markit(path: str | Path, annotators: list[str] | None = None) -> Readings:
    """MarkIt's `agreement_list.csv` (one True/False column per annotator, `case`, `label`,
    `ai_prediction`) as the long table; `annotators` picks columns (default: all of them)."""
    wide = pd.read_csv(path, dtype=str)
    names = annotators if annotators is not None else markit_annotators(path)
    absent = [c for c in (*names, "case", "label") if c not in wide.columns]
    if absent:
        raise TableError(f"MarkIt table lacks column(s) {absent}")
    keep = ["case", "label", *names] + (["ai_prediction"] if "ai_prediction" in wide.columns else [])
    long = wide[keep].melt(id_vars=[c for c in keep if c not in names], value_vars=names,
                           var_name="annotator", value_name="value")
    long = long.rename(columns={"case": "item", "ai_prediction": "ai_probability"})
    columns = [*REQUIRED] + (["ai_probability"] if "ai_probability" in long.columns else [])
    return validate(long[columns])
