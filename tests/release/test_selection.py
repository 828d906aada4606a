"""The release's selection: by the site of the source a series was ingested from, and the image
formats a release may hold (DICOM always; NIfTI conversions on request)."""
from __future__ import annotations

import pytest

from curation.release.build import ReleaseError, ReleaseSpec, build, choose
from curation.release.layout import StoreTree
from curation.release.tables import SERIES_SCHEMA, read_rows
from tests.release.world import add_series, series_uid


def test_sites_select_the_series_ingested_from_those_sites(world):
    catalog, store = world
    north = add_series(catalog, store, 1, patient="ANON01", site="north")
    add_series(catalog, store, 2, patient="ANON02", site="south")
    east = add_series(catalog, store, 3, patient="ANON03", site="east")
    assert [c.key for c in choose(catalog, ReleaseSpec("chest"))] == [series_uid(n) for n in (1, 2, 3)]
    chosen = choose(catalog, ReleaseSpec("chest", sites=("north", "east")))
    assert [c.series_id for c in chosen] == [north, east]
    assert [c.row["site"] for c in chosen] == ["north", "east"]
    assert choose(catalog, ReleaseSpec("chest", sites=("west",))) == []
    with pytest.raises(ReleaseError, match="matches no de-identified series"):
        build(catalog, store, ReleaseSpec("chest", sites=("west",)))
    built = build(catalog, store, ReleaseSpec("chest", sites=("south",)))
    rows = read_rows(StoreTree(store, built.prefix).read("tables/series.parquet"), SERIES_SCHEMA)
    assert [(r["series"], r["site"]) for r in rows] == [(series_uid(2), "south")]


def test_selection_json_records_sites_and_formats_sorted():
    spec = ReleaseSpec("chest", sites=("south", "north"), formats=("nifti", "dicom"))
    assert spec.selection_json()["sites"] == ["north", "south"]
    assert spec.selection_json()["formats"] == ["dicom", "nifti"]
    assert ReleaseSpec("chest").selection_json()["formats"] == ["dicom"]


def test_formats_are_checked():
    with pytest.raises(ReleaseError, match=r"unknown release formats \['png'\]"):
        ReleaseSpec("chest", formats=("dicom", "png"))
    with pytest.raises(ReleaseError, match="always holds the de-identified DICOM"):
        ReleaseSpec("chest", formats=("nifti",))
