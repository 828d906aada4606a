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
#: The acquisition distribution (synth.acquisitions): its seed (the table's `seed` column for those
#: rows), the settings drawn for training (each with every kind), and the held-back evaluation's seed.
ACQ_SEED = 1901
ACQ_SETTINGS = 12
ACQ_HELDOUT_SEED = 2602
#: Clean series per kind and setting: one per vendor's protocol (the first also gets every defect).
ACQ_CLEAN_VENDORS = 3
TABLE = Path(__file__).resolve().parents[1] / "include" / "quality" / "training_table.csv"
METRIC_COLUMNS = tuple(m for m, _, _ in METRICS)
ACQ_COLUMNS = ("pixel_mm", "slice_mm", "field_t", "three_d")
DEFECT_TYPES = ("noise", "ghosting", "blur", "bias")
#: Clean reference groups (kind at an acquisition bin) need this many clean series, else the next
#: plainer group serves.
MIN_REFERENCE_ROWS = 5
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
    from curation.quality.acquisition import from_header
    from curation.quality.series import _volumes

    rows: list[dict[str, Any]] = []
    types = DEFECT_TYPES
    for s in truth["series"]:
        kind = SeriesKind.T1W.value if s["kind"] == "T1W_POST" else s["kind"]
        if kind not in KINDS:
            continue
        files = [root / f for f in s["files"]]
        arrays, spacing, _ = _volumes(files)
        vol = arrays[0]
        deg = s.get("degradation") or {}
        base = {"seed": truth["seed"], "series": s["series_instance_uid"], "vendor": s["vendor"], "kind": kind,
                "contrast": int(bool(s.get("contrast"))), "augmented": 0,
                **_acq_columns(from_header(files[0], spacing).as_dict())}
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


def _acq_columns(acq: dict[str, Any]) -> dict[str, Any]:
    return {c: (math.nan if acq.get(c) is None else float(acq[c])) for c in ACQ_COLUMNS}


def _acquisition_rows(job: tuple) -> list[dict[str, Any]]:
    """Metric rows of one setting: every kind (vendor rotating), clean and with each defect of the job."""
    from synth.acquisitions import structural_volume

    setting, seed, series = job
    rows = []
    for kind, vendor, defects, augmented in series:
        for defect in (None, *defects):
            vol, spacing, facts = structural_volume(kind, setting, seed, vendor, defect)
            ms = compute_metrics(vol, spacing, kind)
            rows.append(acquisition_row(seed, kind, vendor, setting, defect, augmented, facts, ms, METRIC_COLUMNS))
    return rows


def acquisition_row(seed: int, kind: str, vendor: str, setting: Any, defect: tuple[str, int] | None, augmented: int,
                    facts: Any, metrics: dict[str, Any], columns: Sequence[str], suffix: str = "") -> dict[str, Any]:
    """One training-table row of a synthetic acquisition: its name (kind, vendor, setting; `suffix`
    tells several series of one setting apart), the defect and its severity, the acquisition facts and
    the metric `columns`. Shared by the structural and the DWI/ADC/DCE tables."""
    d_type, sev = defect or ("", 0)
    return {"seed": seed, "series": f"acq-{kind}-{vendor}-{setting.matrix}-{setting.slice_mm:g}mm-"
                                    f"{setting.field_t:g}T-{'3D' if setting.three_d else '2D'}{suffix}",
            "vendor": vendor, "kind": kind, "contrast": 0, "augmented": augmented if defect else 0,
            "type": d_type, "severity": sev, "degraded": int(bool(d_type)), **_acq_columns(facts),
            **{m: metrics.get(m) for m in columns}}


def acquisition_jobs(split: str, seed: int, n_settings: int, clean_vendors: int = ACQ_CLEAN_VENDORS) -> list[tuple]:
    """The series of the acquisition distribution, one job per setting: every kind (vendor rotating),
    clean and once with every defect type, at a seeded severity 1-5 for training ("train", marked
    augmented) or 2-5 for evaluation ("heldout": settings never drawn for training); and clean with
    `clean_vendors` - 1 more vendors' protocols (more clean series per setting: a clean share means
    something, and the model sees each kind's clean spread across vendors at every setting)."""
    from synth.acquisitions import VENDOR_KEYS, settings

    jobs = []
    rng = np.random.default_rng(_seed(split, seed))
    for i, st in enumerate(settings(split, n_settings, seed)):
        series = []
        for ki, kind in enumerate(KINDS):
            vendor = VENDOR_KEYS[(i + ki) % len(VENDOR_KEYS)]
            lo = 1 if split == "train" else 2
            defects = tuple((t, int(rng.integers(lo, 6))) for t in DEFECT_TYPES)
            series.append((kind, vendor, defects, int(split == "train")))
            for j in range(1, min(clean_vendors, len(VENDOR_KEYS))):
                series.append((kind, VENDOR_KEYS[(i + ki + j) % len(VENDOR_KEYS)], (), int(split == "train")))
        jobs.append((st, seed, tuple(series)))
    return jobs


