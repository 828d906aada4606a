"""One small synthetic site per test session (3 patients: every kind, defect and bad input)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from synth import generate_site

#: Small but complete: 3 patients at a reduced matrix keep the session fixture at a few seconds.
SITE_ARGS = {"patients": 3, "seed": 7, "matrix": 64, "slices": 12}


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth_site")
    truth = generate_site(out, progress=lambda msg: None, **SITE_ARGS)
    on_disk = json.loads((out / "ground_truth.json").read_text())
    assert on_disk == json.loads(json.dumps(truth)), "returned ground truth differs from ground_truth.json"
    return out, truth
