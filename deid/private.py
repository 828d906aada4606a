"""Private attributes: removed, except the Retain Safe Private allow-list in
``include/deid/safe_private.yaml`` (matched by private creator, group and element byte)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

from deid._paths import include_dir


@lru_cache(maxsize=4)
def load_safe_private(path: str | None = None) -> frozenset[tuple[str, int, int]]:
    p = Path(path) if path else include_dir() / "safe_private.yaml"
    data = yaml.safe_load(p.read_text()) or {}
    return frozenset(
        (str(e["creator"]).strip().upper(), int(e["group"]), int(e["element"]) & 0xFF)
        for e in data.get("entries", [])
    )


def private_creators(ds) -> dict[tuple[int, int], str]:
    """(group, block) -> creator string for the private creator elements (gggg,0010-00FF)."""
    out = {}
    for elem in ds.elements():
        tag = int(elem.tag)
        g, e = tag >> 16, tag & 0xFFFF
        if g & 1 and 0x0010 <= e <= 0x00FF:
            v = ds[tag].value
            if isinstance(v, bytes):
                v = v.decode("latin-1")
            out[(g, e)] = str(v or "").strip(" \x00").upper()
    return out


def keep_private(tag: int, creators: dict[tuple[int, int], str], allow: frozenset[tuple[str, int, int]]) -> bool:
    """True when a private data element is on the allow-list (creator elements are decided by
    the caller: kept only while they still own a kept element)."""
    g, e = tag >> 16, tag & 0xFFFF
    if e < 0x1000:
        return False
    creator = creators.get((g, e >> 8))
    return creator is not None and (creator, g, e & 0xFF) in allow
