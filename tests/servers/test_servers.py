"""The server fixtures are real: Orthanc stores and serves DICOM through DICOMweb and refuses
anonymous access; the S3 server enforces credentials; PostgreSQL round-trips a table."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import requests
from pydicom.data import get_testdata_file


def test_orthanc_stow_qido_wado_roundtrip_and_auth(orthanc_server):
    files = [Path(get_testdata_file("CT_small.dcm")), Path(get_testdata_file("MR_small.dcm"))]
    assert orthanc_server.stow(files) == 2
    assert requests.get(f"{orthanc_server.url}/system", timeout=10).status_code == 401
    from dicomweb_client.api import DICOMwebClient
    from dicomweb_client.session_utils import create_session_from_auth
    from requests.auth import HTTPBasicAuth

    client = DICOMwebClient(orthanc_server.dicomweb_url,
                            session=create_session_from_auth(HTTPBasicAuth(*orthanc_server.auth)))
    for path in files:
        original = pydicom.dcmread(path)
        found = client.search_for_instances(search_filters={"SOPInstanceUID": original.SOPInstanceUID})
        assert len(found) == 1
        back = client.retrieve_instance(original.StudyInstanceUID, original.SeriesInstanceUID,
                                        original.SOPInstanceUID)
        assert np.array_equal(back.pixel_array, original.pixel_array)
    orthanc_server.clear()
    assert requests.get(f"{orthanc_server.url}/studies", auth=orthanc_server.auth, timeout=10).json() == []


def test_s3_server_enforces_credentials(s3_server):
    import boto3
    import botocore
    import pytest
    from botocore.config import Config

    bucket = s3_server.new_bucket()
    s3_server.client().put_object(Bucket=bucket, Key="k", Body=b"v")
    assert s3_server.client().get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
    intruder = boto3.client("s3", endpoint_url=s3_server.endpoint_url, aws_access_key_id="nobody",
                            aws_secret_access_key="wrong", region_name="us-east-1",
                            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
    with pytest.raises(botocore.exceptions.ClientError):
        intruder.get_object(Bucket=bucket, Key="k")


def test_postgres_table_roundtrip(fresh_postgres_url):
    from sqlalchemy import create_engine, text

    engine = create_engine(fresh_postgres_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id int primary key, v text)"))
        conn.execute(text("INSERT INTO t VALUES (1, 'x')"))
        assert conn.execute(text("SELECT v FROM t WHERE id = 1")).scalar() == "x"
    engine.dispose()
