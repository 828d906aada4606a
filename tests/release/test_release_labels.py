"""A release's labels/ and its content verification, on a real catalog, a real LocalStore whose raw
zone holds DICOM with a patient's identity and whose deid zone holds the de-identifier's output of
it, and an analysed labels round with findings and a consensus box: the SR and SEG pass dciodvfy and
reference released instances, rebuild byte-identically, the released DICOM pass the content checks,
and a released file with a patient's name put back, or a raw-zone object, fails verification, named."""
from __future__ import annotations

import io
import json
import shutil
from datetime import date

import pydicom
import pytest

from curation.catalog import Catalog, Instance
from curation.catalog.models import AnnotationItem, ConsensusLabel, Reading
from curation.release.build import ReleaseSpec, build
from curation.release.checks import dciodvfy_errors, referenced_instances
from curation.release.layout import StoreTree
from curation.release.manifest import Manifest, ManifestEntry
from curation.release.verify import verify_build, verify_tree
from curation.store import LocalStore
from curation.vocabulary import Zone
from tests.release.world import add_round, add_series, deidentified

pytestmark = pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (dicom3tools) is not installed")
SPEC = ReleaseSpec("chest", released_on=date(2026, 12, 1))


def _add_box(catalog: Catalog, round_id: int, series_id: int, instance: int) -> None:
    """A consensus box on `series_id` and two readers' boxes drawn on its instance `instance`."""
    with catalog.session() as s:
        item = s.query(AnnotationItem).filter_by(round_id=round_id, series_id=series_id).one()
        box = dict(x0=4.0, y0=6.0, x1=20.0, y1=30.0)
        s.add(ConsensusLabel(round_id=round_id, item_id=item.id, label="nodule", method="box_mean", ordinal=0,
                             value=1, n_readers=2, **box))
        for t, reader in enumerate(("rdr-a", "rdr-b")):
            s.add(Reading(round_id=round_id, item_id=item.id, task_id=series_id * 10 + t, record="roi",
                          label="nodule", ordinal=0, reader=reader, roi_kind="box", instance=instance, **box))


@pytest.fixture
def world(tmp_path):
    catalog = Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    store = LocalStore(tmp_path / "store", fsync=False)
    a = add_series(catalog, store, 1, patient="ANON01", files=2)
    b = add_series(catalog, store, 2, patient="ANON02", files=1)
    images = {a: deidentified(catalog, store, a, "Doe^Jane", 2), b: deidentified(catalog, store, b, "Roe^Rick", 1)}
    rnd = add_round(catalog, [a, b], {a: 1, b: 0})
    _add_box(catalog, rnd, a, instance=1)
    yield catalog, store, images[a], images[b]
    catalog.dispose()


def _folder(image: str) -> str:
    return "labels/" + image.split("/", 1)[1].rsplit("/", 1)[0] + "/"


def _sop(image: str) -> str:
    return image.rsplit("/", 1)[1][:-len(".dcm")]


def _replace(store: LocalStore, prefix: str, path: str, data: bytes) -> None:
    """Overwrite a staged file and its manifest entry: its checksum agrees, only its content is wrong."""
    store.put_bytes(Zone.RELEASES, prefix + path, data)
    manifest = Manifest.from_bytes(store.get_bytes(Zone.RELEASES, prefix + "manifest.json"))
    entries = tuple(ManifestEntry.of(path, data) if e.path == path else e for e in manifest.entries)
    store.put_bytes(Zone.RELEASES, prefix + "manifest.json",
                    Manifest(manifest.name, manifest.version, entries).to_bytes())


def _files(store: LocalStore, prefix: str, under: str) -> dict[str, bytes]:
    return {k[len(prefix):]: store.get_bytes(Zone.RELEASES, k) for k in store.list(Zone.RELEASES, prefix + under)}


