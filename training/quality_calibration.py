"""Thresholds of the rule-based quality decisions for CT, radiographs (CR/DX) and ultrasound, set on
training seeds of the synthetic hospital, and their confusion on held-out seeds.

No learned model exists for these kinds, so each defect has one metric aimed at it (RULES) and a
threshold: the midpoint between the worst clean series and the mildest severity-2 series of the
defect it targets, over the training seeds (the `limits_by_kind` section of
include/quality/thresholds.yaml); the exclusion threshold is the mildest severity-4 value. Series are
made one study at a time (`synth.site.defect_study`), not as whole sites.

    python -m training.quality_calibration calibrate --seeds 101 202 303
    python -m training.quality_calibration evaluate --seeds 4242 5353
"""
from __future__ import annotations

import argparse
import math
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from curation.vocabulary import QualityDecision, SeriesKind
from synth import degrade as dg

#: Training seeds (the MR quality classifier's too) and held-out seeds.
TRAIN_SEEDS = (101, 202, 303)
HELDOUT_SEEDS = (4242, 5353)
#: The studies made per seed, their kind and body part, and the defects they can carry.
STUDIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "CT HEAD": (SeriesKind.CT, "HEAD", dg.CT_DEFECTS),
    "CT CHEST": (SeriesKind.CT, "CHEST", dg.CT_DEFECTS),
    SeriesKind.CR: (SeriesKind.CR, "CHEST", dg.XR_DEFECTS),
    SeriesKind.DX: (SeriesKind.DX, "CHEST", dg.XR_DEFECTS),
    SeriesKind.US: (SeriesKind.US, "ABDOMEN", dg.US_DEFECTS),
}
#: (kinds, metric, +1: higher is worse (a max) / -1: lower is worse (a min), defects it targets, reason).
#: CT noise is judged by CNR, not by the noise in HU: routine head and body protocols differ twofold in
#: noise (5 and 10 HU here), so one HU bound cannot split clean body scans from noisy head scans.
RULES: tuple[tuple[tuple[str, ...], str, int, tuple[str, ...], str], ...] = (
    ((SeriesKind.CT,), "ct_cnr", -1, ("low_mas",), "low contrast-to-noise (too little dose)"),
    ((SeriesKind.CT,), "ct_streak_index", 1, ("streaks",), "streaks (metal)"),
    ((SeriesKind.CT,), "ct_ring_index", 1, ("rings",), "rings (detector calibration)"),
    ((SeriesKind.CT,), "ct_truncation", 1, ("truncation",), "body cut by the field of view"),
    ((SeriesKind.CR, SeriesKind.DX), "xr_median_level", 1, ("underexposure",), "under-exposed"),
    ((SeriesKind.CR, SeriesKind.DX), "xr_median_level", -1, ("overexposure",), "over-exposed"),
    ((SeriesKind.DX,), "deviation_index", -1, ("underexposure",), "exposure index below target"),
    ((SeriesKind.DX,), "deviation_index", 1, ("overexposure",), "exposure index above target"),
    ((SeriesKind.CR, SeriesKind.DX), "xr_collimation_cut", 1, ("collimation",), "collimation cuts into the anatomy"),
    ((SeriesKind.CR, SeriesKind.DX), "xr_grid_db", 1, ("grid_lines",), "grid lines"),
    ((SeriesKind.CR, SeriesKind.DX), "xr_sharpness", -1, ("motion_blur",), "blurred (motion)"),
    ((SeriesKind.US,), "us_saturation", 1, ("gain_saturation",), "echo clipped (gain too high)"),
    ((SeriesKind.US,), "us_dropout", 1, ("dropout",), "dark beam (shadow or dead elements)"),
    ((SeriesKind.US,), "us_reverberation", 1, ("reverberation",), "reverberation bands"),
)
#: Calibration and evaluation geometry: the demo site's CT and radiograph matrix; 8 CT slices.
MATRIX, SLICES = 256, 8


def measure(seeds: Iterable[int], severities: Sequence[int] = (0, 1, 2, 3, 4, 5),
            studies: Sequence[str] = tuple(STUDIES), workdir: Path | None = None,
            config: dict | None = None, progress=None) -> list[dict[str, Any]]:
    """One row per (seed, study, defect, severity; severity 0: clean): metrics and decision. Patient
    index = position of the seed in the list (so vendors and pixel storage vary between seeds)."""
    from curation.quality.series import assess_series
    from synth.site import defect_study

    rows = []
    with tempfile.TemporaryDirectory(prefix="curate-qcal-") as tmp:
        root = Path(workdir or tmp)
        for i, seed in enumerate(seeds):
            for what in studies:
                kind, part, defects = STUDIES[what]
                cases = [(None, 0)] + [(t, s) for t in defects for s in severities if s > 0]
                for t, sev in cases:
                    if sev == 0 and 0 not in severities:
                        continue
                    out = root / f"{seed}-{what.replace(' ', '_')}-{t}-{sev}"
                    rec = defect_study(out, seed, i, what, (t, sev) if t else None, matrix=MATRIX, slices=SLICES)
                    r = assess_series([out / f for f in rec["files"]], config=config,
                                      classification={"kind": kind, "body_part": part})
                    rows.append({"seed": seed, "study": what, "kind": kind, "type": t, "severity": sev,
                                 "metrics": r["metrics"], "decision": r["decision"]["decision"],
                                 "reason": r["decision"]["reason"]})
                    if progress:
                        progress(f"{seed} {what} {t or 'clean'} {sev}: {r['decision']['decision']}")
    return rows


