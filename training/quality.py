"""Training data for the quality classifier, from synthetic sites whose ground truth says which
structural MR series are degraded (type, severity) -- and the fit itself.

Rows: one per structural series of each site, plus augmented copies of the clean ones degraded with
the site's own defect functions (`synth.degrade`) at seeded random severities, so every
defect type meets every kind and vendor at every severity. The table is plain JSON-able dicts
(written as CSV by `curate train quality`), and a fit from the same table gives the same weights.
"""
from __future__ import annotations

import csv
import json
import math
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from curation.quality.features import FEATURE_NAMES, KINDS, METRICS, quality_features, transform
from curation.quality.metrics import compute_metrics
from curation.vocabulary import SeriesKind

#: Seeds of the training sites (the tests evaluate on other seeds).
TRAIN_SEEDS = (101, 202, 303)
TRAIN_PATIENTS = 6
TABLE = Path(__file__).resolve().parents[1] / "include" / "quality" / "training_table.csv"
METRIC_COLUMNS = tuple(m for m, _, _ in METRICS)
#: Smallest robust spread of a metric's clean reference (model scale: log units for the log-scaled
#: metrics, i.e. 5 %); a handful of clean series can agree more closely than any real population.
SCALE_FLOOR = {"efc": 0.005, "wm2max": 0.02, "qi1": 0.002, "inu_range": 0.01, "gsr": 0.005}


def _seed(*parts: Any) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode())


def _augment(volume: np.ndarray, degradation: str, severity: int, seed: int) -> np.ndarray:
    """A clean stored volume degraded as the site degrades: the defect, then (for blur, which also
    smooths the noise away) the baseline Rician noise again; noise tops up to the target sigma."""
    from synth import degrade as dg

    rng = np.random.default_rng(seed)
    ref = float(np.percentile(volume, 99))
    if degradation == "noise":
        extra = math.sqrt(max(dg.NOISE_SIGMA[severity] ** 2 - dg.BASELINE_NOISE_SIGMA**2, 0.0))
        out = dg.rician_noise(volume, extra * ref, rng)
    else:
        kw = {"phase_axis": -2} if degradation == "ghosting" else {}
        out = dg.degrade(volume, degradation, severity, rng, **kw)
        if degradation == "blur":
            out = dg.rician_noise(out, dg.BASELINE_NOISE_SIGMA * ref, rng)
    return np.clip(np.rint(out), 0, 4095).astype(np.float32)


def site_rows(root: Path, truth: dict[str, Any], augment: int = 4, progress: Callable[[str], None] | None = None
              ) -> list[dict[str, Any]]:
    """Metric rows of the structural MR series of one generated site (+ `augment` degraded copies of
    each clean one, one per defect type, seeded by site seed and series)."""
    from curation.quality.series import _volumes

    rows: list[dict[str, Any]] = []
    types = ("noise", "ghosting", "blur", "bias")
    for s in truth["series"]:
        kind = SeriesKind.T1W.value if s["kind"] == "T1W_POST" else s["kind"]
        if kind not in KINDS:
            continue
        files = [root / f for f in s["files"]]
        arrays, spacing, _ = _volumes(files)
        vol = arrays[0]
        deg = s.get("degradation") or {}
        base = {"seed": truth["seed"], "series": s["series_instance_uid"], "vendor": s["vendor"], "kind": kind,
                "contrast": int(bool(s.get("contrast"))), "augmented": 0}
        ms = compute_metrics(vol, spacing, kind)
        rows.append({**base, "type": deg.get("type") or "", "severity": int(deg.get("severity") or 0),
                     "degraded": int(bool(deg.get("type"))), **{m: ms.get(m) for m in METRIC_COLUMNS}})
        if not deg.get("type") and augment:
            rng = np.random.default_rng(_seed(truth["seed"], s["series_instance_uid"]))
            for t in types[:augment]:
                sev = int(rng.integers(1, 6))
                v = _augment(vol, t, sev, _seed(truth["seed"], s["series_instance_uid"], t))
                ma = compute_metrics(v, spacing, kind)
                rows.append({**base, "augmented": 1, "type": t, "severity": sev, "degraded": 1,
                             **{m: ma.get(m) for m in METRIC_COLUMNS}})
        if progress:
            progress(f"quality rows: {kind} {s['vendor']} {deg.get('type') or 'clean'}")
    return rows