def test_labels_pass_dciodvfy_and_reference_released_instances(world):
    catalog, store, images_a, images_b = world
    result = build(catalog, store, SPEC)
    labels = _files(store, result.prefix, "labels/")
    a, b = _folder(images_a[0]), _folder(images_b[0])
    assert sorted(labels) == sorted([a + "round-1-seg-1.dcm", a + "round-1-sr.dcm", b + "round-1-sr.dcm"])
    manifest = Manifest.from_bytes(store.get_bytes(Zone.RELEASES, result.prefix + "manifest.json")).by_path()
    assert {manifest[p].role for p in labels} == {"label"}
    croissant = json.loads(store.get_bytes(Zone.RELEASES, result.prefix + "croissant.json"))
    assert {"@type": "cr:FileSet", "includes": "labels/*/*/*/*.dcm"}.items() <= \
        next(d for d in croissant["distribution"] if d["@id"] == "dicom-labels").items()
    assert "3 label objects (DICOM SR/SEG)" in store.get_bytes(Zone.RELEASES, result.prefix + "DATASHEET.md").decode()
    released = {_sop(p) for p in images_a + images_b}
    for path, data in labels.items():
        assert dciodvfy_errors(data) == [], path
        refs = set(referenced_instances(pydicom.dcmread(io.BytesIO(data))))
        assert refs and refs <= released, path
    sr = pydicom.dcmread(io.BytesIO(labels[a + "round-1-sr.dcm"]))
    assert sr.ContentDate == "20261201"
    seg = pydicom.dcmread(io.BytesIO(labels[a + "round-1-seg-1.dcm"]))
    # the readers drew the box on instance 1: the SEG's one frame is there, and nowhere else
    assert {str(f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
            for f in seg.PerFrameFunctionalGroupsSequence} == {_sop(images_a[1])}
    provenance = json.loads(store.get_bytes(Zone.RELEASES, result.prefix + "provenance.json"))
    assert provenance["released_on"] == "2026-12-01" and provenance["labels_skipped"] == []
    # the de-identifier's own output passes every content check
    report = verify_build(catalog, store, "chest", result.version)
    assert report.ok, report.problems


def test_rebuilding_gives_byte_identical_labels(world):
    catalog, store, _, _ = world
    first = build(catalog, store, SPEC)
    labels = _files(store, first.prefix, "labels/")
    second = build(catalog, store, SPEC)
    assert second.manifest_sha256 == first.manifest_sha256
    assert _files(store, second.prefix, "labels/") == labels


def test_planted_phi_and_foreign_references_fail_verify_named(world):
    catalog, store, _, images_b = world
    prefix = build(catalog, store, SPEC).prefix
    image = images_b[0]
    ds = pydicom.dcmread(io.BytesIO(store.get_bytes(Zone.RELEASES, prefix + image)))
    ds.PatientName = "Doe^Jane"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    _replace(store, prefix, image, buf.getvalue())
    assert verify_tree(StoreTree(store, prefix)).ok  # checksums only: nothing to see
    report = verify_tree(StoreTree(store, prefix), checksums_only=False)
    assert [(p.path, p.kind) for p in report.problems] == [(image, "phi")]
    assert "PatientName" in report.problems[0].detail

    # an SR left behind when its instance is no longer released references what the release lacks
    store.delete(Zone.RELEASES, prefix + image)
    report = verify_tree(StoreTree(store, prefix), checksums_only=False)
    kinds = [(p.path, p.kind) for p in report.problems]
    assert (image, "missing") in kinds and (_folder(image) + "round-1-sr.dcm", "reference") in kinds


def test_verify_build_names_a_raw_zone_object(world):
    catalog, store, images_a, _ = world
    result = build(catalog, store, SPEC)
    image = images_a[0]
    with catalog.session() as s:
        raw_key = s.query(Instance).filter_by(sop_instance_uid="1.2.840.1.0").one().raw_key
    _replace(store, result.prefix, image, store.get_bytes(Zone.RAW, raw_key))
    report = verify_build(catalog, store, "chest", result.version)
    kinds = [(p.path, p.kind) for p in report.problems]
    # the raw object is named; the labels drawn on the de-identified instance now reference one
    # the release does not hold
    assert kinds == [(image, "raw"), (_folder(image) + "round-1-sr.dcm", "reference")]
    # without the raw zone's hashes (a pulled copy) it is still not de-identified
    report = verify_tree(StoreTree(store, result.prefix), checksums_only=False)
    assert image in {p.path for p in report.problems if p.kind == "phi"}


def test_the_verify_command_checks_content_unless_told_checksums_only(world, capsys):
    from curate.main import main
    from curation.release.publish import publish

    catalog, store, _, images_b = world
    result = build(catalog, store, SPEC)
    publish(catalog, store, "chest", result.version)
    target = f"chest@{result.version}"
    assert main(["release", "verify", target, "--store", str(store.root)]) == 0
    capsys.readouterr()
    root = store.local_path(Zone.RELEASES, f"chest/{result.version}")
    path = root / images_b[0]
    ds = pydicom.dcmread(path)
    ds.PatientName = "Doe^Jane"
    ds.save_as(path, enforce_file_format=True)
    assert main(["release", "verify", target, "--store", str(store.root), "--checksums-only"]) == 1
    assert "altered" in capsys.readouterr().out  # the bytes changed under the manifest
    assert main(["release", "verify", target, "--store", str(store.root)]) == 1
    out = capsys.readouterr().out
    assert images_b[0] in out and "PatientName" in out
