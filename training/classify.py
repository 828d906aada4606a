"""Training data for the header-feature series classifier, from synthetic sites' MR series, and the fit.

Each MR series gives one header summary (descriptions play no part: the model never sees text);
`jitter` copies with TR/TE/TI/flip scaled by a few percent (seeded) teach it ranges rather than the
exact values of three vendors' protocols.

The summaries of the training sites are shipped as a table (include/classify/training_headers.json,
`curate train classifier --table`), so the weights can be rebuilt from it in seconds
(`--from-table`) instead of generating the sites (minutes); the features and the jitter are made
from the table the same way as from the sites.

The sites alone teach their protocol table, not contrast physics (issue 11: a textbook spin-echo T1,
TR 550 / TE 9.5, was called PDW because the sites' only short-TE spin echo is their PDW). So the
training set also holds `curation.classify.physics.sample(PHYSICS_SEED)`: acquisitions over the whole
range of TR/TE/TI/flip/sequence codes that physics names, generated from the seed (not shipped: it
is code). Its held-out seed (physics.HELDOUT_SEED) is used for evaluation only.
"""
from __future__ import annotations

import json
import os
import zlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from curation.classify import physics
from curation.classify.features import FEATURE_NAMES, header_features
from curation.classify.header import SeriesHeader, read_headers, summarize
from curation.classify.report import truth_kind
from curation.vocabulary import MR_KINDS, Modality

TRAIN_SEEDS = (101, 202, 303)
TRAIN_PATIENTS = 6
TABLE = Path(__file__).resolve().parents[1] / "include" / "classify" / "training_headers.json"


def _mr_series(truth: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """(series record, true kind) of every MR series of a generated site whose kind the model knows."""
    out = []
    for s in truth["series"]:
        kind = truth_kind(s["kind"])
        if s.get("modality") == Modality.MR and kind in {k.value for k in MR_KINDS}:
            out.append((s, kind))
    return out


def jittered(h: SeriesHeader, rng: np.random.Generator, scale: float = 0.08) -> SeriesHeader:
    """A copy with the timing parameters scaled by exp(N(0, scale))."""
    def j(v: float | None) -> float | None:
        return None if v is None else float(v * np.exp(rng.normal(0.0, scale)))

    return replace(h, repetition_time=j(h.repetition_time), echo_time=j(h.echo_time),
                   inversion_time=j(h.inversion_time), flip_angle=j(h.flip_angle))


def site_rows(root: Path, truth: dict[str, Any]) -> list[dict[str, Any]]:
    """Table rows of one generated site: seed, position among its MR series, series UID, true kind and
    the header summary, in the order `features` jitters them."""
    return [{"seed": int(truth["seed"]), "index": i, "series": s["series_instance_uid"], "kind": kind,
             "header": summarize(read_headers([root / f for f in s["files"]])).to_dict()}
            for i, (s, kind) in enumerate(_mr_series(truth))]


def build_table(workdir: Path, seeds: Sequence[int] = TRAIN_SEEDS, patients: int = TRAIN_PATIENTS,
                progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """The rows of the training sites under `workdir` (generated when absent)."""
    from synth import generate_site

    rows: list[dict[str, Any]] = []
    for seed in seeds:
        root = Path(workdir) / f"site-{seed}-{patients}"
        gt = root / "ground_truth.json"
        truth = json.loads(gt.read_text()) if gt.exists() else generate_site(
            root, patients=patients, seed=seed, phi_locations=False, progress=progress or (lambda m: None))
        rows.extend(site_rows(root, truth))
    return rows


def write_table(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> None:
    """The rows as JSON (one row a line: small diffs when a site changes; floats round-trip exactly)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    lines = ",\n".join(json.dumps(r, sort_keys=True) for r in rows)
    Path(path).write_text(f"[\n{lines}\n]\n", encoding="utf-8")


def read_table(path: str | os.PathLike = TABLE) -> list[dict[str, Any]]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def features(rows: Sequence[dict[str, Any]], jitter: int = 8) -> tuple[np.ndarray, list[str]]:
    """(features, labels): each row's header and `jitter` copies seeded by (site seed, position)."""
    xs, ys = [], []
    for r in rows:
        h, kind = SeriesHeader.from_dict(r["header"]), r["kind"]
        xs.append(header_features(h))
        ys.append(kind)
        rng = np.random.default_rng(zlib.crc32(f"{r['seed']}/{r['index']}".encode()))
        for _ in range(jitter):
            xs.append(header_features(jittered(h, rng)))
            ys.append(kind)
    return np.stack(xs), ys


def physics_features(seed: int = physics.TRAIN_SEED, per_recipe: int = physics.PER_RECIPE
                     ) -> tuple[np.ndarray, list[str]]:
    """(features, labels) of the physics-labelled sample (each acquisition once: it is already spread)."""
    acquisitions = physics.sample(seed, per_recipe)
    return np.stack([header_features(a.header) for a in acquisitions]), [a.kind for a in acquisitions]


def training_set(rows: Sequence[dict[str, Any]], physics_seed: int = physics.TRAIN_SEED,
                 per_recipe: int = physics.PER_RECIPE) -> tuple[np.ndarray, list[str]]:
    """(features, labels): the sites' rows with their jitter, then the physics sample."""
    xs, ys = features(rows)
    xp, yp = physics_features(physics_seed, per_recipe)
    return np.concatenate([xs, xp]), [*ys, *yp]


def build(workdir: Path, seeds: Sequence[int] = TRAIN_SEEDS, patients: int = TRAIN_PATIENTS,
          progress: Callable[[str], None] | None = None) -> tuple[np.ndarray, list[str]]:
    """(features, labels) from the training sites under `workdir` (generated when absent) and the physics sample."""
    return training_set(build_table(workdir, seeds, patients, progress))


def fit(x: np.ndarray, labels: Sequence[str], seeds: Sequence[int] = TRAIN_SEEDS, **overrides: Any):
    """Train the header-feature model; returns (model, meta) ready for `mlp.save`."""
    from qc_models import series_classifier

    classes = [k.value for k in MR_KINDS]
    return series_classifier.train(x, labels, classes, FEATURE_NAMES,
                                   {"name": "series_classifier", "train_seeds": list(seeds),
                                    "physics_seed": physics.TRAIN_SEED, "physics_per_recipe": physics.PER_RECIPE},
                                   **overrides)
