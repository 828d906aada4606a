"""PNG/JPEG/NIfTI outputs have a sealed re-identification entry as DICOM series do: the data
protection officer finds where an image output came from (its names at the source, the free text
the de-identifier removed) with `curate deid reidentify <output name stem> --private-key F`; the
vault holds none of it in clear, and no image is written to a store without the officer's key."""
from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from curation.catalog import Catalog, Series
from curate.main import main
from curation.ingest import ingest
from curation.pipeline import SeriesRef, deid
from curation.store import Zone, open_store
from deid.vault import VaultKeyError

SURNAME, MRN = "Lindqvist", "40917733"


def _png() -> bytes:
    yy, xx = np.mgrid[0:64, 0:80]
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", f"{SURNAME} Astrid {MRN}")
    b = io.BytesIO()
    Image.fromarray((40 + 120 * np.exp(-((yy - 32) ** 2 + (xx - 40) ** 2) / 300)).astype(np.uint8)).save(b, "PNG", pnginfo=info)
    return b.getvalue()


def _nifti() -> bytes:
    img = nib.Nifti1Image(np.arange(12 * 10 * 4, dtype=np.int16).reshape(12, 10, 4), np.diag([1.0, 1.0, 2.0, 1.0]))
    img.header["descrip"] = f"T1w {SURNAME} {MRN}".encode()
    return gzip.compress(img.to_bytes())


def _source(root: Path) -> Path:
    src = root / "src"
    folder = src / f"{SURNAME}_Astrid_{MRN}"
    folder.mkdir(parents=True)
    (folder / "chest.png").write_bytes(_png())
    (folder / "brain.nii.gz").write_bytes(_nifti())
    return src


def test_image_outputs_are_reidentified_by_the_officer_only(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CURATE_PSEUDONYM_SECRET", raising=False)
    store_dir, officer = tmp_path / "store", tmp_path / "officer" / "dpo.pem"
    assert main(["deid", "keys", "create", "--out", str(officer), "--store", str(store_dir)]) == 0
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    store = open_store(str(store_dir))
    ingest(str(_source(tmp_path)), catalog, store, site="formats", workers=1)
    with catalog.session() as s:
        ids = [sid for (sid,) in s.query(Series.id).order_by(Series.id)]
    results = [deid.run(SeriesRef(i), store, catalog) for i in ids]
    assert sorted(r.ref.format for r in results) == ["nifti", "png"] and {r.status for r in results} == {"ok"}

    vault = store_dir / "vault"
    for p in vault.rglob("*"):  # nothing identifying in clear anywhere in the vault
        if p.is_file():
            assert SURNAME.encode() not in p.read_bytes() and MRN.encode() not in p.read_bytes(), p
    db = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    for result in results:
        (key,) = result.metrics["outputs"]
        pseudonym = key.split("/")[1]  # images/<h>/<h>.png, volumes/<h>/<h>.nii.gz
        assert main(["deid", "reidentify", pseudonym, "--store", str(store_dir), "--db", db]) == 2  # no key: refused
        capsys.readouterr()
        assert main(["deid", "reidentify", pseudonym, "--private-key", str(officer), "--store", str(store_dir),
                     "--db", db, "--actor", "dpo"]) == 0
        entry = json.loads(capsys.readouterr().out)[pseudonym]
        assert entry["format"] == result.ref.format
        (origin,) = entry["studies"].values()
        assert any(SURNAME in n and MRN in n for n in origin["source_names"]), origin["source_names"]
        assert any(SURNAME in t and MRN in t for t in origin["removed_text"]), origin["removed_text"]
        assert store.exists(Zone.RAW, origin["raw_key"])


def test_no_image_is_written_to_a_store_without_the_officers_key(tmp_path, monkeypatch):
    monkeypatch.setenv("CURATE_STORE_URI", str(tmp_path / "store"))  # not the embedded demo store
    store = open_store(str(tmp_path / "store"))
    store.put_bytes(Zone.RAW, "ab/cd.png", _png())
    from curation.pipeline.deid import deidentify_images

    with pytest.raises(VaultKeyError, match="keys create"):
        deidentify_images(store, ["ab/cd.png"], "png")
    assert list(store.list(Zone.DEID, "")) == []


def test_folder_run_seals_image_entries_too(tmp_path, capsys, monkeypatch):
    """`curate deid SRC DST`: the folder vault's sealed map gets the images' entries as well."""
    monkeypatch.delenv("CURATE_PSEUDONYM_SECRET", raising=False)
    vault, officer = tmp_path / "vault", tmp_path / "officer" / "dpo.pem"
    assert main(["deid", "keys", "create", "--out", str(officer), "--public-key-out", str(vault / "reid_public_key.pem")]) == 0
    dst = tmp_path / "out"
    assert main(["deid", str(_source(tmp_path)), str(dst), "--secret-file", str(vault / "deid_secret"), "--quiet"]) == 0
    stems = sorted(p.name for p in dst.glob("*/*"))
    assert len(stems) == 2
    for p in vault.rglob("*"):
        if p.is_file():
            assert SURNAME.encode() not in p.read_bytes() and MRN.encode() not in p.read_bytes(), p
    db = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    for stem in stems:
        capsys.readouterr()
        assert main(["deid", "reidentify", stem, "--private-key", str(officer), "--secret-file", str(vault / "deid_secret"),
                     "--db", db]) == 0
        (origin,) = json.loads(capsys.readouterr().out)[stem]["studies"].values()
        assert any(SURNAME in n for n in origin["source_names"]) and any(MRN in t for t in origin["removed_text"])