def _mid(a: float, b: float) -> float:
    return (a + b) / 2.0


def calibrate(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """limits_by_kind from measured rows: per rule, review at the midpoint between the worst clean
    value and the mildest severity-2 value of its defect, exclude at the mildest severity-4 value."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for kinds, metric, sign, defects, why in RULES:
        mine = [r for r in rows if r["kind"] in kinds and math.isfinite(r["metrics"].get(metric, math.nan))]
        clean = [r["metrics"][metric] for r in mine if r["severity"] == 0]
        s2 = [r["metrics"][metric] for r in mine if r["type"] in defects and r["severity"] == 2]
        s4 = [r["metrics"][metric] for r in mine if r["type"] in defects and r["severity"] == 4]
        if not clean or not s2:
            continue
        worst_clean = max(clean) if sign > 0 else min(clean)
        mild2 = min(s2) if sign > 0 else max(s2)
        review = _mid(worst_clean, mild2)
        separable = (mild2 > worst_clean) if sign > 0 else (mild2 < worst_clean)
        rule: dict[str, Any] = {"max" if sign > 0 else "min": round(review, 4), "action": str(QualityDecision.REVIEW),
                                "why": why}
        if s4:
            mild4 = min(s4) if sign > 0 else max(s4)
            if (mild4 > review) if sign > 0 else (mild4 < review):
                rule["exclude_max" if sign > 0 else "exclude_min"] = round(mild4, 4)
        if not separable:
            rule["note"] = f"not separable on the training seeds: clean {worst_clean:.4g}, severity 2 {mild2:.4g}"
        for k in kinds:
            entry = out.setdefault(str(k), {})  # plain str: yaml.safe_dump refuses enum members
            if metric in entry:  # a second bound on the same metric (exposure: both ends)
                entry[metric].update({kk: v for kk, v in rule.items() if kk not in ("action", "why")})
                entry[metric]["why"] = f"{entry[metric]['why']} / {why}"
            else:
                entry[metric] = dict(rule)
    return out


def confusion(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per kind and severity group (clean, 1, >=2): counts of approve / review / exclude."""
    table: dict[tuple[str, str], dict[str, int]] = {}
    for r in rows:
        group = "clean" if r["severity"] == 0 else ("severity 1" if r["severity"] == 1 else "severity >= 2")
        c = table.setdefault((r["kind"], group), {d: 0 for d in QualityDecision})
        c[r["decision"]] += 1
    return [{"kind": k, "group": g, **c} for (k, g), c in sorted(table.items())]


def _print_rows(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        if r["severity"] == 0 or r["decision"] == QualityDecision.APPROVE:
            right = (r["severity"] >= 2) == (r["decision"] != QualityDecision.APPROVE) or r["severity"] == 1
            flag = "" if right else "  <-- wrong"
            print(f"  {r['seed']} {r['study']:8s} {r['type'] or 'clean':15s} {r['severity']} {r['decision']:8s} "
                  f"{r['reason'][:110]}{flag}")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.quality_calibration", description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=("calibrate", "evaluate"))
    p.add_argument("--seeds", type=int, nargs="+")
    p.add_argument("--severities", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    p.add_argument("--studies", nargs="+", default=list(STUDIES))
    args = p.parse_args(argv)
    seeds = args.seeds or (TRAIN_SEEDS if args.command == "calibrate" else HELDOUT_SEEDS)
    rows = measure(seeds, args.severities, args.studies)
    if args.command == "calibrate":
        import yaml

        for kinds, metric, _, defects, _ in RULES:
            for kind in kinds:
                vals: dict[tuple[str, int], list[float]] = {}
                for r in rows:
                    if r["kind"] == kind and (r["type"] is None or r["type"] in defects):
                        vals.setdefault((r["type"] or "clean", r["severity"]), []).append(r["metrics"].get(metric))
                if vals:
                    print(f"{kind:3s} {metric:18s} " + "; ".join(
                        f"{t}{s or ''} " + " ".join(f"{v:.4g}" for v in vs) for (t, s), vs in sorted(vals.items())))
        print(yaml.safe_dump({"limits_by_kind": calibrate(rows)}, sort_keys=False, width=120))
    else:
        approve, review, exclude = QualityDecision
        print(f"{'kind':5s} {'series':14s} {approve:>8s} {review:>7s} {exclude:>8s}")
        for c in confusion(rows):
            print(f"{c['kind']:5s} {c['group']:14s} {c[approve]:8d} {c[review]:7d} {c[exclude]:8d}")
        print("\ndecision by defect and severity (A approve, R review, X exclude; one letter per seed):")
        for kind in sorted({r["kind"] for r in rows}):
            for t in sorted({r["type"] for r in rows if r["kind"] == kind and r["type"]}):
                cells = []
                for sev in sorted({r["severity"] for r in rows if r["severity"]}):
                    cells.append(f"{sev}:" + "".join(r["decision"][0].upper().replace("E", "X") for r in rows
                                                     if r["kind"] == kind and r["type"] == t and r["severity"] == sev))
                print(f"  {kind:3s} {t:16s} " + "  ".join(cells))
        _print_rows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
