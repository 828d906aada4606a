"""One small synthetic site, generated and de-identified ONCE per session (both cores); every
acceptance property is asserted on it by tests/deid/test_site.py."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class DeidSite:
    src: Path
    dst: Path
    truth: dict
    report: dict
    secret_file: Path
    secret: bytes


@pytest.fixture(scope="session")
def deid_site(tmp_path_factory) -> DeidSite:
    from synth import generate_site

    from deid.batch import deidentify_tree

    root = tmp_path_factory.mktemp("deid_site")
    truth = generate_site(root / "site", patients=3, seed=0, matrix=64, slices=6, progress=lambda m: None)
    secret_file = root / "vault" / "deid_secret"
    report = deidentify_tree(root / "site" / "dicom", root / "out", secret_file=secret_file, workers=2)
    rep = report.as_dict()
    (root / "report.json").write_text(json.dumps(rep))
    return DeidSite(root / "site" / "dicom", root / "out", truth, rep, secret_file, secret_file.read_bytes().strip())
