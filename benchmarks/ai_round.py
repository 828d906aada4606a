"""What the findings model adds to an annotation round: the predict step (reading each item's
de-identified DICOM, the model's probabilities, Grad-CAM heatmaps and boxes, storing the JSON and
heatmap PNGs in the derived zone, one catalog record per item) and, at dispatch, registering the
stored predictions with the service (PUT /api/items/{id}/predictions per item), against dispatch
alone. Items: synthetic 12-bit PA chest radiographs (`--size` pixels, a nodule in every other one)
in a curated catalog on the local disk; the service is `curate annotation serve` on SQLite in a
subprocess (tests/operators/world.py), the model the installed entry point `--model` (default chest).
Wall time moves with the machine's load: CPU time (getrusage, all threads of this process; the
service is another process) and the load average are printed beside it.

    source include/airflow/env.sh && .venv/bin/python benchmarks/ai_round.py [--items 64] [--size 256]
        [--batch 8] [--threads 2] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--items", type=int, default=64)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--model", default="chest")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from curation.assist.predictions import PredictConfig, predict_items, round_bodies
    from curation.assist.registry import load_model
    from curation.annotation_schema import load_schema
    from curation.pipeline.dispatch import plan_round, record_dispatch, service_items
    from curation.pipeline.select import Selection, select_series
    from curation.store import open_store
    from operators.hooks.annotation import AnnotationServiceHook
    from tests.ai.test_pipeline import write_radiographs
    from tests.operators.world import LABELS_PROJECT, curated_catalog, start_world

    model = load_model(args.model)
    out: dict = {"items": args.items, "size": args.size, "batch": args.batch, "threads": args.threads,
                 "model": {"name": model.info.name, "version": model.info.version}}
    with tempfile.TemporaryDirectory(prefix="ai-round-") as tmp:
        home = Path(tmp) / "curate"
        catalog, series, _ = curated_catalog(home, n_labels=args.items, n_review=0)
        write_radiographs(home, catalog, series, size=args.size)
        store = open_store(home / "store")
        items = select_series(catalog, Selection(series_kinds=("CR",)), "bench")
        world = start_world(Path(tmp) / "service")
        try:
            os.environ["AIRFLOW_CONN_CURATE_ANNOTATION"] = world.connection()
            hook = AnnotationServiceHook()
            load0 = os.getloadavg()[0]
            wall0, cpu0 = time.perf_counter(), _cpu()
            results = predict_items(catalog, store, model, items, PredictConfig(batch_size=args.batch))
            predict_wall, predict_cpu = time.perf_counter() - wall0, _cpu() - cpu0
            schema = load_schema("chest_findings_v1")
            ref = plan_round(catalog, project=LABELS_PROJECT, name="bench", schema=schema, items=items)
            wall0 = time.perf_counter()
            answer = hook.create_round(hook.project_id(LABELS_PROJECT), {"name": "bench", "readers_per_item": 1},
                                       service_items(catalog, store, items))
            record_dispatch(catalog, ref.round_id, answer)
            dispatch_wall = time.perf_counter() - wall0
            wall0, cpu0 = time.perf_counter(), _cpu()
            registered = hook.put_predictions(round_bodies(catalog, store, ref.round_id, out["model"]))
            put_wall, put_cpu = time.perf_counter() - wall0, _cpu() - cpu0
        finally:
            world.server.stop()
    images = sum(int(r.metrics.get("images", 0)) for r in results)
    out.update({
        "predict": {"images": images, "wall_s": round(predict_wall, 2), "cpu_s": round(predict_cpu, 2),
                    "images_per_s": round(images / predict_wall, 2), "images_per_cpu_s": round(images / predict_cpu, 2)},
        "dispatch_without_predictions_wall_s": round(dispatch_wall, 2),
        "register_predictions": {"items": registered, "wall_s": round(put_wall, 2), "client_cpu_s": round(put_cpu, 2)},
        "round_added_wall_s": round(predict_wall + put_wall, 2),
        "load_average": [round(load0, 2), round(os.getloadavg()[0], 2)],
    })
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