def acquisition_rows(split: str = "train", seed: int | Sequence[int] = ACQ_SEED, n_settings: int = ACQ_SETTINGS,
                     processes: int = 2, clean_vendors: int = ACQ_CLEAN_VENDORS) -> list[dict[str, Any]]:
    """Metric rows of `acquisition_jobs` (in job order, whatever the number of processes); several
    seeds: each seed's settings (its own 2D/3D draws, noise and defect severities) one after another."""
    seeds = [seed] if isinstance(seed, int) else list(seed)
    jobs = [j for s in seeds for j in acquisition_jobs(split, s, n_settings, clean_vendors)]
    return run_jobs(_acquisition_rows, jobs, processes)


def run_jobs(fn: Callable[[tuple], list[dict[str, Any]]], jobs: Sequence[tuple], processes: int = 2
             ) -> list[dict[str, Any]]:
    """fn's rows of every job, in job order, in `processes` spawned processes (1: here)."""
    if processes <= 1:
        return [r for j in jobs for r in fn(j)]
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(processes) as pool:
        return [r for rows in pool.map(fn, jobs, chunksize=1) for r in rows]


def build_table(workdir: Path, seeds: Sequence[int] = TRAIN_SEEDS, patients: int = TRAIN_PATIENTS, augment: int = 4,
                progress: Callable[[str], None] | None = None, acquisitions: bool = True) -> list[dict[str, Any]]:
    """Generate the training sites under `workdir` (reused when present) and return all rows, then
    the training part of the acquisition distribution (synth.acquisitions, seed ACQ_SEED)."""
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
    if acquisitions:
        rows.extend(acquisition_rows("train"))
    return rows


def write_table(rows: Iterable[dict[str, Any]], path: Path, metric_columns: Sequence[str] = METRIC_COLUMNS) -> None:
    rows = list(rows)
    cols = ["seed", "series", "vendor", "kind", "contrast", "augmented", "type", "severity", "degraded", *ACQ_COLUMNS,
            *metric_columns]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({c: (repr(float(r[c])) if c in metric_columns or c in ACQ_COLUMNS else r[c]) for c in cols})


def read_table(path: Path, metric_columns: Sequence[str] = METRIC_COLUMNS) -> list[dict[str, Any]]:
    out = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            row: dict[str, Any] = dict(r)
            for c in ("seed", "contrast", "augmented", "severity", "degraded"):
                row[c] = int(row[c])
            for c in (*metric_columns, *ACQ_COLUMNS):
                row[c] = float(row[c]) if row.get(c) not in (None, "") else math.nan
            out.append(row)
    return out


def _group_stats(kr: Sequence[dict[str, Any]], metric_columns: Sequence[str] = METRIC_COLUMNS
                 ) -> dict[str, dict[str, float]]:
    out = {}
    for m in metric_columns:
        t = np.array([transform(m, r[m]) for r in kr])
        raw = np.array([r[m] for r in kr], dtype=float)
        t, raw = t[np.isfinite(t)], raw[np.isfinite(raw)]
        if t.size == 0:
            continue
        med = float(np.median(t))
        scale = float(1.4826 * np.median(np.abs(t - med)))
        lo, hi = np.percentile(raw, [5, 95])
        out[m] = {"median": med, "scale": max(scale, SCALE_FLOOR.get(m, 0.05)), "median_raw": float(np.median(raw)),
                  "lo": float(lo), "hi": float(hi), "n": int(t.size)}
    return out


def reference_stats(rows: Sequence[dict[str, Any]], metric_columns: Sequence[str] = METRIC_COLUMNS
                    ) -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, float]]:
    """Clean reference per group, per metric: median and robust scale (1.4826 MAD) on the model's
    scale, the raw median and the raw 5-95 % range (the "expected" range of a reason). Groups: per
    kind (and kind with contrast, "T1W+C"), and per kind at an acquisition bin (field, pixel size,
    slice thickness: curation.quality.acquisition.reference_keys) with at least MIN_REFERENCE_ROWS
    clean series. Plus the fill values (clean medians over all kinds) for NaN features."""
    from curation.quality.acquisition import from_mapping, reference_keys

    ref: dict[str, dict[str, dict[str, float]]] = {}
    fill: dict[str, float] = {}
    clean = [r for r in rows if not r["degraded"]]
    for m in metric_columns:
        allv = [transform(m, r[m]) for r in clean]
        allv = [v for v in allv if math.isfinite(v)]
        fill[m] = float(np.median(allv)) if allv else 0.0
    for a in ("field_t", "three_d"):
        vals = [float(r.get(a, math.nan)) for r in clean]
        vals = [v / 3.0 if a == "field_t" else v for v in vals if math.isfinite(v)]
        fill[f"acq_{a}"] = float(np.median(vals)) if vals else (1.0 if a == "field_t" else 0.5)
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in clean:
        for key in reference_keys(r["kind"], from_mapping(r), bool(r.get("contrast"))):
            if r.get("contrast") and "+C" not in key:
                continue  # contrast-enhanced series are not clean references of the plain kind
            groups.setdefault(key, []).append(r)
    for key in sorted(groups):
        kr = groups[key]
        if key in KINDS or key.endswith("+C") or len(kr) >= MIN_REFERENCE_ROWS:
            ref[key] = _group_stats(kr, metric_columns)
    return ref, fill


