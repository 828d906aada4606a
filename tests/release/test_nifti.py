"""NIfTI conversions: a release built with the nifti format holds `images/<patient>/<study>/<series>.nii.gz`
for each CT/MR volume (same voxels and geometry as its DICOM, same bytes on every build, no header
text), says which series could not be volumes, and the torch Dataset reads the NIfTI."""
from __future__ import annotations

import gzip
import json

import numpy as np
import pydicom
import SimpleITK as sitk

from curation.release import open_release
from curation.release.build import ReleaseSpec, build
from curation.release.publish import publish
from curation.release.layout import StoreTree
from curation.release.torch import ReleaseDataset, _slice_order, read_volume
from curation.release.verify import verify_tree
from curation.vocabulary import Modality, SeriesKind, Zone
from tests.release.test_reader import real_dicom
from tests.release.world import add_series, series_uid

VOLUME = f"images/ANON01/2.25.91/{series_uid(1)}.nii.gz"


def _world(catalog, store):
    """Series 1: a CT volume of 4 slices; 2: one CT slice; 3: 3 CT slices without a frame of
    reference; 4: a 2-image CR series."""
    for n, patient, files, modality in ((1, "ANON01", 4, Modality.CT), (2, "ANON02", 1, Modality.CT),
                                        (3, "ANON03", 3, Modality.CT), (4, "ANON04", 2, Modality.CR)):
        add_series(catalog, store, n, patient=patient, files=files, modality=modality,
                   kind=SeriesKind.CT if modality == Modality.CT else SeriesKind.CR)
        real_dicom(store, n, patient, files)
    for i in range(3):
        path = store.local_path(Zone.DEID, f"ANON03/2.25.93/{series_uid(3)}/2.25.83{i}.dcm")
        ds = pydicom.dcmread(path)
        del ds.FrameOfReferenceUID
        ds.save_as(path, enforce_file_format=True)


def test_volumes_are_released_as_deterministic_nifti_beside_their_dicom(world):
    catalog, store = world
    _world(catalog, store)
    spec = ReleaseSpec("chest", formats=("dicom", "nifti"))
    built = build(catalog, store, spec)
    tree = StoreTree(store, built.prefix)
    manifest = {f["path"]: f for f in json.loads(tree.read("manifest.json"))["files"]}
    converted = sorted(p for p, f in manifest.items() if f["role"] == "image-nifti")
    assert converted == [VOLUME]
    data = tree.read(VOLUME)
    assert data[4:8] == b"\0\0\0\0"  # gzip mtime 0
    assert build(catalog, store, spec).manifest_sha256 == built.manifest_sha256 and tree.read(VOLUME) == data
    header = gzip.decompress(data)[:352]
    assert b"ANON" not in header and b"2.25" not in header  # no DICOM text in the NIfTI header
    provenance = json.loads(tree.read("provenance.json"))
    assert [s["series"] for s in provenance["nifti_skipped"]] == [series_uid(3)]
    assert "FrameOfReferenceUID" in provenance["nifti_skipped"][0]["reason"]
    assert any(d["@id"] == "nifti-volumes" for d in json.loads(tree.read("croissant.json"))["distribution"])
    assert "1 NIfTI conversions" in tree.read("DATASHEET.md").decode()
    assert verify_tree(tree).ok  # (content checks name this world's stand-in PatientNames, never the NIfTI)
    assert not [p for p in verify_tree(tree, checksums_only=False).problems if p.path.endswith(".nii.gz")]
    # the same voxels and geometry as the DICOM, in the slice order the torch Dataset uses
    publish(catalog, store, "chest", built.version)
    release = open_release(store.root, "chest@1.0.0")
    assert release.nifti_file(series_uid(1)) == VOLUME and release.nifti_file(series_uid(2)) is None
    files = release.files
    assert files.loc[files["path"] == VOLUME, "series"].tolist() == [series_uid(1)]
    assert len(release.series_files(series_uid(1))) == 4  # the DICOM only
    image = sitk.ReadImage(str(release.path(VOLUME)))
    assert np.allclose(image.GetSpacing(), (0.7, 0.7, 2.0)) and image.GetSize() == (24, 24, 4)
    stacked = read_volume([p for p, _ in _slice_order([release.path(p) for p in release.series_files(series_uid(1))])])
    assert np.array_equal(sitk.GetArrayFromImage(image), stacked.astype(np.float32))
    dataset = ReleaseDataset(release, split=None)
    item = dataset.items.index((series_uid(1), None))
    tensor, target = dataset[item]
    assert target["series"] == series_uid(1) and np.array_equal(tensor.numpy(), stacked.astype(np.float32))
