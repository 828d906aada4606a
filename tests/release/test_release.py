"""Releases end to end on a real catalog and a real LocalStore: deterministic builds, immutable
publication, verification that names each broken file, diffs that list exactly the planted changes,
and the `curate release` commands."""
from __future__ import annotations

import json

import pytest

from curate.main import main
from curation.catalog import verify_chain
from curation.catalog.models import LineageEvent
from curation.release.build import ReleaseError, ReleaseSpec, build
from curation.release.diff import diff_trees
from curation.release.layout import DirTree, StoreTree, published_versions, release_prefix
from curation.release.publish import ReleaseExists, publish
from curation.release.tables import READING_SCHEMA, SERIES_SCHEMA, read_rows
from curation.release.verify import verify_tree
from curation.store import LocalStore
from curation.vocabulary import QualityDecision, Zone
from tests.release.world import add_round, add_series, human_exclude, series_uid, set_consensus


def _zone(store: LocalStore) -> dict[str, bytes]:
    return {k: store.get_bytes(Zone.RELEASES, k) for k in store.list(Zone.RELEASES)}


def _populate(catalog, store):
    a = add_series(catalog, store, 1, patient="ANON01")
    b = add_series(catalog, store, 2, patient="ANON02")
    c = add_series(catalog, store, 3, patient="ANON03", files=3)
    a2 = add_series(catalog, store, 4, patient="ANON01")  # a second series of patient 1
    add_series(catalog, store, 5, patient="ANON04", decision=QualityDecision.EXCLUDE)
    rnd = add_round(catalog, [a, b, c], {a: 1, b: 0, c: 1})
    return a, b, c, a2, rnd


def test_building_twice_gives_byte_identical_releases(world):
    catalog, store = world
    _populate(catalog, store)
    first = build(catalog, store, ReleaseSpec("chest"))
    files = _zone(store)
    second = build(catalog, store, ReleaseSpec("chest"))
    assert second.manifest_sha256 == first.manifest_sha256
    assert _zone(store) == files
    assert (first.version, first.previous) == ("1.0.0", None)
    prefix = first.prefix
    manifest = json.loads(files[prefix + "manifest.json"])
    paths = [f["path"] for f in manifest["files"]]
    assert paths == sorted(paths) and "manifest.json" not in paths
    assert {f["role"] for f in manifest["files"]} == {"image", "table", "provenance", "changes", "manifest",
                                                   "croissant", "datasheet"}
    # the excluded series is not released; the approved ones are, laid out by pseudonymous patient
    images = [p for p in paths if p.startswith("images/")]
    assert len(images) == 2 + 2 + 3 + 2
    assert f"images/ANON03/2.25.93/{series_uid(3)}/2.25.830.dcm" in images
    assert not any("ANON04" in p for p in paths)
    series = read_rows(files[prefix + "tables/series.parquet"], SERIES_SCHEMA)
    assert [r["series"] for r in series] == [series_uid(1), series_uid(4), series_uid(2), series_uid(3)]
    assert {r["final_decision"] for r in series} == {"approve"} and {r["decision_source"] for r in series} == {"model"}
    # a patient's series share its split
    assert len({r["split"] for r in series if r["patient"] == "ANON01"}) == 1
    readings = read_rows(files[prefix + "tables/readings.parquet"], READING_SCHEMA)
    assert len(readings) == 6 and {r["reader"] for r in readings} == {"rdr-a", "rdr-b"}
    agreement = json.loads(files[prefix + "tables/agreement.json"])
    assert list(agreement.values())[0]["summary"] == {"fleiss_kappa": 0.61, "items": 3}
    provenance = json.loads(files[prefix + "provenance.json"])
    assert provenance["stages"]["deid"] == {"versions": ["1"], "config_hashes": ["c" * 64]}
    assert provenance["lineage_head"] and provenance["rounds"][0]["name"] == "run-1"
    assert provenance["code"]["package"] and provenance["selection"]["decisions"] == ["approve"]
    # build events are in the ledger, the chain holds, and they do not feed the next build's provenance
    with catalog.session() as s:
        assert [e.action for e in s.query(LineageEvent).filter_by(stage="release")] == ["build", "build"]
    assert verify_chain(catalog).ok


