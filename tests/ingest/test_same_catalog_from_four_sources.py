"""The same synthetic site ingested from a folder, a zip, S3 and Orthanc (DICOMweb) gives the same
catalog: the same series and the same instance hashes."""
from __future__ import annotations

import json
import uuid
import zipfile
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from curation.catalog import Catalog, Instance, Series
from curation.ingest import ingest
from curation.store import open_store

EXCLUDE = ["ground_truth.json"]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    from synth import generate_site

    out = tmp_path_factory.mktemp("site")
    generate_site(out, patients=2, seed=11)
    return out


def _catalog_of(tmp: Path, name: str, uri: str) -> set[tuple[str, str, str]]:
    catalog = Catalog(f"sqlite:///{tmp / f'{name}.sqlite'}")
    store = open_store(str(tmp / f"store-{name}"))
    ingest(uri, catalog, store, site="four-sources", workers=2, exclude=EXCLUDE)
    with catalog.session() as s:
        rows = s.execute(select(Series.series_instance_uid, Instance.sop_instance_uid, Instance.sha256)
                         .join(Series, Instance.series_id == Series.id).where(Instance.format == "dicom")).all()
    return {tuple(r) for r in rows}


def _stow_raw(dicomweb_url: str, auth: tuple[str, str], paths: list[Path], batch: int = 50) -> None:
    """STOW-RS the files' exact bytes (no re-encoding), in path order so the first of two
    conflicting duplicates is the one the archive keeps, as in a folder ingest."""
    for i in range(0, len(paths), batch):
        boundary = uuid.uuid4().hex
        body = b""
        for p in paths[i : i + batch]:
            body += (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").encode() + p.read_bytes() + b"\r\n"
        body += f"--{boundary}--\r\n".encode()
        r = requests.post(f"{dicomweb_url}/studies", data=body, auth=auth, timeout=120, headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": "application/dicom+json"})
        assert r.status_code in (200, 202, 409), r.text[:500]


def test_folder_zip_s3_and_dicomweb_give_the_same_catalog(site, tmp_path, s3_server, orthanc_server, monkeypatch):
    truth = json.loads((site / "ground_truth.json").read_text())
    good = sorted(site / rel for rel, f in truth["files"].items() if f["type"] == "dicom" and f["expected"] == "ingest")

    folder = _catalog_of(tmp_path, "folder", str(site))
    assert len(folder) == len(good)

    with zipfile.ZipFile(tmp_path / "site.zip", "w") as zf:
        for p in sorted(site.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(site).as_posix())
    assert _catalog_of(tmp_path, "zip", str(tmp_path / "site.zip")) == folder

    from curation.store.s3 import make_s3_client

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.setenv("CURATE_S3_ENDPOINT_URL", s3_server.endpoint_url)
    client = make_s3_client(s3_server.endpoint_url)
    bucket = f"site-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    for p in sorted(site.rglob("*")):
        if p.is_file():
            client.upload_file(str(p), bucket, "export/" + p.relative_to(site).as_posix())
    assert _catalog_of(tmp_path, "s3", f"s3://{bucket}/export/") == folder

    dicom_files = sorted(site / rel for rel, f in truth["files"].items()
                         if f["type"] in ("dicom", "duplicate", "conflict"))
    orthanc_server.clear()  # the server is shared by the session: start empty, leave it empty
    try:
        _stow_raw(orthanc_server.dicomweb_url, (orthanc_server.username, orthanc_server.password), dicom_files)
        monkeypatch.setenv("CURATE_DICOMWEB_USERNAME", orthanc_server.username)
        monkeypatch.setenv("CURATE_DICOMWEB_PASSWORD", orthanc_server.password)
        web = _catalog_of(tmp_path, "dicomweb", "dicomweb+" + orthanc_server.dicomweb_url)
    finally:
        orthanc_server.clear()
    assert web == folder


def test_dicomweb_without_credentials_is_refused_clearly(orthanc_server, tmp_path, monkeypatch):
    from curation.ingest import SourceError

    monkeypatch.delenv("CURATE_DICOMWEB_USERNAME", raising=False)
    monkeypatch.delenv("CURATE_DICOMWEB_PASSWORD", raising=False)
    catalog = Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    with pytest.raises(SourceError, match="cannot be queried"):
        ingest("dicomweb+" + orthanc_server.dicomweb_url, catalog, open_store(str(tmp_path / "s")))
