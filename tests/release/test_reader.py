"""Loading a published release: tables as typed DataFrames with the documented columns, split views
that partition the series, verified local paths (a tampered file is refused), and the torch Dataset
over every split, on a release of real CT DICOM built from a real catalog and store."""
from __future__ import annotations

import hashlib
import shutil
from datetime import date

import numpy as np
import pydicom
import pytest
import torch
from torch.utils.data import DataLoader

from curation.catalog import Catalog
from curation.catalog.models import AnnotationItem, ConsensusLabel
from curation.release import ReleaseIntegrityError, open_release
from curation.release.build import ReleaseSpec, build
from curation.release.labels import Box, ReleaseIdentity, boxes_to_masks, consensus_segs
from curation.release.manifest import Manifest, ManifestEntry
from curation.release.publish import publish
from curation.release.tables import CONSENSUS_COLUMNS, READING_COLUMNS, SERIES_COLUMNS
from curation.release.torch import ReleaseDataset, keep_dicts
from curation.store import LocalStore, Store
from curation.vocabulary import QualityDecision, Zone
from tests.annotation.dicomgen import ct_dataset, phantom
from tests.release.world import add_round, add_series, series_uid

SIZE = 24
#: series number -> (patient, instances); series 7 is one image with a consensus box
SERIES = {1: ("ANON01", 3), 2: ("ANON02", 2), 3: ("ANON03", 4), 4: ("ANON01", 2), 5: ("ANON05", 2),
          6: ("ANON06", 3), 7: ("ANON07", 1), 8: ("ANON08", 2), 9: ("ANON09", 2)}
BOX = (4.0, 5.0, 12.0, 10.0)


def real_dicom(store: Store, n: int, patient: str, files: int) -> None:
    """Replace the world's placeholder bytes of series n with CT slices carrying the UIDs of their keys."""
    for i in range(files):
        ds = ct_dataset(phantom(SIZE, SIZE, n * 10 + i), study_uid=f"2.25.9{n}", series_uid=series_uid(n),
                        frame_uid=f"2.25.7{n}", index=i)
        ds.PatientID = patient
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"2.25.8{n}{i}"
        path = store.local_path(Zone.DEID, f"{patient}/2.25.9{n}/{series_uid(n)}/2.25.8{n}{i}.dcm")
        ds.save_as(path, enforce_file_format=True)


def add_box(catalog: Catalog, round_id: int, series_id: int) -> None:
    with catalog.session() as s:
        item = s.query(AnnotationItem).filter_by(round_id=round_id, series_id=series_id).one()
        s.add(ConsensusLabel(round_id=round_id, item_id=item.id, label="nodule", method="box", ordinal=0, value=1,
                             n_readers=2, x0=BOX[0], y0=BOX[1], x1=BOX[2], y1=BOX[3]))


@pytest.fixture
def released(tmp_path):
    """chest@1.0.0 published in a LocalStore: 9 series of 8 patients, one excluded, 5 read in a round."""
    catalog = Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    store = LocalStore(tmp_path / "store", fsync=False)
    ids = {}
    for n, (patient, files) in SERIES.items():
        decision = QualityDecision.EXCLUDE if n == 9 else QualityDecision.APPROVE
        ids[n] = add_series(catalog, store, n, patient=patient, files=files, decision=decision)
        real_dicom(store, n, patient, files)
    read = [ids[n] for n in (1, 2, 3, 6, 7)]
    rnd = add_round(catalog, read, {sid: int(sid % 2 == 1) for sid in read})
    add_box(catalog, rnd, ids[7])
    built = build(catalog, store, ReleaseSpec("chest"))
    publish(catalog, store, "chest", built.version)
    yield store, built, tmp_path
    catalog.dispose()


def test_tables_have_the_documented_columns_dtypes_and_rows(released):
    store, built, _ = released
    release = open_release(store.root, "chest@1.0.0", verify=True)
    assert (release.name, release.version, release.manifest_sha256) == ("chest", "1.0.0", built.manifest_sha256)
    assert open_release(str(store.root), "chest").manifest_sha256 == built.manifest_sha256  # newest version
    series = release.series
    assert tuple(series.columns) == SERIES_COLUMNS and len(series) == 8
    assert series_uid(9) not in set(series["series"])  # excluded by quality
    assert str(series["n_files"].dtype) == "Int64"
    assert dict(zip(series["series"], series["n_files"])) == {series_uid(n): SERIES[n][1] for n in range(1, 9)}
    assert all(isinstance(m, dict) and m["snr"] == 12.5 for m in series["quality_metrics"])
    readings = release.readings
    assert tuple(readings.columns) == READING_COLUMNS and len(readings) == 2 * 5
    assert str(readings["value"].dtype) == "Int64" and str(readings["confidence"].dtype) == "Float64"
    consensus = release.labels
    assert tuple(consensus.columns) == CONSENSUS_COLUMNS and len(consensus) == 5 + 1
    assert consensus["x0"].notna().sum() == 1
    assert list(release.agreement.values())[0]["summary"]["fleiss_kappa"] == 0.61
    files = release.files
    assert list(files.columns) == ["path", "size", "sha256", "role", "series"]
    assert len(files) == len(release.manifest.entries)
    assert (files["role"] == "image").sum() == sum(SERIES[n][1] for n in range(1, 9))
    matrix = release.label_matrix()
    assert list(matrix.columns) == ["nodule"] and matrix.shape == (8, 1)
    assert matrix.loc[series_uid(4), "nodule"] != matrix.loc[series_uid(4), "nodule"]  # NaN: not read
    # a pulled folder opens the same, and a cited hash that is not the manifest's is refused
    folder = store.local_path(Zone.RELEASES, "chest/1.0.0")
    assert open_release(folder, verify=True).series.equals(series)
    with pytest.raises(ReleaseIntegrityError, match="not the cited"):
        open_release(folder, expected_sha256="0" * 64)
    with pytest.raises(FileNotFoundError, match="published versions of chest: 1.0.0"):
        open_release(store.root, "chest@2.0.0")


