"""S3 backend (boto3): objects under ``s3://bucket/prefix/<zone>/<key>``.

A PUT is atomic on S3 (readers see the old object or the new one), so no temp-and-rename is needed.
Works with AWS and with S3-compatible servers (SeaweedFS, MinIO, Ceph) through CURATE_S3_ENDPOINT_URL,
using path-style addressing so bucket names need no DNS.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from curation.store.base import ObjectNotFound, Store, Zone, as_zone, validate_key, validate_prefix

#: Files larger than this go up in parallel parts through boto3's transfer manager.
MULTIPART_THRESHOLD = 64 * 1024 * 1024


def make_s3_client(endpoint_url: str | None = None) -> Any:
    """A boto3 S3 client; endpoint from the argument, CURATE_S3_ENDPOINT_URL or AWS_ENDPOINT_URL."""
    import boto3
    from botocore.config import Config

    endpoint = endpoint_url or os.environ.get("CURATE_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
    config = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5, "mode": "standard"},
                    signature_version="s3v4")
    return boto3.client("s3", endpoint_url=endpoint, config=config,
                        region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))


def _is_not_found(exc: Exception) -> bool:
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


class S3Store(Store):
    """Objects in one bucket under an optional prefix, one 'folder' per zone."""

    def __init__(self, bucket: str, prefix: str = "", *, client: Any | None = None,
                 endpoint_url: str | None = None) -> None:
        if not bucket:
            raise ValueError("S3 store needs a bucket name")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if self.prefix:
            validate_prefix(self.prefix + "/")
        self.client = client or make_s3_client(endpoint_url)
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"

    def _key(self, zone: Zone | str, key: str) -> str:
        zone = as_zone(zone)
        validate_key(key)
        return f"{self.prefix}/{zone.value}/{key}" if self.prefix else f"{zone.value}/{key}"

    def uri_for(self, zone: Zone, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(zone, key)}"

    def put_bytes(self, zone: Zone, key: str, data: bytes) -> str:
        self.client.put_object(Bucket=self.bucket, Key=self._key(zone, key), Body=data)
        return self.uri_for(zone, key)

    def put_file(self, zone: Zone, key: str, path: Path) -> str:
        from boto3.s3.transfer import TransferConfig

        self.client.upload_file(str(path), self.bucket, self._key(zone, key),
                                Config=TransferConfig(multipart_threshold=MULTIPART_THRESHOLD))
        return self.uri_for(zone, key)

    def _get(self, zone: Zone, key: str) -> Any:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(zone, key))
        except Exception as exc:
            if _is_not_found(exc):
                raise ObjectNotFound(as_zone(zone), key, self.uri) from None
            raise

    def get_bytes(self, zone: Zone, key: str) -> bytes:
        return self._get(zone, key)["Body"].read()

    def open_read(self, zone: Zone, key: str) -> BinaryIO:
        body = self._get(zone, key)["Body"]
        spool = tempfile.SpooledTemporaryFile(max_size=32 * 1024 * 1024)
        for chunk in body.iter_chunks(1 << 20):
            spool.write(chunk)
        spool.seek(0)
        return spool  # type: ignore[return-value]

    def download(self, zone: Zone, key: str, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".curate-tmp.")
        os.close(fd)
        try:
            try:
                self.client.download_file(self.bucket, self._key(zone, key), tmp)
            except Exception as exc:
                if _is_not_found(exc):
                    raise ObjectNotFound(as_zone(zone), key, self.uri) from None
                raise
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    def size(self, zone: Zone, key: str) -> int | None:
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=self._key(zone, key))["ContentLength"])
        except Exception as exc:
            if _is_not_found(exc):
                return None
            raise

    def exists(self, zone: Zone, key: str) -> bool:
        return self.size(zone, key) is not None

    def list(self, zone: Zone, prefix: str = "") -> Iterator[str]:
        zone = as_zone(zone)
        validate_prefix(prefix)
        base = f"{self.prefix}/{zone.value}/" if self.prefix else f"{zone.value}/"
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base + prefix):
            keys.extend(obj["Key"][len(base):] for obj in page.get("Contents", []))
        keys.sort()
        return iter(keys)

    def delete(self, zone: Zone, key: str, missing_ok: bool = False) -> None:
        if not self.exists(zone, key):
            if missing_ok:
                return
            raise ObjectNotFound(as_zone(zone), key, self.uri)
        self.client.delete_object(Bucket=self.bucket, Key=self._key(zone, key))
