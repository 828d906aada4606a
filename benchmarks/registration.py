"""Registration benchmark: our default against dipy's AffineRegistration defaults and SimpleITK's
registration-method defaults, side by side, in one run, on 128x128x64 synthetic head pairs.

Each pair: the analytic head phantom (synth.phantom) sampled on a 128x128x64 grid of
1.8 x 1.8 x 3 mm with partial volume (2x2x2 sub-samples per voxel) and 2% Rician noise, the moving
image after a random rigid motion (axis random, 3-10 degrees, 4.5-15 mm), contrasts the same or
different (T2, T1, FLAIR, DWI b0). Error: mean target registration error over the head's voxels
(true vs estimated fixed -> moving mapping) and the residual rotation angle.

Contenders (rigid, all starting from the images' physical placement, 2 threads):
- ours: `curation.registration.register_images` with include/registration/default.yaml;
- dipy: `AffineRegistration()` with every default (MI 32 bins on all voxels, levels [1000, 500, 100],
  sigmas [3, 1, 0], factors [4, 2, 1], L-BFGS-B), `RigidTransform3D`, starting at identity;
- SimpleITK: `ImageRegistrationMethod` with its defaults where it has them (linear interpolator, no
  sampling = every voxel, one level, no smoothing) and Mattes MI at its default 50 bins; where it
  has none, the values of SimpleITK's own examples: Euler3D initialised by
  CenteredTransformInitializer(GEOMETRY), GradientDescent(learningRate=1.0, 100 iterations),
  SetOptimizerScalesFromPhysicalShift().

Usage: .venv/bin/python benchmarks/registration.py [--pairs 6] [--seed 0] [--out results.json]
       .venv/bin/python benchmarks/registration.py --grid 3mm-slab --pairs 10 --methods "ours (default)"

Study mode (issue 16, throughput): `register_study` on one study of a synthetic site (one folder per
series, as `curate synth` writes them), with the default and with the settings before the alignment
check and the cheaper motion-correction finest level (`PREVIOUS_DEFAULT`), one after the other in one
process; CPU seconds of the process (getrusage: every SimpleITK thread) beside wall time and load:
       .venv/bin/python benchmarks/registration.py --study /tmp/r-site/dicom/P00001/S0001 [--repeat 1]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")  # dipy's OpenMP loops: the same 2 cores as SimpleITK

import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

from curation.registration import load_config, register_images, register_study  # noqa: E402
from curation.registration import dipy_engine  # noqa: E402
from synth.registration_pairs import make_pair  # noqa: E402
from curation.registration.transforms import rotation_error_deg, target_registration_error, transform_to_matrix  # noqa: E402

CONTRASTS = [("T2", "T2"), ("T1", "T1"), ("T2", "T1"), ("T2", "FLAIR"), ("T2", "DWI_B0"), ("T1", "FLAIR")]

#: Grids (fixed, and moving when it differs) of the accuracy sweep; "128x128x64" is the acceptance pair.
GRIDS = {
    "128x128x64": {"fixed_shape_zyx": (64, 128, 128), "fixed_spacing_zyx": (3.0, 1.8, 1.8)},
    "3mm-slab": {"fixed_shape_zyx": (32, 64, 64), "fixed_spacing_zyx": (3.0, 3.0, 3.0)},
    "3mm-head": {"fixed_shape_zyx": (64, 64, 64), "fixed_spacing_zyx": (3.0, 3.0, 3.0)},
    "mixed": {"fixed_shape_zyx": (64, 128, 128), "fixed_spacing_zyx": (3.0, 1.8, 1.8),
              "moving_shape_zyx": (50, 80, 80), "moving_spacing_zyx": (3.0, 3.0, 3.0)},
}


def simpleitk_defaults(fixed: sitk.Image, moving: sitk.Image) -> np.ndarray:
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation()
    reg.SetInterpolator(sitk.sitkLinear)
    init = sitk.CenteredTransformInitializer(fixed, moving, sitk.Euler3DTransform(),
                                             sitk.CenteredTransformInitializerFilter.GEOMETRY)
    reg.SetInitialTransform(init, inPlace=False)
    reg.SetOptimizerAsGradientDescent(learningRate=1.0, numberOfIterations=100)
    reg.SetOptimizerScalesFromPhysicalShift()
    return transform_to_matrix(reg.Execute(fixed, moving))


def ours(fixed: sitk.Image, moving: sitk.Image) -> np.ndarray:
    return register_images(fixed, moving, load_config()["coregister"], similarity=False).matrix


def dipy_defaults(fixed: sitk.Image, moving: sitk.Image) -> np.ndarray:
    return dipy_engine.register(fixed, moving, defaults=True).matrix


METHODS = {"ours (default)": ours, "dipy AffineRegistration defaults": dipy_defaults,
           "SimpleITK ImageRegistrationMethod defaults": simpleitk_defaults}


def loadavg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


#: The default before issue 16's throughput work: no alignment check, a dense finest level and its
#: restart in motion correction (overrides of include/registration/default.yaml).
PREVIOUS_DEFAULT = {
    "coregister": {"aligned_below_mm": 0},
    "motion_correction": {"aligned_below_mm": 0, "dense_below_voxels": [60000, 60000, 150000], "final_restarts": 1},
}


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def study_run(study: Path, repeat: int) -> list[dict]:
    """register_study on one study's series folders, previous default vs default; one row per run."""
    dirs = sorted(p for p in study.iterdir() if p.is_dir())
    rows = []
    for _ in range(repeat):
        for name, config in (("previous default", PREVIOUS_DEFAULT), ("default", None)):
            out = Path(tempfile.mkdtemp(prefix="bench-register-"))
            try:
                load0, cpu, wall = loadavg(), _cpu_seconds(), time.perf_counter()
                result = register_study(dirs, out, config)
                cpu, wall = _cpu_seconds() - cpu, time.perf_counter() - wall
                files = sum(1 for f in out.rglob("*.dcm"))
            finally:
                shutil.rmtree(out, ignore_errors=True)
            kept = [s for s in result.series if (s.coregistration or {}).get("optimizer", {}).get("aligned", {})
                    .get("kept_identity")]
            moco_regs = sum(len((s.motion or {}).get("moved_volumes", [])) if config is None else
                            max(len((s.motion or {}).get("volumes", [])) - 1, 0) for s in result.series)
            row = {"config": name, "cpu_s": cpu, "wall_s": wall, "load_start": load0, "load_end": loadavg(),
                   "series": len(result.series), "coregistered": sum(1 for s in result.series if s.coregistration),
                   "kept_identity": len(kept), "volumes_motion_corrected": moco_regs,
                   "derived_series": len(result.derived), "derived_files": files,
                   "reasons": {Path(s.source).name: s.reason for s in result.series if s.reason}}
            rows.append(row)
            print(f"{name:17s} CPU {cpu:6.1f} s  wall {wall:6.1f} s  co-registered {row['coregistered']} "
                  f"(identity kept {len(kept)})  volumes motion-corrected {moco_regs}  derived series "
                  f"{row['derived_series']} ({files} files)  load {load0} -> {row['load_end']}", flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of the contenders")
    ap.add_argument("--grid", choices=sorted(GRIDS), default="128x128x64",
                    help="grid of the pairs (the acceptance benchmark is 128x128x64; others for the accuracy sweep)")
    ap.add_argument("--out", help="write every figure as JSON here")
    ap.add_argument("--study", type=Path, help="study mode: register_study on this study folder (one folder per series)")
    ap.add_argument("--repeat", type=int, default=1, help="study mode: runs of each configuration")
    args = ap.parse_args()
    if args.study:
        print(f"# study {args.study}; load average at start: {loadavg()} ({platform.node()}, {os.cpu_count()} CPUs)")
        rows = study_run(args.study, args.repeat)
        if args.out:
            with open(args.out, "w") as fh:
                json.dump({"study": str(args.study), "rows": rows}, fh, indent=1)
        return 0
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(2)
    methods = [m for m in args.methods.split(",") if m]
    rows = []
    print(f"# grid {args.grid}; load average at start: {loadavg()}  ({platform.node()}, {os.cpu_count()} CPUs, "
          "2 threads used)")
    for i in range(args.pairs):
        fc, mc = CONTRASTS[i % len(CONTRASTS)]
        pair = make_pair(**GRIDS[args.grid], fixed_contrast=fc, moving_contrast=mc, seed=args.seed + i)
        moved = target_registration_error(pair.true_matrix, np.eye(4), pair.head_points)
        for name in methods:
            wall, cpu = time.perf_counter(), time.process_time()
            est = METHODS[name](pair.fixed, pair.moving)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            row = {"pair": i, "fixed": fc, "moving": mc, "method": name, "wall_s": wall, "cpu_s": cpu,
                   "tre_mm": target_registration_error(pair.true_matrix, est, pair.head_points),
                   "rotation_error_deg": rotation_error_deg(pair.true_matrix, est), "motion_tre_mm": moved,
                   "load": loadavg()}
            rows.append(row)
            print(f"pair {i} {fc}<-{mc} (moved {moved:5.2f} mm) {name:45s} wall {wall:7.2f} s  cpu {cpu:7.2f} s  "
                  f"TRE {row['tre_mm']:.3f} mm  rot err {row['rotation_error_deg']:.3f} deg  load {row['load']}",
                  flush=True)
    print("\n| method | pairs | wall s/pair (median, max) | CPU s/pair (median) | TRE mm (mean, max) | "
          "rotation error deg (mean, max) | same-contrast TRE max | cross-contrast TRE max |")
    print("|---|---|---|---|---|---|---|---|")
    summary = {}
    for name in methods:
        r = [x for x in rows if x["method"] == name]
        w = np.array([x["wall_s"] for x in r])
        c = np.array([x["cpu_s"] for x in r])
        t = np.array([x["tre_mm"] for x in r])
        a = np.array([x["rotation_error_deg"] for x in r])
        same = [x["tre_mm"] for x in r if x["fixed"] == x["moving"]]
        cross = [x["tre_mm"] for x in r if x["fixed"] != x["moving"]]
        summary[name] = {"wall_median": float(np.median(w)), "wall_max": float(w.max()), "cpu_median": float(np.median(c)),
                         "tre_mean": float(t.mean()), "tre_max": float(t.max()), "rot_mean": float(a.mean()),
                         "rot_max": float(a.max())}
        print(f"| {name} | {len(r)} | {np.median(w):.2f}, {w.max():.2f} | {np.median(c):.2f} | {t.mean():.3f}, "
              f"{t.max():.3f} | {a.mean():.3f}, {a.max():.3f} | {max(same) if same else float('nan'):.3f} | "
              f"{max(cross) if cross else float('nan'):.3f} |")
    print(f"\n# load average at end: {loadavg()}")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"rows": rows, "summary": summary}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