def test_publish_is_atomic_and_a_second_publish_changes_nothing(world):
    catalog, store = world
    _populate(catalog, store)
    built = build(catalog, store, ReleaseSpec("chest"))
    done = publish(catalog, store, "chest", built.version)
    assert done.manifest_sha256 == built.manifest_sha256
    assert published_versions(store, "chest") == [published_versions(store, "chest")[0]]
    assert not list(store.list(Zone.RELEASES, "chest/.staging-"))  # staging cleared
    assert verify_tree(StoreTree(store, release_prefix("chest", "1.0.0"))).ok
    # stage the same version again by hand (a stale build) and publish: refused, nothing changed
    for key in list(store.list(Zone.RELEASES, "chest/1.0.0/")):
        store.put_bytes(Zone.RELEASES, key.replace("chest/1.0.0/", "chest/.staging-1.0.0/"),
                        store.get_bytes(Zone.RELEASES, key))
    before = _zone(store)
    with catalog.session() as s:
        events = s.query(LineageEvent).count()
    with pytest.raises(ReleaseExists, match="already published"):
        publish(catalog, store, "chest", "1.0.0")
    assert _zone(store) == before
    with catalog.session() as s:
        assert s.query(LineageEvent).count() == events
    with pytest.raises(ReleaseError, match="already published"):
        build(catalog, store, ReleaseSpec("chest", version="1.0.0"))
    assert _zone(store) == before


def test_an_interrupted_publish_is_not_a_release_and_publishing_again_completes_it(world):
    catalog, store = world
    _populate(catalog, store)
    built = build(catalog, store, ReleaseSpec("chest"))
    staged = sorted(store.list(Zone.RELEASES, built.prefix))
    for key in staged[:3]:  # the first files copied, then the process died (no manifest yet)
        store.put_bytes(Zone.RELEASES, key.replace(built.prefix, "chest/1.0.0/"), b"partial")
    store.put_bytes(Zone.RELEASES, "chest/1.0.0/images/stray.dcm", b"stray")
    assert published_versions(store, "chest") == []
    publish(catalog, store, "chest", "1.0.0")
    report = verify_tree(StoreTree(store, "chest/1.0.0/"), expected_sha256=built.manifest_sha256)
    assert report.ok and report.files_checked == len(staged) - 1


def test_verify_names_a_flipped_byte_a_deleted_file_and_an_added_file(world, tmp_path, capsys):
    catalog, store = world
    _populate(catalog, store)
    publish(catalog, store, "chest", build(catalog, store, ReleaseSpec("chest")).version)
    root = store.local_path(Zone.RELEASES, "chest/1.0.0")
    flipped = root / f"images/ANON02/2.25.92/{series_uid(2)}/2.25.820.dcm"
    data = bytearray(flipped.read_bytes())
    data[5] ^= 0x01
    flipped.write_bytes(bytes(data))
    (root / "tables/readings.parquet").unlink()
    (root / "images/ANON02/extra.dcm").write_bytes(b"stray")
    report = verify_tree(DirTree(root))
    assert not report.ok
    assert sorted((p.kind, p.path) for p in report.problems) == [
        ("altered", f"images/ANON02/2.25.92/{series_uid(2)}/2.25.820.dcm"),
        ("extra", "images/ANON02/extra.dcm"), ("missing", "tables/readings.parquet")]
    for target in ("chest@1.0.0", str(root)):
        assert main(["release", "verify", target, "--store", str(store.root)]) == 1
        out = capsys.readouterr().out
        assert "2.25.820.dcm" in out and "extra.dcm" in out and "tables/readings.parquet" in out and "FAILED" in out
    assert main(["release", "verify", "chest@9.9.9", "--store", str(store.root)]) == 2
    assert "published versions of chest: 1.0.0" in capsys.readouterr().err


