"""The vault zone: the site secret (HMAC key) and the encrypted re-identification map.

Nothing here is ever written to a curated zone. The map is a Fernet token (AES-128-CBC +
HMAC-SHA256, from ``cryptography``) keyed by a separate key file, so holding the pseudonymisation
secret alone does not reveal identities, and reading the map needs the key."""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

SECRET_BYTES = 32


def _write_private(path: Path, data: bytes) -> None:
    """Atomic write of a 0600 file (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def load_or_create_secret(path: str | os.PathLike) -> bytes:
    """Read the site secret, creating a random one (mode 0600) if the file does not exist."""
    p = Path(path)
    if not p.exists():
        _write_private(p, secrets.token_hex(SECRET_BYTES).encode() + b"\n")
    raw = p.read_bytes().strip()
    if len(raw) < 16:
        raise ValueError(f"site secret file {p} is shorter than 16 bytes")
    return raw


def load_or_create_key(path: str | os.PathLike) -> bytes:
    """Fernet key of the re-identification map, created (0600) if missing."""
    p = Path(path)
    if not p.exists():
        _write_private(p, Fernet.generate_key() + b"\n")
    return p.read_bytes().strip()


class ReidentificationMap:
    """pseudonymous PatientID -> original identifiers, stored encrypted in one file.

    ``merge`` reads, updates and rewrites the file atomically; a run merges once at its end so a
    process pool never writes concurrently."""

    def __init__(self, path: str | os.PathLike, key: bytes):
        self.path = Path(path)
        self._fernet = Fernet(key)

    def read(self) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        try:
            return json.loads(self._fernet.decrypt(self.path.read_bytes()))
        except InvalidToken as exc:
            raise PermissionError(f"re-identification map {self.path}: wrong key or damaged file") from exc

    def merge(self, entries: dict[str, dict[str, Any]]) -> int:
        """Merge ``{pseudonym: {field: value, "studies": {...}}}``; returns the patient count."""
        if not entries:
            return len(self.read())
        current = self.read()
        for pid, info in entries.items():
            slot = current.setdefault(pid, {})
            studies = {**slot.get("studies", {}), **info.get("studies", {})}
            slot.update({k: v for k, v in info.items() if k != "studies"})
            slot["studies"] = studies
        _write_private(self.path, self._fernet.encrypt(json.dumps(current, sort_keys=True).encode()))
        return len(current)

    def lookup(self, pseudonym: str) -> dict[str, Any] | None:
        return self.read().get(pseudonym)


def read_map_fragments(blobs: list[bytes], key: bytes) -> dict[str, Any]:
    """Merge several encrypted map fragments (the pipeline writes one per series so that parallel
    tasks never rewrite a shared object)."""
    f = Fernet(key)
    merged: dict[str, Any] = {}
    for blob in blobs:
        try:
            part = json.loads(f.decrypt(blob))
        except InvalidToken as exc:
            raise PermissionError("re-identification map fragment: wrong key or damaged") from exc
        for pid, info in part.items():
            slot = merged.setdefault(pid, {"studies": {}})
            slot.update({k: v for k, v in info.items() if k != "studies"})
            slot["studies"].update(info.get("studies", {}))
    return merged


def encrypt_map(entries: dict[str, Any], key: bytes) -> bytes:
    return Fernet(key).encrypt(json.dumps(entries, sort_keys=True).encode())
