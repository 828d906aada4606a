"""The one configuration hash of the platform: SHA-256 of the canonical JSON of a RESOLVED
configuration (every default filled in, files read, model weights named by their content hash).

A stage's idempotency key holds this hash, so it must change whenever what the stage would do
changes: an edited profile, rules or thresholds file, or retrained weights. Hashing a name or a
path instead would let an edited file re-run nothing. No dependencies beyond the standard library:
every package (registration, the stage glue) may import it.
"""
from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, anything not JSON (paths, tuples' items, sets) as text: the same
    configuration always gives the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_plain)


def _plain(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return str(value)


def config_hash(config: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of a resolved configuration (None hashes as {})."""
    return hashlib.sha256(canonical_json({} if config is None else config).encode()).hexdigest()


def file_digest(path: str | os.PathLike[str] | None) -> str | None:
    """SHA-256 of a file's bytes (None when there is no such file): how a configuration names a
    data file or model weights, so a changed file changes the key while a moved one does not."""
    if path is None:
        return None
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return None
    return _digest(str(p.resolve()), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=64)
def _digest(path: str, mtime_ns: int, size: int) -> str:
    """Cached per (path, mtime, size): weights are hashed once per process, not once per series."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


__all__ = ["canonical_json", "config_hash", "file_digest"]