def build_table(workdir: Path, seeds: Sequence[int] = TRAIN_SEEDS, patients: int = TRAIN_PATIENTS, augment: int = 4,
                progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Generate the training sites under `workdir` (reused when present) and return all rows."""
    from synth import generate_site

    rows: list[dict[str, Any]] = []
    for seed in seeds:
        root = Path(workdir) / f"site-{seed}-{patients}"
        gt = root / "ground_truth.json"
        if gt.exists():
            truth = json.loads(gt.read_text())
        else:
            truth = generate_site(root, patients=patients, seed=seed, phi_locations=False,
                                  progress=progress or (lambda m: None))
        rows.extend(site_rows(root, truth, augment, progress))
    return rows


def write_table(rows: Iterable[dict[str, Any]], path: Path) -> None:
    rows = list(rows)
    cols = ["seed", "series", "vendor", "kind", "contrast", "augmented", "type", "severity", "degraded", *METRIC_COLUMNS]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({c: (repr(float(r[c])) if c in METRIC_COLUMNS else r[c]) for c in cols})


def read_table(path: Path) -> list[dict[str, Any]]:
    out = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            row: dict[str, Any] = dict(r)
            for c in ("seed", "contrast", "augmented", "severity", "degraded"):
                row[c] = int(row[c])
            for c in METRIC_COLUMNS:
                row[c] = float(row[c])
            out.append(row)
    return out


def reference_stats(rows: Sequence[dict[str, Any]]) -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, float]]:
    """Per kind (and per kind with contrast, key "T1W+C"), per metric: median and robust scale
    (1.4826 MAD) of the clean rows on the model's scale, plus the raw median; and the fill value
    (clean median over all kinds) for NaN metrics."""
    ref: dict[str, dict[str, dict[str, float]]] = {}
    fill: dict[str, float] = {}
    clean = [r for r in rows if not r["degraded"]]
    for m in METRIC_COLUMNS:
        allv = [transform(m, r[m]) for r in clean]
        allv = [v for v in allv if math.isfinite(v)]
        fill[m] = float(np.median(allv)) if allv else 0.0
    groups = [(kind, [r for r in clean if r["kind"] == kind and not r.get("contrast")]) for kind in KINDS]
    groups += [(f"{kind}+C", [r for r in clean if r["kind"] == kind and r.get("contrast")]) for kind in KINDS]
    for key, kr in groups:
        if not kr:
            continue
        ref[key] = {}
        for m in METRIC_COLUMNS:
            t = np.array([transform(m, r[m]) for r in kr])
            raw = np.array([r[m] for r in kr], dtype=float)
            t, raw = t[np.isfinite(t)], raw[np.isfinite(raw)]
            if t.size == 0:
                continue
            med = float(np.median(t))
            scale = float(1.4826 * np.median(np.abs(t - med)))
            ref[key][m] = {"median": med, "scale": max(scale, SCALE_FLOOR.get(m, 0.05)),
                           "median_raw": float(np.median(raw))}
    return ref, fill


def fit(rows: Sequence[dict[str, Any]], **overrides: Any):
    """Train the quality classifier on table rows; returns (model, meta) ready for `mlp.save`."""
    from qc_models import quality_classifier

    ref, fill = reference_stats(rows)
    x = np.stack([quality_features(r, r["kind"], fill, bool(r["contrast"])) for r in rows])
    y = [int(r["degraded"]) for r in rows]
    meta = {"name": "quality_classifier", "kinds": list(KINDS), "reference": ref, "fill": fill,
            "train_seeds": sorted({int(r["seed"]) for r in rows}), "n_augmented": int(sum(r["augmented"] for r in rows))}
    return quality_classifier.train(x, y, FEATURE_NAMES, meta, **overrides)
