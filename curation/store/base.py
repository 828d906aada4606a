"""The store interface shared by every stage: zones, key rules and the errors both backends raise.

Every stage reads and writes objects through :class:`Store`, so a pipeline runs unchanged on a local
disk (embedded default) or on S3-compatible object storage (production). Keys are validated
identically in both backends so that a key accepted locally never fails later on S3 (or the reverse).
"""

from __future__ import annotations

import errno
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from curation.vocabulary import Zone

# Temporary objects of the local backend carry this name prefix; keys may not use it, so a stray
# temp file left by a crashed writer can never be mistaken for an object.
TEMP_PREFIX = ".curate-tmp."

# S3 limits keys to 1024 bytes; file systems limit one name to 255 bytes. Enforced in both backends.
MAX_KEY_BYTES = 1024
MAX_SEGMENT_BYTES = 255


class ObjectNotFound(FileNotFoundError):
    """A key is absent from a zone. Subclasses FileNotFoundError so callers may catch either."""

    def __init__(self, zone: Zone, key: str, store_uri: str) -> None:
        super().__init__(errno.ENOENT, f"no object {key!r} in zone {zone.value!r} of store {store_uri}")
        self.zone = zone
        self.key = key
        self.store_uri = store_uri

    def __str__(self) -> str:
        return self.strerror or ""

    def __reduce__(self) -> tuple[type[ObjectNotFound], tuple[Zone, str, str]]:
        # OSError pickles as cls(*args) = cls(errno, message), which does not fit __init__; task
        # runners and process pools pickle exceptions, so rebuild from the real arguments.
        return (type(self), (self.zone, self.key, self.store_uri))


def _check_common(text: str, what: str) -> None:
    if not isinstance(text, str):
        raise ValueError(f"{what} must be a str, got {type(text).__name__}")
    if "\x00" in text:
        raise ValueError(f"{what} {text!r} contains a NUL character")
    if "\\" in text:
        raise ValueError(f"{what} {text!r} contains a backslash; use '/' to separate segments")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise ValueError(f"{what} {text!r} contains a control character")
    if text.startswith("/"):
        raise ValueError(f"{what} {text!r} is absolute; keys are relative to the zone")
    if len(text.encode("utf-8")) > MAX_KEY_BYTES:
        raise ValueError(f"{what} is longer than {MAX_KEY_BYTES} bytes")


def _check_segment(segment: str, text: str, what: str) -> None:
    if segment in (".", ".."):
        raise ValueError(f"{what} {text!r} has a {segment!r} segment")
    if segment.startswith(TEMP_PREFIX):
        raise ValueError(f"{what} {text!r} uses the reserved temp-file prefix {TEMP_PREFIX!r}")
    if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
        raise ValueError(f"{what} {text!r} has a segment longer than {MAX_SEGMENT_BYTES} bytes")


def validate_key(key: str) -> str:
    """Return ``key`` unchanged if it is a safe relative '/'-separated key, else raise ValueError."""
    _check_common(key, "key")
    if key == "":
        raise ValueError("key is empty")
    for segment in key.split("/"):
        if segment == "":
            raise ValueError(f"key {key!r} has an empty segment (leading, trailing or doubled '/')")
        _check_segment(segment, key, "key")
    return key


def validate_prefix(prefix: str) -> str:
    """Like :func:`validate_key`, but '' and a trailing '/' (a "folder" prefix) are allowed."""
    _check_common(prefix, "prefix")
    if prefix == "":
        return prefix
    segments = prefix.split("/")
    if segments[-1] == "":
        segments = segments[:-1]
    for segment in segments:
        if segment == "":
            raise ValueError(f"prefix {prefix!r} has an empty segment")
        _check_segment(segment, prefix, "prefix")
    return prefix


def as_zone(zone: Zone | str) -> Zone:
    """Accept a Zone or its string value; raise ValueError naming the bad zone otherwise."""
    try:
        return Zone(zone)
    except ValueError:
        raise ValueError(f"unknown zone {zone!r}; expected one of {[z.value for z in Zone]}") from None


class Store(ABC):
    """Objects addressed by (zone, key). ``put_*`` is atomic: readers see the old object or the new
    one, never a partial one. ``list`` yields keys in sorted (code point = UTF-8 byte) order."""

    uri: str

    @abstractmethod
    def put_bytes(self, zone: Zone, key: str, data: bytes) -> str:
        """Write ``data`` under ``key`` (replacing any object there) and return its URI."""

    def put_bytes_if_absent(self, zone: Zone, key: str, data: bytes) -> bool:
        """Create ``key`` only if no object is there: True when this call created it, False when one
        existed. LocalStore and S3Store decide atomically, so of several racing writers (publishers of
        one release version, workers creating the vault secret) exactly one gets True; this fallback
        checks then puts, which is safe for one writer only."""
        if self.exists(zone, key):
            return False
        self.put_bytes(zone, key, data)
        return True

    @abstractmethod
    def put_file(self, zone: Zone, key: str, path: Path) -> str:
        """Copy the local file ``path`` under ``key`` and return its URI."""

    @abstractmethod
    def get_bytes(self, zone: Zone, key: str) -> bytes:
        """Return the whole object; raise ObjectNotFound when absent."""

    @abstractmethod
    def open_read(self, zone: Zone, key: str) -> BinaryIO:
        """Return a readable, seekable binary file (the caller closes it); ObjectNotFound when absent."""

    @abstractmethod
    def download(self, zone: Zone, key: str, path: Path) -> Path:
        """Copy the object to the local ``path`` (atomically, parents created) and return ``path``."""

    @abstractmethod
    def exists(self, zone: Zone, key: str) -> bool:
        """True when an object is stored under ``key``."""

    @abstractmethod
    def size(self, zone: Zone, key: str) -> int | None:
        """Size in bytes, or None when absent."""

    @abstractmethod
    def list(self, zone: Zone, prefix: str = "") -> Iterator[str]:
        """Keys starting with ``prefix`` (a plain string prefix, not only whole segments), sorted."""

    @abstractmethod
    def delete(self, zone: Zone, key: str, missing_ok: bool = False) -> None:
        """Remove the object; ObjectNotFound when absent unless ``missing_ok``."""

    @abstractmethod
    def uri_for(self, zone: Zone, key: str) -> str:
        """The URI that names the object (``file:///...`` or ``s3://bucket/...``)."""

    def local_path(self, zone: Zone, key: str) -> Path | None:
        """The object's path on the local disk for backends that have one; None otherwise."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"
