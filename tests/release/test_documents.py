"""A release describes itself: croissant.json is valid Croissant 1.0 for mlcroissant, whose records
are the release's own tables, and DATASHEET.md answers the datasheet questions from the catalog."""
from __future__ import annotations

import json

import mlcroissant as mlc
import pytest

from curation.release.build import ReleaseSpec, build
from curation.release.croissant import LICENSE_PLACEHOLDER
from curation.release.datasheet import why_excluded
from curation.release.tables import READING_SCHEMA, SERIES_SCHEMA, read_rows
from curation.store import LocalStore
from curation.vocabulary import QualityDecision, SeriesKind, Zone
from tests.release.world import add_round, add_series, human_exclude, series_uid


def _release(catalog, store: LocalStore, **spec):
    a = add_series(catalog, store, 1, patient="ANON01", site="north")
    b = add_series(catalog, store, 2, patient="ANON02", kind=SeriesKind.DX, files=3, site="south")
    add_series(catalog, store, 3, patient="ANON03", decision=QualityDecision.EXCLUDE)
    add_series(catalog, store, 4, patient="ANON04", decision=QualityDecision.EXCLUDE)
    c = add_series(catalog, store, 5, patient="ANON05")
    human_exclude(catalog, c)
    add_round(catalog, [a, b], {a: 1, b: 0})
    built = build(catalog, store, ReleaseSpec("chest", **spec))
    return built, store.local_path(Zone.RELEASES, built.prefix.rstrip("/"))


def test_croissant_is_valid_and_its_records_are_the_tables(world):
    catalog, store = world
    built, root = _release(catalog, store, license="CC-BY-4.0", description="Chest radiographs for testing.")
    doc = json.loads((root / "croissant.json").read_text())
    assert (doc["name"], doc["version"], doc["license"], doc["citeAs"]) == ("chest", "1.0.0", "CC-BY-4.0", "chest@1.0.0")
    assert doc["conformsTo"] == "http://mlcommons.org/croissant/1.0"
    files = {d["@id"]: d for d in doc["distribution"]}
    manifest = {f["path"]: f for f in json.loads((root / "manifest.json").read_text())["files"]}
    for path in ("tables/series.parquet", "tables/readings.parquet", "tables/consensus.parquet"):
        assert files[path]["sha256"] == manifest[path]["sha256"]
    assert files["dicom-images"]["includes"] == "images/*/*/*/*.dcm"
    assert "dicom-labels" not in files  # this world's stand-in DICOM take no SR/SEG (test_release_labels does)
    dataset = mlc.Dataset(jsonld=str(root / "croissant.json"))  # raises on invalid metadata
    assert not dataset.metadata.ctx.issues.errors and not dataset.metadata.ctx.issues.warnings
    series = list(dataset.records("series"))
    table = read_rows((root / "tables/series.parquet").read_bytes(), SERIES_SCHEMA)
    assert [r["series/series"].decode() for r in series] == [r["series"] for r in table]
    assert [r["series/n_files"] for r in series] == [r["n_files"] for r in table]
    readings = list(dataset.records("readings"))
    assert len(readings) == len(read_rows((root / "tables/readings.parquet").read_bytes(), READING_SCHEMA)) == 4
    assert {r["readings/reader"].decode() for r in readings} == {"rdr-a", "rdr-b"}


def test_the_datasheet_answers_from_catalog_facts(world):
    catalog, store = world
    built, root = _release(catalog, store)
    text = (root / "DATASHEET.md").read_text()
    for section in ("Motivation", "Composition", "Collection process", "Preprocessing, cleaning and labelling",
                    "Uses", "Distribution", "Maintenance"):
        assert f"## {section}" in text
    assert "2 series of 2 pseudonymous patients, 5 image files" in text
    assert "| CR |" in text and "| DX |" in text  # kinds
    assert "| north | 1 |" in text and "| south | 1 |" in text  # sites
    # exclusions: the model's two and a person's one, by reason
    assert "| exclude | model | model says exclude | 2 |" in text
    assert "| exclude | human | motion | 1 |" in text
    # labelling protocol and agreement from the round
    assert "schema chest_findings v1" in text and "readers per series: min 2, median 2, max 2" in text
    assert "Fleiss' kappa 0.610" in text
    assert f"License: {LICENSE_PLACEHOLDER}." in text and "`chest@1.0.0`" in text
    assert "ANON01" not in text and series_uid(1) not in text  # counted, never listed
    again = build(catalog, store, ReleaseSpec("chest"))
    assert again.manifest_sha256 == built.manifest_sha256 and (root / "DATASHEET.md").read_text() == text


@pytest.mark.parametrize(("source", "reason", "quality", "why"), [
    ("human", "motion blur", None, "motion blur"),
    ("model", "p(degraded) 1.00; cnr 1.7 is 23.5 robust SD below", {"worst_metric": "cnr", "limits_hit": []},
     "quality model: cnr far from clean series of the kind"),
    ("model", "rules", {"limits_hit": ["ct_cnr 1.421 <= exclusion limit 3.95: low contrast-to-noise"]},
     "ct_cnr: low contrast-to-noise"),
    ("model", "x" * 400, {}, "x" * 157 + "..."),
])
def test_exclusion_reasons_group_without_their_numbers(source, reason, quality, why):
    assert why_excluded(source, reason, quality) == why