def fit(rows: Sequence[dict[str, Any]], **overrides: Any):
    """Train the quality classifier on table rows; returns (model, meta) ready for `mlp.save`."""
    from qc_models import quality_classifier

    ref, fill = reference_stats(rows)
    x = np.stack([quality_features(r, r["kind"], fill, bool(r["contrast"]), r) for r in rows])
    y = [int(r["degraded"]) for r in rows]
    meta = {"name": "quality_classifier", "kinds": list(KINDS), "reference": ref, "fill": fill,
            "train_seeds": sorted({int(r["seed"]) for r in rows}), "n_augmented": int(sum(r["augmented"] for r in rows))}
    return quality_classifier.train(x, y, FEATURE_NAMES, meta, **overrides)


def evaluate(rows: Sequence[dict[str, Any]], model: Any = "default", config: dict | None = None) -> list[dict[str, Any]]:
    """Decisions on metric rows (e.g. `acquisition_rows("heldout", ACQ_HELDOUT_SEED)`), one per row:
    the row's kind, group (clean / severity 1 / severity >= 2), defect type and the decision."""
    from curation.quality.decision import decide, load_config

    cfg = load_config(config)
    out = []
    for r in rows:
        d = decide(r, r["kind"], cfg, model, contrast=bool(r["contrast"]), acquisition=r)
        group = "clean" if not r["degraded"] else ("severity 1" if r["severity"] == 1 else "severity >= 2")
        out.append({"kind": r["kind"], "group": group, "type": r["type"], "severity": r["severity"],
                    "series": r["series"], "decision": str(d["decision"]), "reason": d["reason"]})
    return out


def confusion(decisions: Sequence[dict[str, Any]]) -> dict[tuple[str, str], dict[str, int]]:
    """Counts of approve / review / exclude per (kind, group)."""
    from curation.vocabulary import QualityDecision

    table: dict[tuple[str, str], dict[str, int]] = {}
    for d in decisions:
        c = table.setdefault((d["kind"], d["group"]), {str(q): 0 for q in QualityDecision})
        c[d["decision"]] += 1
    return dict(sorted(table.items()))


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m training.quality evaluate`: the held-back acquisition settings' confusion per kind."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m training.quality")
    p.add_argument("command", choices=("evaluate",))
    p.add_argument("--seed", type=int, nargs="+", default=[ACQ_HELDOUT_SEED],
                   help="held-back seeds (each: every setting with its own 2D/3D draw, noise and severities)")
    p.add_argument("--settings", type=int, default=8, help="held-back settings per seed (8: every one)")
    p.add_argument("--clean-vendors", type=int, default=ACQ_CLEAN_VENDORS,
                   help="clean series per kind and setting (one per vendor's protocol, at most 3)")
    p.add_argument("--processes", type=int, default=2)
    args = p.parse_args(argv)
    report(evaluate(acquisition_rows("heldout", args.seed, args.settings, args.processes, args.clean_vendors)))
    return 0


def report(decisions: Sequence[dict[str, Any]]) -> None:
    """The confusion per kind and group, each group's share on target, then every wrong decision."""
    from curation.vocabulary import QualityDecision

    approve, review, exclude = (str(q) for q in QualityDecision)
    print(f"{'kind':6s} {'series':14s} {approve:>8s} {review:>7s} {exclude:>8s}  target")
    for (kind, group), c in confusion(decisions).items():
        n = sum(c.values())
        ok = c[approve] / n if group == "clean" else (c[review] + c[exclude]) / n
        target = f"{ok:.0%} {'approved' if group == 'clean' else 'kept out of approve'}"
        print(f"{kind:6s} {group:14s} {c[approve]:8d} {c[review]:7d} {c[exclude]:8d}  {target}")
    for d in decisions:
        wrong = (d["group"] == "clean") != (d["decision"] == approve) and d["group"] != "severity 1"
        if wrong:
            print(f"  wrong: {d['series']} {d['type'] or 'clean'} {d['severity']}: {d['decision']} - {d['reason'][:160]}")


if __name__ == "__main__":
    raise SystemExit(main())
