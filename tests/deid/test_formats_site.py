"""The synthetic site's own PNG/JPEG chest pictures and NIfTI volumes (which carry the patient's
name and ID in tEXt, COM, aux_file and an extension) through ingest -> deid -> classify -> quality:
every one reaches the deid zone, none holds any of the patient's identifying values."""
from __future__ import annotations

import gzip
import shutil

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy import select

from curation.catalog import Catalog, Series
from curation.ingest import ingest
from curation.reid_vault import put_public_key
from curation.store import Zone, open_store
from deid.raster import png_chunks
from deid.vault import public_pem
from tests.pipeline.flow import curate_series


def test_synthetic_site_pictures_and_volumes_are_deidentified(tmp_path):
    from synth import generate_site

    truth = generate_site(tmp_path / "site", patients=1, seed=3, matrix=64, slices=6, progress=lambda m: None)
    src = tmp_path / "src"
    for folder in ("images", "nifti"):
        shutil.copytree(tmp_path / "site" / folder, src / folder)
    planted = [gzip.decompress(p.read_bytes()) if p.name.endswith(".gz") else p.read_bytes()
               for p in src.rglob("*") if p.is_file()]
    patient = truth["patients"][0]
    ident = [patient["patient_id"].lower(), patient["patient_name"].split("^")[0].lower()]
    assert all(any(i.encode() in d.lower() for i in ident) for d in planted)  # every file names the patient

    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    store = open_store(str(tmp_path / "store"))
    put_public_key(store, public_pem(X25519PrivateKey.generate().public_key()))  # the officer's key: images get sealed entries
    ingest(str(src), catalog, store, site="synth", workers=1)
    with catalog.session() as s:
        ids = list(s.scalars(select(Series.id).order_by(Series.id)))
    refs = [curate_series(catalog, store, i) for i in ids]
    assert len(refs) == len(planted) and all(r.status == "ok" for r in refs), refs
    words = {w.lower() for v in patient.get("text_phi") or patient["phi_values"] for w in str(v).replace("^", " ").split() if len(w) >= 4}
    keys = list(store.list(Zone.DEID, ""))
    assert len(keys) == len(planted)
    for key in keys:
        assert not [w for w in words if w in key.lower()]
        data = store.get_bytes(Zone.DEID, key)
        if key.endswith(".png"):
            assert set(png_chunks(data)) <= {b"IHDR", b"IDAT", b"IEND"}
            header = b""
        else:
            data = gzip.decompress(data)
            header = data[:352].lower()  # every word, however short, in the NIfTI header
        low = data.lower()  # words of 8+ characters anywhere (shorter ones occur in pixels by chance)
        assert not [w for w in words if w.encode() in header or (len(w) >= 8 and w.encode() in low)], key
    kinds = {r.format: r.kind for r in refs}
    assert kinds["png"] == "DX" and kinds.get("jpeg", "DX") == "DX"
    assert {r.kind for r in refs if r.format == "nifti"} == {n["kind"] for n in truth["nifti"]}
    assert all(r.decision in ("approve", "review", "exclude") for r in refs)
