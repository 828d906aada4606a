"""S3 backend (boto3) for any S3-compatible object storage: AWS, MinIO, SeaweedFS, Ceph.

Objects live at ``s3://<bucket>/<prefix>/<zone>/<key>``. A put is one PUT (or one multipart upload
for big files, which S3 also publishes atomically on completion), so readers never see a partial
object. The endpoint comes from ``CURATE_S3_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL``), credentials
and region from the usual AWS variables/profiles; addressing is path-style so that loopback and
on-premises servers without wildcard DNS work.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from curation.settings import settings
from curation.store.base import (
    TEMP_PREFIX,
    ObjectNotFound,
    Store,
    Zone,
    as_zone,
    validate_key,
    validate_prefix,
)

_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
#: What a server answers to a conditional put (If-None-Match: *) when the key exists; 409 is AWS's
#: answer while another conditional write to the key is in flight (the other writer wins or fails).
_EXISTS_CODES = frozenset({"412", "PreconditionFailed", "409", "ConditionalRequestConflict"})
_SPOOL_IN_MEMORY = 16 * 1024 * 1024
_CHUNK = 8 * 1024 * 1024


def s3_endpoint_from_env() -> str | None:
    """The S3 endpoint configured for the platform, or None for AWS itself."""
    return settings().s3_endpoint_url


def make_s3_client(endpoint_url: str | None = None, **config: Any) -> Any:
    """A boto3 S3 client for the configured endpoint, path-style, with retries.

    Each call builds its own session, so clients can be made per thread; the client itself is
    thread-safe. ``config`` overrides entries of the botocore ``Config``.
    """
    session = boto3.session.Session()
    region = session.region_name or os.environ.get("AWS_REGION") or "us-east-1"
    settings: dict[str, Any] = {
        "signature_version": "s3v4",
        "s3": {"addressing_style": "path"},
        "retries": {"max_attempts": 5, "mode": "standard"},
        "max_pool_connections": 32,
        "connect_timeout": 10,
        "read_timeout": 120,
    }
    settings.update(config)
    return session.client(
        "s3",
        endpoint_url=endpoint_url or s3_endpoint_from_env(),
        region_name=region,
        config=Config(**settings),
    )


def _is_missing(error: ClientError) -> bool:
    return str(error.response.get("Error", {}).get("Code", "")) in _MISSING_CODES


class S3Store(Store):
    """Objects in one bucket under an optional prefix.

    Big files go through boto3's transfer manager (multipart above ``multipart_threshold``).
    ``list`` sorts the keys itself because some S3-compatible servers list directory by directory
    rather than in strict byte order.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: Any | None = None,
        endpoint_url: str | None = None,
        multipart_threshold: int = 64 * 1024 * 1024,
        multipart_chunksize: int = 16 * 1024 * 1024,
    ) -> None:
        if not bucket or "/" in bucket:
            raise ValueError(f"invalid bucket name {bucket!r}")
        prefix = prefix.strip("/")
        if prefix:
            validate_key(prefix)
        self.bucket = bucket
        self.prefix = prefix
        self.uri = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        self.client = client if client is not None else make_s3_client(endpoint_url)
        self.transfer_config = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=multipart_chunksize,
            max_concurrency=4,
        )

    # -- names ---------------------------------------------------------------------------------
    def _zone_prefix(self, zone: Zone) -> str:
        return f"{self.prefix}/{zone.value}/" if self.prefix else f"{zone.value}/"

    def _object_key(self, zone: Zone | str, key: str) -> tuple[Zone, str]:
        zone = as_zone(zone)
        validate_key(key)
        return zone, self._zone_prefix(zone) + key

    def uri_for(self, zone: Zone, key: str) -> str:
        return f"s3://{self.bucket}/{self._object_key(zone, key)[1]}"

    # -- writes --------------------------------------------------------------------------------
    def put_bytes(self, zone: Zone, key: str, data: bytes) -> str:
        zone, name = self._object_key(zone, key)
        self.client.put_object(Bucket=self.bucket, Key=name, Body=bytes(data))
        return f"s3://{self.bucket}/{name}"

    def put_bytes_if_absent(self, zone: Zone, key: str, data: bytes) -> bool:
        """Create ``key`` only if no object is there (a conditional put, ``If-None-Match: *``): True
        when this call created it, False when one existed. The server decides, so of several racing
        writers exactly one gets True. AWS S3 honours the condition since 2024, SeaweedFS 4.x too
        (tests/release/test_publish_race.py); a server that ignores it would let every writer win."""
        zone, name = self._object_key(zone, key)
        try:
            self.client.put_object(Bucket=self.bucket, Key=name, Body=bytes(data), IfNoneMatch="*")
        except ClientError as error:
            if str(error.response.get("Error", {}).get("Code", "")) in _EXISTS_CODES:
                return False
            raise
        return True

    def put_file(self, zone: Zone, key: str, path: Path) -> str:
        zone, name = self._object_key(zone, key)
        source = Path(path)
        if not source.is_file():
            raise FileNotFoundError(f"source file {str(source)!r} does not exist or is not a file")
        self.client.upload_file(str(source), self.bucket, name, Config=self.transfer_config)
        return f"s3://{self.bucket}/{name}"

    def delete(self, zone: Zone, key: str, missing_ok: bool = False) -> None:
        zone, name = self._object_key(zone, key)
        # S3 deletes silently; look first so that both backends report a missing object alike.
        if not missing_ok and not self.exists(zone, key):
            raise ObjectNotFound(zone, key, self.uri)
        self.client.delete_object(Bucket=self.bucket, Key=name)

    # -- reads ---------------------------------------------------------------------------------
    def _get(self, zone: Zone, key: str, name: str) -> Any:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=name)["Body"]
        except ClientError as error:
            if _is_missing(error):
                raise ObjectNotFound(zone, key, self.uri) from None
            raise

    def get_bytes(self, zone: Zone, key: str) -> bytes:
        zone, name = self._object_key(zone, key)
        body = self._get(zone, key, name)
        try:
            return body.read()
        finally:
            body.close()

    def open_read(self, zone: Zone, key: str) -> BinaryIO:
        """Spool the object (memory up to 16 MiB, then a temp file) so the handle is seekable like
        a local file: pydicom and friends seek."""
        zone, name = self._object_key(zone, key)
        body = self._get(zone, key, name)
        spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115
        try:
            for chunk in body.iter_chunks(_CHUNK):
                spool.write(chunk)
        except BaseException:
            spool.close()
            raise
        finally:
            body.close()
        spool.seek(0)
        return spool  # type: ignore[return-value]

    def download(self, zone: Zone, key: str, path: Path) -> Path:
        zone, name = self._object_key(zone, key)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f"{TEMP_PREFIX}{secrets.token_hex(8)}")
        try:
            self.client.download_file(self.bucket, name, str(temp), Config=self.transfer_config)
            os.replace(temp, target)
        except ClientError as error:
            temp.unlink(missing_ok=True)
            if _is_missing(error):
                raise ObjectNotFound(zone, key, self.uri) from None
            raise
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return target

    def _head(self, zone: Zone, key: str) -> dict[str, Any] | None:
        zone, name = self._object_key(zone, key)
        try:
            return self.client.head_object(Bucket=self.bucket, Key=name)
        except ClientError as error:
            if _is_missing(error):
                return None
            raise

    def exists(self, zone: Zone, key: str) -> bool:
        return self._head(zone, key) is not None

    def size(self, zone: Zone, key: str) -> int | None:
        head = self._head(zone, key)
        return None if head is None else int(head["ContentLength"])

    def list(self, zone: Zone, prefix: str = "") -> Iterator[str]:
        zone = as_zone(zone)
        validate_prefix(prefix)
        base = self._zone_prefix(zone)
        keys: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=base + prefix):
            for item in page.get("Contents", []):
                name = item["Key"]
                # Directory markers ("folder/") made by other tools are not objects.
                if not name.endswith("/"):
                    keys.append(name[len(base):])
        keys.sort()
        return iter(keys)
