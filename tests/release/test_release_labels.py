"""A release's labels/ and its content verification, on a real catalog, a real LocalStore whose deid
zone holds real DICOM, and an analysed labels round with findings and a consensus box: the SR and
SEG pass dciodvfy and reference released instances, rebuild byte-identically, and a released file
with a patient's name put back fails verification, named."""
from __future__ import annotations

import hashlib
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
from tests.release.test_labels import dx_series
from tests.release.world import add_round, add_series, series_uid

pytestmark = pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (dicom3tools) is not installed")
SPEC = ReleaseSpec("chest", released_on=date(2026, 12, 1))


def _real_dicom(store: LocalStore, n: int, patient: str, files: int) -> list[str]:
    """Replace series n's deid-zone files (world.add_series keys) by de-identified DX instances
    whose UIDs are the ones the keys name."""
    sops = []
    for i, ds in enumerate(dx_series(files)):
        sop = f"2.25.8{n}{i}"
        ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID = patient, f"2.25.9{n}", series_uid(n)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = sop
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        store.put_bytes(Zone.DEID, f"{patient}/2.25.9{n}/{series_uid(n)}/{sop}.dcm", buf.getvalue())
        sops.append(sop)
    return sops


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
    sops = _real_dicom(store, 1, "ANON01", 2) + _real_dicom(store, 2, "ANON02", 1)
    rnd = add_round(catalog, [a, b], {a: 1, b: 0})
    _add_box(catalog, rnd, a, instance=1)
    yield catalog, store, sops
    catalog.dispose()


def _files(store: LocalStore, prefix: str, under: str) -> dict[str, bytes]:
    return {k[len(prefix):]: store.get_bytes(Zone.RELEASES, k) for k in store.list(Zone.RELEASES, prefix + under)}


def test_labels_pass_dciodvfy_and_reference_released_instances(world):
    catalog, store, sops = world
    result = build(catalog, store, SPEC)
    labels = _files(store, result.prefix, "labels/")
    a, b = f"labels/ANON01/2.25.91/{series_uid(1)}/", f"labels/ANON02/2.25.92/{series_uid(2)}/"
    assert sorted(labels) == [a + "round-1-seg-1.dcm", a + "round-1-sr.dcm", b + "round-1-sr.dcm"]
    manifest = Manifest.from_bytes(store.get_bytes(Zone.RELEASES, result.prefix + "manifest.json")).by_path()
    assert {manifest[p].role for p in labels} == {"label"}
    for path, data in labels.items():
        assert dciodvfy_errors(data) == [], path
        assert set(referenced_instances(pydicom.dcmread(io.BytesIO(data)))) <= set(sops), path
    sr = pydicom.dcmread(io.BytesIO(labels[a + "round-1-sr.dcm"]))
    assert sr.ContentDate == "20261201"
    seg = pydicom.dcmread(io.BytesIO(labels[a + "round-1-seg-1.dcm"]))
    # the readers drew the box on instance 1: the SEG's one frame is there, and nowhere else
    assert {str(f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
            for f in seg.PerFrameFunctionalGroupsSequence} == {sops[1]}
    provenance = json.loads(store.get_bytes(Zone.RELEASES, result.prefix + "provenance.json"))
    assert provenance["released_on"] == "2026-12-01" and provenance["labels_skipped"] == []
    report = verify_tree(StoreTree(store, result.prefix), checksums_only=False)
    assert report.ok, report.problems


def test_rebuilding_gives_byte_identical_labels(world):
    catalog, store, _ = world
    first = build(catalog, store, SPEC)
    labels = _files(store, first.prefix, "labels/")
    second = build(catalog, store, SPEC)
    assert second.manifest_sha256 == first.manifest_sha256
    assert _files(store, second.prefix, "labels/") == labels


def test_planted_phi_and_foreign_references_fail_verify_named(world):
    catalog, store, _ = world
    result = build(catalog, store, SPEC)
    prefix = result.prefix
    image = f"images/ANON02/2.25.92/{series_uid(2)}/2.25.820.dcm"
    ds = pydicom.dcmread(io.BytesIO(store.get_bytes(Zone.RELEASES, prefix + image)))
    ds.PatientName = "Doe^Jane"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    store.put_bytes(Zone.RELEASES, prefix + image, buf.getvalue())
    # the manifest updated too: the file's checksum agrees, only its content is wrong
    manifest = Manifest.from_bytes(store.get_bytes(Zone.RELEASES, prefix + "manifest.json"))
    entries = tuple(ManifestEntry.of(image, buf.getvalue()) if e.path == image else e for e in manifest.entries)
    store.put_bytes(Zone.RELEASES, prefix + "manifest.json", Manifest(manifest.name, manifest.version,
                                                                      entries).to_bytes())
    assert verify_tree(StoreTree(store, prefix)).ok  # checksums only: nothing to see
    report = verify_tree(StoreTree(store, prefix), checksums_only=False)
    assert [(p.path, p.kind) for p in report.problems] == [(image, "phi")]
    assert "PatientName" in report.problems[0].detail

    # an SR left behind when its instance is no longer released references what the release lacks
    store.delete(Zone.RELEASES, prefix + image)
    report = verify_tree(StoreTree(store, prefix), checksums_only=False)
    sr = f"labels/ANON02/2.25.92/{series_uid(2)}/round-1-sr.dcm"
    assert (image, "missing") in [(p.path, p.kind) for p in report.problems]
    assert (sr, "reference") in [(p.path, p.kind) for p in report.problems]


def test_verify_build_names_a_raw_zone_object(world):
    catalog, store, _ = world
    result = build(catalog, store, SPEC)
    assert verify_build(catalog, store, "chest", result.version).ok
    image = f"images/ANON01/2.25.91/{series_uid(1)}/2.25.811.dcm"
    data = store.get_bytes(Zone.RELEASES, result.prefix + image)
    with catalog.session() as s:  # the catalog registers a raw-zone object with exactly these bytes
        s.query(Instance).filter_by(sop_instance_uid="1.2.840.1.0").one().sha256 = hashlib.sha256(data).hexdigest()
    report = verify_build(catalog, store, "chest", result.version)
    assert [(p.path, p.kind) for p in report.problems] == [(image, "raw")]
