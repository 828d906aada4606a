"""Make a store ready to write to: its bucket on S3 (created when missing), its folder on disk.

Production stacks start from nothing (docker-compose's `s3-init` job runs `curate store init`); a
store that is already there is left as it is, so the step can run on every start.
"""
from __future__ import annotations

from botocore.exceptions import ClientError

from curation.store.base import Store
from curation.store.local import LocalStore
from curation.store.s3 import S3Store


class StoreNotReady(RuntimeError):
    """The store cannot be made ready (the message says why: credentials, endpoint, permissions)."""


def ensure_store(store: Store) -> str:
    """Create what `store` needs to exist and say what was done: `created` or `exists`."""
    if isinstance(store, LocalStore):  # opening a LocalStore makes its folder
        return "exists"
    if isinstance(store, S3Store):
        try:
            store.client.head_bucket(Bucket=store.bucket)
            return "exists"
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code not in ("404", "NoSuchBucket", "NotFound"):
                raise StoreNotReady(f"bucket {store.bucket!r} cannot be checked: {code or exc}") from exc
        try:
            store.client.create_bucket(Bucket=store.bucket)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):  # another starter won the race
                return "exists"
            raise StoreNotReady(f"bucket {store.bucket!r} cannot be created: {code or exc}") from exc
        return "created"
    raise StoreNotReady(f"do not know how to prepare a {type(store).__name__}")


__all__ = ["StoreNotReady", "ensure_store"]
