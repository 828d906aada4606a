"""Inference cost of the findings model's predict step (the plugin `chest`, qc_models/findings), on
fresh synthetic chest radiographs (256 x 256, seed 424242: no training cohort used it): images/s for
probabilities alone and for the full answer (probabilities, a heatmap per label on the
image's grid, box proposals), by batch size and heatmap method (`--heatmaps`: the shipped model's
method by default; qc_models/findings/cam.METHODS), with torch on `--threads` CPU threads. Wall time moves
with the machine's load: CPU time (resource.getrusage, all threads) and the load average are printed
beside it.

    .venv/bin/python benchmarks/ai_predict.py [--images 64] [--threads 2] [--batches 1,8,32]
        [--heatmaps logit_map,gradcam,occlusion] [--weights PT] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from curation.assist.plugin import ModelInput  # noqa: E402
from curation.vocabulary import SeriesKind  # noqa: E402
from qc_models.findings.plugin import load  # noqa: E402
from synth.identity import rng_for  # noqa: E402
from synth.xray import chest_image_with_defect  # noqa: E402
from training.findings import cohort_findings  # noqa: E402

SEED = 424242


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def radiographs(n: int, size: int) -> list[ModelInput]:
    return [ModelInput(chest_image_with_defect(size, cohort_findings(SEED, i), rng_for(SEED, "xr", i, 3))[0]
                       .astype(np.float32), None, "DX", SeriesKind.DX, {"item": str(i), "instance_position": 0,
                                                                        "frame": 0})
            for i in range(n)]


def measure(plugin, inputs: list[ModelInput], batch: int, heatmaps: str | None) -> dict[str, float]:  # noqa: ANN001
    """One pass over `inputs` in batches of `batch`: probabilities only (`heatmaps` None) or the full
    answer with heatmap method `heatmaps`."""
    if heatmaps:
        plugin.model.heatmap = heatmaps
    run = plugin.predict if heatmaps else (lambda b: plugin.model.answer([i.pixels for i in b], heatmaps=False))
    run(inputs[:batch])  # warm-up (first-call allocations, MONAI hooks)
    wall0, cpu0 = time.perf_counter(), _cpu()
    for start in range(0, len(inputs), batch):
        run(inputs[start:start + batch])
    wall, cpu = time.perf_counter() - wall0, _cpu() - cpu0
    return {"batch": batch, "heatmaps": heatmaps, "images": len(inputs), "wall_s": round(wall, 3),
            "cpu_s": round(cpu, 3), "images_per_s": round(len(inputs) / wall, 1),
            "images_per_cpu_s": round(len(inputs) / cpu, 1)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batches", default="1,8,32")
    p.add_argument("--heatmaps", default=None, help="heatmap methods, comma-separated (default: the model's)")
    p.add_argument("--weights", type=Path, default=None, help="weights file (default: the shipped one)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    plugin = load(args.weights) if args.weights else load()
    load_s = time.perf_counter() - t0
    inputs = radiographs(args.images, args.size)
    methods = args.heatmaps.split(",") if args.heatmaps else [plugin.model.heatmap]
    rows = [measure(plugin, inputs, int(b), h) for h in (None, *methods) for b in args.batches.split(",")]
    out = {"model": f"{plugin.info.name} {plugin.info.version}", "input_size": plugin.model.size,
           "threads": args.threads, "load_s": round(load_s, 2),
           "image": f"{args.size}x{args.size}", "loadavg": [round(x, 2) for x in os.getloadavg()], "runs": rows}
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"{out['model']}: {args.images} radiographs {out['image']}, torch threads {args.threads}, "
          f"network input {out['input_size']}, model load {out['load_s']} s, load average {out['loadavg']}")
    print("| batch | heatmaps + boxes | images/s (wall) | images per CPU-s | wall s | CPU s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['batch']} | {r['heatmaps'] or 'no'} | {r['images_per_s']} | {r['images_per_cpu_s']} | "
              f"{r['wall_s']} | {r['cpu_s']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