def test_split_views_are_disjoint_and_cover_every_series(released):
    store, _, _ = released
    release = open_release(store.root, "chest@1.0.0")
    views = {name: release.split(name) for name in release.splits()}
    assert len(views) >= 2
    keys = [set(v.series["series"]) for v in views.values()]
    assert sum(map(len, keys)) == len(release.series) and set().union(*keys) == set(release.series["series"])
    patients = [set(v.series["patient"]) for v in views.values()]
    assert sum(map(len, patients)) == len(set().union(*patients))  # no patient in two splits
    for name, view in views.items():
        assert set(view.series["split"]) == {name} and view.manifest_sha256 == release.manifest_sha256
        assert set(view.readings["series"]) <= set(view.series["series"])
        assert set(view.files["series"]) == set(view.series["series"])
    with pytest.raises(KeyError, match="no series in split"):
        release.split("holdout")


def test_paths_are_verified_and_a_tampered_file_is_refused(released):
    store, _, tmp_path = released
    release = open_release(store.root, "chest@1.0.0", cache=tmp_path / "cache")
    for entry in release.manifest.entries:
        local = release.path(entry.path)
        assert hashlib.sha256(local.read_bytes()).hexdigest() == entry.sha256
    folder = release.path(series_uid(3))
    assert sorted(p.name for p in folder.iterdir()) == [f"2.25.83{i}.dcm" for i in range(4)]
    # a copy with one flipped byte: the file is refused, the others still served
    copy = tmp_path / "copy"
    shutil.copytree(store.local_path(Zone.RELEASES, "chest/1.0.0"), copy)
    target = f"images/ANON02/2.25.92/{series_uid(2)}/2.25.821.dcm"
    data = bytearray((copy / target).read_bytes())
    data[200] ^= 0x01
    (copy / target).write_bytes(bytes(data))
    tampered = open_release(copy)
    with pytest.raises(ReleaseIntegrityError, match="2.25.821.dcm"):
        tampered.path(target)
    with pytest.raises(ReleaseIntegrityError, match="2.25.821.dcm"):
        tampered.path(series_uid(2))
    assert tampered.path("tables/series.parquet").is_file()
    with pytest.raises(ReleaseIntegrityError, match="altered: " + target):
        open_release(copy, verify=True)


def test_the_torch_dataset_iterates_every_split(released):
    store, _, _ = released
    release = open_release(store.root, "chest@1.0.0")
    seen = set()
    for split in release.splits():
        data = ReleaseDataset(release, split=split)
        assert len(data) == len(release.split(split).series)
        for image, target in DataLoader(data, batch_size=1, collate_fn=keep_dicts):
            image, target = image[0], target[0]
            n = int(target["series"].rsplit(".", 1)[1]) - 1000
            assert isinstance(image, torch.Tensor) and image.dtype == torch.float32
            assert tuple(image.shape) == (SERIES[n][1], SIZE, SIZE)  # (z, y, x); z = 1 for one image
            assert target["labels"].shape == (1,)
            if n == 7:
                assert target["boxes"].tolist() == [list(BOX)] and target["box_labels"].tolist() == [0]
            else:
                assert target["boxes"].shape == (0, 4)
            seen.add(target["series"])
    assert seen == set(release.series["series"])
    # instances: one 2D image per file, with the slices' own pixels, through a transform
    train = release.splits()[0]
    instances = ReleaseDataset(release, split=train, unit="instance", transform=lambda t: t[None])
    assert len(instances) == int(release.split(train).series["n_files"].sum())
    for image, target in DataLoader(instances, batch_size=1, collate_fn=keep_dicts):
        assert tuple(image[0].shape) == (1, SIZE, SIZE) and target[0]["instance"].endswith(".dcm")
    # a volume is in slice order: slice i is instance i (the phantom of seed n*10+i, HU = stored - 1024)
    volume, target = ReleaseDataset(release, split=None)[list(release.series["series"]).index(series_uid(3))]
    assert np.array_equal(volume[2].numpy(), phantom(SIZE, SIZE, 32).astype(np.float32) - 1024)


