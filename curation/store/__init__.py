"""Stores: one interface (`Store`), two backends (a local directory and S3), five zones.

`open_store(uri)` picks the backend from the URI: a path or ``file:///path`` gives a LocalStore,
``s3://bucket/prefix`` an S3Store (endpoint from CURATE_S3_ENDPOINT_URL, credentials from the usual
AWS variables).
"""
from __future__ import annotations

from urllib.parse import unquote, urlsplit

from curation.store.base import ObjectNotFound, Store, Zone, validate_key, validate_prefix
from curation.store.local import LocalStore


def open_store(uri: str) -> Store:
    """The store named by `uri` (a folder, file:///folder, or s3://bucket/prefix)."""
    if uri.startswith("s3://"):
        from curation.store.s3 import S3Store

        parts = urlsplit(uri)
        return S3Store(parts.netloc, parts.path.strip("/"))
    if uri.startswith("file://"):
        return LocalStore(unquote(urlsplit(uri).path))
    if "://" in uri:
        raise ValueError(f"unsupported store URI scheme in {uri!r}: use a folder path, file:// or s3://")
    return LocalStore(uri)


__all__ = ["LocalStore", "ObjectNotFound", "Store", "Zone", "open_store", "validate_key", "validate_prefix"]
