"""Training data for the header-feature series classifier, from synthetic sites' MR series, and the fit.

Each MR series gives one header summary (descriptions play no part: the model never sees text);
`jitter` copies with TR/TE/TI/flip scaled by a few percent (seeded) teach it ranges rather than the
exact values of three vendors' protocols.
"""
from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from curation.classify.features import FEATURE_NAMES, header_features
from curation.classify.header import SeriesHeader, read_headers, summarize
from curation.classify.report import truth_kind
from curation.classify.vocabulary import MR_KINDS

TRAIN_SEEDS = (101, 202, 303)
TRAIN_PATIENTS = 6


def site_headers(root: Path, truth: dict[str, Any]) -> list[tuple[SeriesHeader, str]]:
    """(header summary, true kind) of every MR series of a generated site."""
    out = []
    for s in truth["series"]:
        if s.get("modality") != "MR":
            continue
        kind = truth_kind(s["kind"])
        if kind not in {k.value for k in MR_KINDS}:
            continue
        out.append((summarize(read_headers([root / f for f in s["files"]])), kind))
    return out


def jittered(h: SeriesHeader, rng: np.random.Generator, scale: float = 0.08) -> SeriesHeader:
    """A copy with the timing parameters scaled by exp(N(0, scale))."""
    def j(v: float | None) -> float | None:
        return None if v is None else float(v * np.exp(rng.normal(0.0, scale)))

    return replace(h, repetition_time=j(h.repetition_time), echo_time=j(h.echo_time),
                   inversion_time=j(h.inversion_time), flip_angle=j(h.flip_angle))


def build(workdir: Path, seeds: Sequence[int] = TRAIN_SEEDS, patients: int = TRAIN_PATIENTS, jitter: int = 8,
          progress: Callable[[str], None] | None = None) -> tuple[np.ndarray, list[str]]:
    """(features, labels) from the training sites under `workdir` (generated when absent)."""
    from curation.synth import generate_site

    xs, ys = [], []
    for seed in seeds:
        root = Path(workdir) / f"site-{seed}-{patients}"
        gt = root / "ground_truth.json"
        truth = json.loads(gt.read_text()) if gt.exists() else generate_site(
            root, patients=patients, seed=seed, phi_locations=False, progress=progress or (lambda m: None))
        for i, (h, kind) in enumerate(site_headers(root, truth)):
            xs.append(header_features(h))
            ys.append(kind)
            rng = np.random.default_rng(zlib.crc32(f"{seed}/{i}".encode()))
            for _ in range(jitter):
                xs.append(header_features(jittered(h, rng)))
                ys.append(kind)
    return np.stack(xs), ys


def fit(x: np.ndarray, labels: Sequence[str], seeds: Sequence[int] = TRAIN_SEEDS, **overrides: Any):
    """Train the header-feature model; returns (model, meta) ready for `mlp.save`."""
    from qc_models import series_classifier

    classes = [k.value for k in MR_KINDS]
    return series_classifier.train(x, labels, classes, FEATURE_NAMES,
                                   {"name": "series_classifier", "train_seeds": list(seeds)}, **overrides)
