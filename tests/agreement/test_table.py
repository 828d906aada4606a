"""The long reading table: typing, errors that name the column and rows, the MarkIt reader."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from curation.agreement.table import TableError, read_markit, validate

MARKIT = Path(__file__).parents[2].parent / "shared" / "reference" / "markit"


def _frame(**extra) -> pd.DataFrame:
    base = {"item": ["1", "1", "2", "2"], "label": ["a"] * 4, "annotator": ["x", "y", "x", "y"],
            "value": ["1", "0", "true", "No"]}
    base.update(extra)
    return pd.DataFrame(base)


def test_values_are_typed_to_zero_one():
    readings = validate(_frame())
    assert readings.frame["value"].tolist() == [1, 0, 1, 0]
    assert readings.annotators == ["x", "y"] and readings.labels == ["a"]


def test_missing_column_is_named():
    with pytest.raises(TableError, match="'value'"):
        validate(_frame().drop(columns="value"))


def test_bad_value_names_column_and_row():
    with pytest.raises(TableError, match=r"'value'.*row 3\b"):
        validate(_frame(value=["1", "0", "maybe", "0"]))


def test_confidence_out_of_range_is_rejected():
    with pytest.raises(TableError, match=r"'confidence'.*row 2\b"):
        validate(_frame(confidence=["10", "101", "50", ""]))


def test_ai_probability_must_agree_within_item_and_label():
    with pytest.raises(TableError, match="ai_probability.*rows 1, 2"):
        validate(_frame(ai_probability=["0.2", "0.3", "0.5", "0.5"]))


def test_duplicate_reading_is_rejected():
    frame = _frame(annotator=["x", "x", "x", "y"])
    with pytest.raises(TableError, match="more than one reading.*rows 1, 2"):
        validate(frame)


def test_gold_may_be_missing():
    readings = validate(_frame(gold=["1", "1", "", ""]))
    assert readings.frame["gold"].isna().tolist() == [False, False, True, True]


def test_ratings_pivot_leaves_missing_readings_nan():
    frame = _frame().iloc[:3]
    ratings = validate(frame).ratings("a")
    assert ratings.items == ["1", "2"] and ratings.annotators == ["x", "y"]
    np.testing.assert_array_equal(ratings.values, [[1, 0], [1, np.nan]])


def test_markit_wide_table_becomes_long():
    if not MARKIT.is_dir():
        pytest.skip(f"MarkIt reference data absent: {MARKIT}")
    names = ["Annotator A", "Annotator B", "Annotator C"]
    readings = read_markit(MARKIT / "agreement_list.csv", names)
    assert len(readings.frame) == 3 * 7000 and readings.annotators == names
    assert len(readings.labels) == 7
    assert readings.ratings().values.shape == (7000, 3)
    ai = readings.ratings(column="ai_probability").values
    assert np.isclose(ai, ai[:, :1]).all() and ((ai >= 0) & (ai <= 1)).all()
