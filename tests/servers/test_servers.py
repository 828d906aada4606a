"""The server fixtures are real: Orthanc stores and serves DICOM through DICOMweb and refuses
anonymous access; the S3 server enforces credentials and listens on loopback only; PostgreSQL
round-trips a table in a fresh database."""
from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import boto3
import botocore.exceptions
import numpy as np
import pydicom
import pytest
import requests
from botocore.config import Config
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from curation.store import Zone


def _listening_addresses(pid: int) -> set[str]:
    """Local addresses of the TCP sockets that process ``pid`` listens on (from ``ss``)."""
    out = subprocess.run(["ss", "-Htlnp"], capture_output=True, text=True, check=True).stdout
    return {line.split()[3] for line in out.splitlines() if f"pid={pid}," in line}


def test_orthanc_stow_qido_wado_roundtrip_and_auth(orthanc_server) -> None:
    orthanc_server.clear()  # the server is shared by the session; other tests may have left studies
    files = [Path(get_testdata_file("CT_small.dcm")), Path(get_testdata_file("MR_small.dcm"))]
    assert orthanc_server.stow(files) == 2
    # A dataset without preamble/file meta (the ENVIRONMENT.md gotcha) is stored too.
    bare = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    bare.StudyInstanceUID, bare.SeriesInstanceUID = generate_uid(), generate_uid()
    bare.SOPInstanceUID = bare.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    bare.preamble = None
    assert orthanc_server.stow([bare]) == 1

    assert requests.get(f"{orthanc_server.url}/system", timeout=10).status_code == 401
    assert requests.get(f"{orthanc_server.dicomweb_url}/studies", timeout=10).status_code == 401
    assert requests.get(f"{orthanc_server.url}/system", auth=("curate", "wrong"), timeout=10).status_code == 401

    client = orthanc_server.client()
    for path in files:
        original = pydicom.dcmread(path)
        found = client.search_for_instances(search_filters={"SOPInstanceUID": original.SOPInstanceUID})
        assert len(found) == 1
        back = client.retrieve_instance(original.StudyInstanceUID, original.SeriesInstanceUID,
                                        original.SOPInstanceUID)
        assert np.array_equal(back.pixel_array, original.pixel_array)
        # The files went byte for byte: Orthanc's stored copy has the same content hash.
        instance_id = requests.post(f"{orthanc_server.url}/tools/lookup", data=original.SOPInstanceUID,
                                    auth=orthanc_server.auth, timeout=10).json()[0]["ID"]
        stored = requests.get(f"{orthanc_server.url}/instances/{instance_id}/file", auth=orthanc_server.auth,
                              timeout=10).content
        assert hashlib.sha256(stored).digest() == hashlib.sha256(path.read_bytes()).digest()
    assert len(client.search_for_studies()) == 3
    assert client.search_for_instances(search_filters={"SOPInstanceUID": bare.SOPInstanceUID})

    orthanc_server.clear()
    assert requests.get(f"{orthanc_server.url}/studies", auth=orthanc_server.auth, timeout=10).json() == []


def test_s3_server_enforces_credentials_and_listens_on_loopback_only(s3_server) -> None:
    bucket = s3_server.new_bucket()
    s3_server.client().put_object(Bucket=bucket, Key="k", Body=b"v")
    assert s3_server.client().get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    intruder = boto3.client("s3", endpoint_url=s3_server.endpoint_url, aws_access_key_id="nobody",
                            aws_secret_access_key="wrong", region_name="us-east-1",
                            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
    with pytest.raises(botocore.exceptions.ClientError):
        intruder.get_object(Bucket=bucket, Key="k")
    addresses = _listening_addresses(s3_server.process.pid)
    assert f"127.0.0.1:{s3_server.ports['s3.port']}" in addresses
    assert addresses and all(a.startswith("127.0.0.1:") for a in addresses), addresses
    assert {int(a.rsplit(":", 1)[1]) for a in addresses} <= set(s3_server.ports.values())


def test_s3_bucket_fixture_is_empty_and_its_store_works(s3_bucket, s3_server) -> None:
    store = s3_bucket.store
    assert store.uri == f"s3://{s3_bucket.name}"
    assert list(store.list(Zone.RAW)) == []
    store.put_bytes(Zone.RAW, "x/y", b"payload")
    assert store.get_bytes(Zone.RAW, "x/y") == b"payload"
    assert list(store.list(Zone.RAW)) == ["x/y"]
    listed = s3_server.client().list_objects_v2(Bucket=s3_bucket.name)["Contents"]
    assert [item["Key"] for item in listed] == ["raw/x/y"]


def test_postgres_table_roundtrip(fresh_postgres_url, postgres_url) -> None:
    from sqlalchemy import create_engine, text

    assert fresh_postgres_url != postgres_url
    assert fresh_postgres_url.startswith("postgresql+psycopg://postgres@127.0.0.1:5432/curate_test_")
    engine = create_engine(fresh_postgres_url)
    with engine.begin() as conn:
        assert conn.execute(text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")).scalar() == 0
        conn.execute(text("CREATE TABLE t (id int primary key, v text)"))
        conn.execute(text("INSERT INTO t VALUES (1, 'x')"))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT v FROM t WHERE id = 1")).scalar() == "x"
    engine.dispose()