def test_diff_lists_exactly_the_planted_changes(world, capsys):
    catalog, store = world
    a, b, c, a2, rnd = _populate(catalog, store)
    publish(catalog, store, "chest", build(catalog, store, ReleaseSpec("chest")).version)
    new = add_series(catalog, store, 6, patient="ANON05")  # added
    human_exclude(catalog, b)  # removed: a person's exclude overrides the model's approve
    store.put_bytes(Zone.DEID, f"ANON03/2.25.93/{series_uid(3)}/2.25.831.dcm", b"re-de-identified")  # revised
    set_consensus(catalog, rnd, a, 0)  # label changed
    built = build(catalog, store, ReleaseSpec("chest", bump="minor"))
    assert (built.version, built.previous) == ("1.1.0", "1.0.0")
    publish(catalog, store, "chest", built.version)
    diff = diff_trees(StoreTree(store, "chest/1.0.0/"), StoreTree(store, "chest/1.1.0/"))
    assert diff.added == [series_uid(new)]
    assert diff.removed == [series_uid(b)]
    assert diff.revised == {series_uid(c): ["content_sha256"]}
    assert [(x["series"], x["label"], x["old"]["value"], x["new"]["value"]) for x in diff.labels] == \
        [(series_uid(a), "nodule", 1, 0)]
    assert diff.counts["series"] == {"old": 4, "new": 4, "delta": 0}
    assert diff.counts["patients"] == {"old": 3, "new": 3, "delta": 0}
    assert diff.counts["readings"] == {"old": 6, "new": 4, "delta": -2}
    changes = store.get_bytes(Zone.RELEASES, "chest/1.1.0/CHANGES.md").decode()
    assert "since chest@1.0.0" in changes and f"`{series_uid(new)}`" in changes and "| series | 4 | 4 | +0 |" in changes
    assert main(["release", "diff", "chest@1.0.0", "chest@1.1.0", "--json", "--store", str(store.root)]) == 0
    assert json.loads(capsys.readouterr().out)["series_removed"] == [series_uid(b)]
    assert main(["release", "list", "--json", "--store", str(store.root)]) == 0
    assert json.loads(capsys.readouterr().out) == [{"name": "chest", "versions": ["1.0.0", "1.1.0"]}]
    assert main(["release", "show", "chest@1.1.0", "--json", "--store", str(store.root)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["manifest_sha256"] == built.manifest_sha256 and shown["counts"]["series"] == 4
    a_split = {r["patient"]: r["split"] for r in read_rows(store.get_bytes(Zone.RELEASES, "chest/1.0.0/tables/series.parquet"), SERIES_SCHEMA)}
    b_split = {r["patient"]: r["split"] for r in read_rows(store.get_bytes(Zone.RELEASES, "chest/1.1.0/tables/series.parquet"), SERIES_SCHEMA)}
    assert all(b_split[p] == s for p, s in a_split.items() if p in b_split)


def test_the_build_command_publishes_and_explains_bad_input(world, tmp_path, capsys):
    catalog, store = world
    _populate(catalog, store)
    db = catalog.url
    args = ["release", "build", "--name", "chest", "--db", db, "--store", str(store.root), "--json"]
    assert main(args + ["--publish", "--kinds", "CR"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["publish"]["manifest_sha256"] == out["build"]["manifest_sha256"]
    assert verify_tree(StoreTree(store, "chest/1.0.0/")).ok
    publish_args = ["release", "publish", "--db", db, "--store", str(store.root)]
    assert main(publish_args + ["chest@1.0.0"]) == 2
    assert "already published" in capsys.readouterr().err
    assert main(publish_args + ["chest@1.1.0"]) == 2
    assert "no build of chest@1.1.0" in capsys.readouterr().err
    assert main(args[:-1] + ["--bump", "patch"]) == 0
    assert "publish with: curate release publish chest@1.0.1" in capsys.readouterr().out
    assert main(publish_args + ["chest@1.0.1"]) == 0
    assert "published chest@1.0.1" in capsys.readouterr().out
    assert verify_tree(StoreTree(store, "chest/1.0.1/")).ok
    assert main(args + ["--kinds", "FLAIR"]) == 2
    assert "matches no de-identified series" in capsys.readouterr().err
    assert main(args + ["--version", "1.0"]) == 2
    assert "MAJOR.MINOR.PATCH" in capsys.readouterr().err
    assert main(["release", "show", "chest1.0.0", "--store", str(store.root)]) == 2
    assert "NAME@VERSION" in capsys.readouterr().err


def test_the_build_command_selects_sites_and_states_license_and_purpose(world, capsys):
    catalog, store = world
    north = [add_series(catalog, store, n, patient=f"ANON1{n}", site="north") for n in (1, 2)]
    add_series(catalog, store, 3, patient="ANON13", site="south")
    args = ["release", "build", "--name", "north", "--db", catalog.url, "--store", str(store.root), "--json",
            "--sites", "north", "--license", "CC-BY-4.0", "--description", "Chest radiographs of the north wing."]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)["build"]
    assert out["counts"]["series"] == len(north)
    staged = StoreTree(store, out["prefix"])
    sites = {r["site"] for r in read_rows(staged.read("tables/series.parquet"), SERIES_SCHEMA)}
    assert sites == {"north"}
    croissant = json.loads(staged.read("croissant.json"))
    assert croissant["license"] == "CC-BY-4.0" and croissant["description"].startswith("Chest radiographs")
    assert main(args[:-6] + ["--formats", "nifti"]) == 2
    assert "dicom" in capsys.readouterr().err
