"""A release of a real curated site: a one-patient synthetic hospital through ingest -> deid ->
classify -> quality, then released. The released files are the de-identified DICOM (never a raw
object), laid out by the pseudonymous PatientID, StudyInstanceUID and SeriesInstanceUID they carry,
and the default selection is exactly the series whose final decision is approve."""
from __future__ import annotations

import hashlib

import pydicom
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy import select

from curation.catalog import Catalog, Instance, Series
from curation.ingest import ingest
from curation.pipeline.select import final_decisions
from curation.reid_vault import put_public_key
from curation.release.build import ReleaseSpec, build
from curation.release.layout import StoreTree
from curation.release.tables import SERIES_SCHEMA, read_rows
from curation.release.verify import verify_tree
from curation.store import open_store
from curation.vocabulary import QualityDecision, Zone
from deid.profile import load_profile
from deid.vault import public_pem
from tests.pipeline.flow import curate_series

pytestmark = pytest.mark.slow


def test_a_curated_site_releases_its_deidentified_dicom(tmp_path):
    from synth import generate_site

    generate_site(tmp_path / "site", patients=1, seed=3, matrix=32, slices=4, progress=lambda m: None)
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    store = open_store(str(tmp_path / "store"))
    put_public_key(store, public_pem(X25519PrivateKey.generate().public_key()))
    try:
        ingest(str(tmp_path / "site" / "dicom"), catalog, store, site="synth", workers=1)
        with catalog.session() as s:
            ids = list(s.scalars(select(Series.id).order_by(Series.id)))
            raw_hashes = set(s.scalars(select(Instance.sha256)))
        for sid in ids:
            curate_series(catalog, store, sid)
        approved = sum(1 for f in final_decisions(catalog, ids).values() if f.decision == QualityDecision.APPROVE)
        assert 0 < approved < len(ids)  # the site plants defects: the default selection must leave some out
        result = build(catalog, store, ReleaseSpec("site"))
        tree = StoreTree(store, result.prefix)
        series = read_rows(tree.read("tables/series.parquet"), SERIES_SCHEMA)
        assert len(series) == result.counts["series"] == approved
        images = [p for p in tree.paths() if p.startswith("images/")]
        assert len(images) == sum(int(r["n_files"]) for r in series)
        for path in images:
            data = tree.read(path)
            assert hashlib.sha256(data).hexdigest() not in raw_hashes  # never a raw-zone object
            ds = pydicom.dcmread(store.local_path(Zone.RELEASES, result.prefix + path), stop_before_pixels=True)
            _, patient, study, series_uid, _ = path.split("/")
            assert (ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID) == (patient, study, series_uid)
        assert {r["patient"] for r in series} == {images[0].split("/")[1]}
        assert verify_tree(tree).ok
        # the datasheet states the de-identification the released DICOM carry and the profile it was
        sheet = tree.read("DATASHEET.md").decode()
        assert "| Basic Application Confidentiality Profile; Clean Descriptors Option;" in sheet
        assert f"| default | {', '.join(load_profile('default').options)} |" in sheet
        exclusions = [line.split(" | ") for line in sheet.splitlines() if line.startswith(("| exclude |", "| review |"))]
        assert sum(int(row[-1].rstrip(" |")) for row in exclusions) == len(ids) - approved
    finally:
        catalog.dispose()
