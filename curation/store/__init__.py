"""Object stores for the curation zones: one interface (:class:`Store`), a local-directory backend
and an S3 backend, chosen by URI with :func:`open_store`.

The S3 backend is imported lazily so that local-only runs do not pay for importing boto3.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from curation.store.base import ObjectNotFound, Store, Zone, validate_key, validate_prefix
from curation.store.local import LocalStore

if TYPE_CHECKING:
    from curation.store.s3 import S3Store, make_s3_client

__all__ = [
    "LocalStore",
    "ObjectNotFound",
    "S3Store",
    "Store",
    "Zone",
    "make_s3_client",
    "open_store",
    "validate_key",
    "validate_prefix",
]


def open_store(uri: str | Path, **options: Any) -> Store:
    """Open the store named by ``uri``.

    ``/abs/path`` or ``file:///abs/path`` gives a :class:`LocalStore` (a relative path is resolved
    against the current directory); ``s3://bucket[/prefix]`` gives an :class:`S3Store` configured
    from the environment (``CURATE_S3_ENDPOINT_URL`` or ``AWS_ENDPOINT_URL``, AWS credentials).
    ``options`` go to the backend's constructor (e.g. ``fsync=False`` for a LocalStore).
    """
    text = str(uri)
    if not text:
        raise ValueError("store URI is empty")
    if text.startswith("s3://"):
        from curation.store.s3 import S3Store

        parts = urlsplit(text)
        if not parts.netloc:
            raise ValueError(f"store URI {text!r} names no bucket (expected s3://bucket/prefix)")
        return S3Store(parts.netloc, parts.path.strip("/"), **options)
    if text.startswith("file://"):
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"store URI {text!r} names a remote host; use file:///absolute/path")
        return LocalStore(Path(unquote(parts.path)), **options)
    if "://" in text:
        raise ValueError(f"store URI {text!r} has an unsupported scheme (use a path, file:// or s3://)")
    return LocalStore(Path(text).absolute(), **options)


def __getattr__(name: str) -> Any:
    if name in ("S3Store", "make_s3_client"):
        from curation.store import s3

        return getattr(s3, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
