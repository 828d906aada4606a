"""Synthetic sites for the classification and quality tests, generated once per test session.

HELDOUT_SEED is used by no training command (training uses seeds 101, 202, 303); six patients cover
every vendor with every structural kind both clean and degraded (vendor = patient % 3, degraded
kinds alternate with patient parity).
"""
from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

HELDOUT_SEED = 4242
HELDOUT_PATIENTS = 6


@lru_cache(maxsize=4)
def site(seed: int = HELDOUT_SEED, patients: int = HELDOUT_PATIENTS) -> tuple[Path, dict]:
    """(root, ground truth) of a generated site; removed when the session ends."""
    from synth import generate_site

    root = Path(tempfile.mkdtemp(prefix=f"curate-site-{seed}-"))
    atexit.register(shutil.rmtree, root, True)
    truth = generate_site(root, patients=patients, seed=seed, phi_locations=False, progress=lambda m: None)
    return root, json.loads(json.dumps(truth))
