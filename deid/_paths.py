"""Where the shipped data files (Annex E table, profiles, safe-private allow-list) live.

They sit in ``include/deid/`` of the checkout so that they are data, reviewed like data, and
not code; ``DEID_INCLUDE_DIR`` points elsewhere (an installed deployment, a test)."""
from __future__ import annotations

import os
from pathlib import Path


def include_dir() -> Path:
    env = os.environ.get("DEID_INCLUDE_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / "include" / "deid"