def test_masks_come_from_a_seg_in_the_release(released):
    """A release folder whose labels/ hold a SEG of series 1: the series item carries its mask."""
    store, _, tmp_path = released
    copy = tmp_path / "with-seg"
    shutil.copytree(store.local_path(Zone.RELEASES, "chest/1.0.0"), copy)
    folder = copy / f"images/ANON01/2.25.91/{series_uid(1)}"
    sources = [pydicom.dcmread(folder / f"2.25.81{i}.dcm") for i in range(3)]
    box = Box("nodule", "2.25.811", 3, 4, 9, 8)
    masks = boxes_to_masks([box], sources)
    identity = ReleaseIdentity("chest", "1.0.0", date(2026, 12, 5))
    (seg,) = consensus_segs(sources, masks, identity=identity, series_uid=series_uid(1), method="box", n_readers=2)
    rel = f"labels/ANON01/{series_uid(1)}/seg.dcm"
    (copy / rel).parent.mkdir(parents=True)
    seg.save_as(copy / rel, enforce_file_format=True)
    manifest = Manifest.from_bytes((copy / "manifest.json").read_bytes())
    manifest = Manifest(manifest.name, manifest.version,
                        manifest.entries + (ManifestEntry.of(rel, (copy / rel).read_bytes()),))
    (copy / "manifest.json").write_bytes(manifest.to_bytes())
    release = open_release(copy, verify=True)
    data = ReleaseDataset(release, split=None)
    image, target = data[list(release.series["series"]).index(series_uid(1))]
    assert target["mask_labels"] == ["nodule"] and tuple(target["masks"].shape) == (1, *image.shape)
    assert np.array_equal(target["masks"][0].numpy(), masks["nodule"])


@pytest.mark.server
def test_a_release_on_s3_is_fetched_into_the_cache_verified(released, s3_bucket):
    """The published release copied to a real S3 server (SeaweedFS): files arrive in the cache checked,
    a spoiled cached copy is fetched again, and an object altered on the server is refused."""
    store, built, tmp_path = released
    s3 = s3_bucket.store
    for key in store.list(Zone.RELEASES, "chest/1.0.0/"):
        s3.put_bytes(Zone.RELEASES, key, store.get_bytes(Zone.RELEASES, key))
    cache = tmp_path / "s3-cache"
    release = open_release(f"s3://{s3_bucket.name}", "chest@1.0.0", verify=True, cache=cache)
    assert release.manifest_sha256 == built.manifest_sha256
    folder = release.path(series_uid(3))
    assert folder.is_relative_to(cache / built.manifest_sha256) and len(list(folder.iterdir())) == 4
    split = release.splits()[0]
    assert len(list(DataLoader(ReleaseDataset(release, split=split), batch_size=1, collate_fn=keep_dicts))) == \
        len(release.split(split).series)
    target = f"images/ANON02/2.25.92/{series_uid(2)}/2.25.821.dcm"
    original = store.get_bytes(Zone.RELEASES, "chest/1.0.0/" + target)
    cached = release.path(target)
    cached.write_bytes(b"spoiled")
    reopened = open_release(f"s3://{s3_bucket.name}", "chest@1.0.0", cache=cache)
    assert reopened.path(target).read_bytes() == original  # fetched again, not served spoiled
    s3.put_bytes(Zone.RELEASES, "chest/1.0.0/" + target, original[:-1] + bytes([original[-1] ^ 1]))
    fresh = open_release(f"s3://{s3_bucket.name}", "chest@1.0.0", cache=tmp_path / "other-cache")
    with pytest.raises(ReleaseIntegrityError, match="2.25.821.dcm: fetched"):
        fresh.path(target)
    leftovers = [p.name for p in (tmp_path / "other-cache").rglob("*") if p.is_file()]
    assert "2.25.821.dcm" not in leftovers and not [n for n in leftovers if n.startswith(".fetch-")]


def test_a_release_without_rounds_loads_with_empty_tables_and_no_labels(tmp_path):
    catalog = Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    store = LocalStore(tmp_path / "store", fsync=False)
    try:
        for n in (1, 2):
            add_series(catalog, store, n, patient=SERIES[n][0], files=SERIES[n][1])
            real_dicom(store, n, *SERIES[n])
        publish(catalog, store, "plain", build(catalog, store, ReleaseSpec("plain")).version)
        release = open_release(store.root, "plain@1.0.0")
        assert len(release.series) == 2 and release.readings.empty and release.consensus.empty
        assert tuple(release.readings.columns) == READING_COLUMNS and release.agreement == {}
        items = [ReleaseDataset(release, split=s)[0] for s in release.splits()]
        assert all(t["labels"].shape == (0,) and t["boxes"].shape == (0, 4) and "masks" not in t for _, t in items)
    finally:
        catalog.dispose()
