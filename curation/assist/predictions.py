"""The predict stage and its outputs: a findings model run over a round's selected items, each item's
answer stored in the derived zone (one JSON per item plus each heatmap as a small 8-bit PNG) and
recorded in the catalog as a `predict` stage record (run once per item, model version and card), and
the annotation service's body (`PUT /api/items/{id}/predictions`) built back from what was stored.

Layout in the derived zone: ``predictions/<model>/<version>/<item key>/prediction.json`` and
``.../heatmap-<label>-<instance position>-<frame>.png``. The item key is the de-identified series key,
so nothing here names a patient; the JSON holds model, item key, probabilities, heatmap keys and boxes.
"""
from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import pandas as pd
from sqlalchemy import select

from curation.assist.inputs import read_inputs
from curation.assist.plugin import FindingsModel, ModelInput, Prediction, check_prediction
from curation.catalog import Catalog, StageRecord
from curation.confighash import config_hash
from curation.pipeline import deid
from curation.pipeline.files import local_files
from curation.pipeline.idempotency import StageKey, find, run_once
from curation.pipeline.result import StageResult
from curation.pipeline.select import ItemRef
from curation.store import Store, Zone
from curation.vocabulary import StageStatus
from qc_models.threads import within_openmp_limit

STAGE = "predict"
STAGE_VERSION = "1"
#: The longest side of a stored heatmap: the viewer scales it to the instance, the heat is coarse anyway.
HEATMAP_MAX_SIDE = 256
PREFIX = "predictions"


@dataclass(frozen=True)
class PredictConfig:
    """How many images one `predict` call gets (CPU memory), and the heatmap's stored size."""

    batch_size: int = 8
    heatmap_max_side: int = HEATMAP_MAX_SIDE


def model_key(model: FindingsModel) -> dict[str, Any]:
    """What identifies a model's answers (the stage's resolved configuration): name, version, card hash."""
    info = model.info
    return {"name": info.name, "version": info.version, "card": config_hash(info.card)}


def item_prefix(model: FindingsModel | Mapping[str, str], item_key: str) -> str:
    name, version = (model.info.name, model.info.version) if hasattr(model, "info") else (model["name"],
                                                                                           model["version"])
    return f"{PREFIX}/{name}/{version}/{item_key}"


def heatmap_png(heat: np.ndarray, max_side: int = HEATMAP_MAX_SIDE) -> bytes:
    """8-bit greyscale PNG of a heatmap in [0, 1] (value = round(255 * heat)), shrunk by area averaging
    so its longest side is at most `max_side`."""
    rows, cols = heat.shape
    scale = min(1.0, max_side / max(rows, cols))
    if scale < 1.0:
        heat = cv2.resize(heat.astype(np.float32), (max(1, round(cols * scale)), max(1, round(rows * scale))),
                          interpolation=cv2.INTER_AREA)
    ok, png = cv2.imencode(".png", np.rint(255.0 * np.clip(heat, 0.0, 1.0)).astype(np.uint8))
    if not ok:
        raise ValueError("could not encode a heatmap as PNG")
    return png.tobytes()


def _key(ref: ItemRef, keys: Sequence[str], model: FindingsModel) -> StageKey:
    return StageKey.of(STAGE, STAGE_VERSION, "series", ref.series_id,
                       config_hash({"item": ref.item_key, "deid": list(keys)}), model_key(model))


def _deid_keys(catalog: Catalog, ref: ItemRef) -> list[str]:
    """The item's de-identified objects in the order the service numbers its instances (their deid record's)."""
    return deid.outputs(catalog, ref)  # type: ignore[arg-type] - an ItemRef names its deid record as a SeriesRef does


def _inputs(store: Store, ref: ItemRef, keys: Sequence[str]) -> list[ModelInput]:
    dicom = [(n, k) for n, k in enumerate(keys) if k.endswith(".dcm")]
    with local_files(store, Zone.DEID, [k for _, k in dicom]) as paths:
        return [i for (n, _), p in zip(dicom, paths)
                for i in read_inputs(p, item=ref.item_key, instance_position=n, kind=ref.kind or "")]


def _write(store: Store, model: FindingsModel, ref: ItemRef, images: Sequence[ModelInput],
           answers: Sequence[Prediction], config: PredictConfig, cpu_s: float) -> StageResult:
    """Store one item's answers (heatmaps first, the JSON that names them last) and summarise them."""
    info, prefix = model.info, item_prefix(model, ref.item_key)
    heatmaps, boxes, per_image = [], [], []
    for image, answer in zip(images, answers):
        pos, frame = int(image.ref["instance_position"]), int(image.ref["frame"])
        rows, cols = image.pixels.shape
        per_image.append({"instance_position": pos, "frame": frame, "rows": rows, "cols": cols,
                          "probabilities": {k: float(v) for k, v in sorted(answer.probabilities.items())}})
        for label, heat in sorted(answer.heatmaps.items()):
            key = f"{prefix}/heatmap-{label}-{pos}-{frame}.png"
            store.put_bytes(Zone.DERIVED, key, heatmap_png(heat, config.heatmap_max_side))
            heatmaps.append({"label": label, "instance_position": pos, "frame": frame, "rows": rows, "cols": cols,
                             "key": key})
        boxes += [{"label": b.label, "instance_position": pos, "frame": frame, "x0": float(b.x0),
                   "y0": float(b.y0), "x1": float(b.x1), "y1": float(b.y1), "score": float(b.score)}
                  for b in answer.boxes]
    # an item's probability of a finding: the most confident of its images (a finding on any image is on the item)
    probabilities = {label: max(im["probabilities"][label] for im in per_image if label in im["probabilities"])
                     for label in info.labels if any(label in im["probabilities"] for im in per_image)}
    body = {"model": {"name": info.name, "version": info.version}, "item": ref.item_key,
            "probabilities": probabilities, "images": per_image, "heatmaps": heatmaps, "boxes": boxes}
    data = json.dumps(body, sort_keys=True).encode()
    json_key = f"{prefix}/prediction.json"
    uri = store.put_bytes(Zone.DERIVED, json_key, data)
    metrics = {"model": body["model"], "item": ref.item_key, "probabilities": probabilities, "images": len(images),
               "heatmaps": len(heatmaps), "boxes": len(boxes), "json": json_key, "cpu_s": round(cpu_s, 4)}
    return StageResult(status=StageStatus.OK, metrics=metrics, output_uri=uri,
                       output_hashes=[hashlib.sha256(data).hexdigest()])


def predict_items(catalog: Catalog, store: Store, model: FindingsModel, items: Sequence[ItemRef | Mapping],
                  config: PredictConfig = PredictConfig()) -> list[StageResult]:
    """Run `model` over the items it accepts (its `kinds`), `batch_size` images per call, each item's
    answer stored and recorded once per (item objects, model name, version, card): a rerun reads the
    stored answers. Items of other kinds or without DICOM pixels come back SKIPPED with the reason."""
    within_openmp_limit()
    refs = [ItemRef.from_xcom(i) for i in items]
    results: dict[int, StageResult] = {}
    todo: list[tuple[int, ItemRef, StageKey]] = []
    for n, ref in enumerate(refs):
        keys = _deid_keys(catalog, ref)
        if ref.kind not in model.info.kinds:
            results[n] = StageResult(status=StageStatus.SKIPPED, reason=f"kind {ref.kind} is not among the model's "
                                     f"{list(model.info.kinds)}", metrics={"item": ref.item_key})
            continue
        key = _key(ref, keys, model)
        prior = find(catalog, key)
        if prior is not None:
            results[n] = prior
        else:
            todo.append((n, ref, key))
    # batch across items: the model sees `batch_size` images per call, whoever they belong to; an item
    # is stored (and its pixels let go) as soon as its last image is answered, so memory holds about
    # one batch and the items it spans, not the round
    pending: dict[int, tuple[ItemRef, StageKey, list[ModelInput], list[Prediction]]] = {}
    cpu: dict[int, float] = {}
    queue: list[tuple[int, ModelInput]] = []

    def run_batch(chunk: list[tuple[int, ModelInput]]) -> None:
        began = time.process_time()
        out = model.predict([i for _, i in chunk])
        spent = (time.process_time() - began) / len(chunk)
        if len(out) != len(chunk):
            raise ValueError(f"model {model.info.name} answered {len(out)} predictions for {len(chunk)} inputs")
        for (n, image), answer in zip(chunk, out):
            check_prediction(model.info, image, answer)
            pending[n][3].append(answer)
            cpu[n] += spent
        for n in [n for n, (_, _, images, answers) in pending.items() if len(answers) == len(images)]:
            ref, key, images, answers = pending.pop(n)

            def work(ref: ItemRef = ref, images: list[ModelInput] = images, answers: list[Prediction] = answers,
                     spent: float = cpu[n]) -> StageResult:
                return _write(store, model, ref, images, answers, config, spent)

            results[n] = run_once(catalog, key, work)

    for n, ref, key in todo:
        images = _inputs(store, ref, _deid_keys(catalog, ref))
        if not images:
            results[n] = StageResult(status=StageStatus.SKIPPED, reason="no DICOM pixel data to predict on",
                                     metrics={"item": ref.item_key})
            continue
        pending[n], cpu[n] = (ref, key, images, []), 0.0
        queue += [(n, i) for i in images]
        while len(queue) >= config.batch_size:
            chunk, queue = queue[:config.batch_size], queue[config.batch_size:]
            run_batch(chunk)
    if queue:
        run_batch(queue)
    return [results[n] for n in range(len(refs))]


def stored_predictions(catalog: Catalog, series_ids: Sequence[int], model: Mapping[str, str] | None = None
                       ) -> dict[int, StageRecord]:
    """The newest OK predict record per series (the newest of `model` {name, version} when given)."""
    wanted = None if model is None else {"name": model["name"], "version": model["version"]}
    query = (select(StageRecord).where(StageRecord.stage == STAGE, StageRecord.subject_type == "series",
                                       StageRecord.status == StageStatus.OK,
                                       StageRecord.subject_id.in_(list(series_ids)))
             .order_by(StageRecord.id))
    out: dict[int, StageRecord] = {}
    with catalog.session() as s:
        for row in s.scalars(query):
            if wanted is None or (row.metrics or {}).get("model") == wanted:
                out[row.subject_id] = row
        for row in out.values():
            s.expunge(row)
    return out


#: What the service takes per item (annotation/schemas.py PredictionsIn): heatmaps and boxes.
SERVICE_MAX_HEATMAPS, SERVICE_MAX_BOXES = 200, 500


def service_body(store: Store, record: StageRecord) -> dict[str, Any]:
    """The service's predictions body for one item, from its stored JSON and heatmap PNGs. An item of
    many images (a CT series under a site's slice model) keeps the heatmaps of the images where the
    label is most probable and the highest-scoring boxes, within what the service takes."""
    body = json.loads(store.get_bytes(Zone.DERIVED, record.metrics["json"]))
    image_p = {(im["instance_position"], im["frame"]): im["probabilities"] for im in body["images"]}
    ranked = sorted(body["heatmaps"], key=lambda h: (-image_p.get((h["instance_position"], h["frame"]), {}).get(
        h["label"], 0.0), h["instance_position"], h["frame"], h["label"]))[:SERVICE_MAX_HEATMAPS]
    heatmaps = [{"label": h["label"], "instance_position": h["instance_position"], "frame": h["frame"],
                 "rows": h["rows"], "cols": h["cols"],
                 "png_base64": base64.b64encode(store.get_bytes(Zone.DERIVED, h["key"])).decode()}
                for h in sorted(ranked, key=lambda h: (h["instance_position"], h["frame"], h["label"]))]
    boxes = body["boxes"] if len(body["boxes"]) <= SERVICE_MAX_BOXES else \
        sorted(body["boxes"], key=lambda b: -b["score"])[:SERVICE_MAX_BOXES]
    return {"model": body["model"], "probabilities": body["probabilities"], "heatmaps": heatmaps, "boxes": boxes}


def item_probabilities(catalog: Catalog, series_ids: Mapping[str, int], model: Mapping[str, str]
                       ) -> dict[tuple[str, str], float]:
    """(item key, label) -> `model`'s probability, for the items (item key -> series id) it answered."""
    records = stored_predictions(catalog, list(series_ids.values()), model)
    by_series: dict[int, list[str]] = {}
    for key, sid in series_ids.items():
        by_series.setdefault(sid, []).append(key)
    return {(key, label): float(p) for sid, r in records.items() for key in by_series[sid]
            for label, p in ((r.metrics or {}).get("probabilities") or {}).items()}


def round_bodies(catalog: Catalog, store: Store, round_id: int, model: Mapping[str, str]) -> dict[int, dict[str, Any]]:
    """Service item id -> predictions body, for the round's registered items that `model` answered."""
    from curation.catalog.models import AnnotationItem

    with catalog.session() as s:
        items = [(i.series_id, i.service_item_id) for i in s.scalars(
            select(AnnotationItem).where(AnnotationItem.round_id == round_id)) if i.service_item_id is not None]
    records = stored_predictions(catalog, [sid for sid, _ in items], model)
    return {item_id: service_body(store, records[sid]) for sid, item_id in items if sid in records}


def prediction_tables(catalog: Catalog, store: Store, series_ids: Mapping[str, int], model: Mapping[str, str]
                      ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What `model` answered for the items (item key -> series id), as the validation report takes it:
    probabilities (item, label, probability) and box proposals (item, label, x0, y0, x1, y1, score)."""
    records = stored_predictions(catalog, list(series_ids.values()), model)
    probabilities, proposals = [], []
    for key, sid in sorted(series_ids.items()):
        if sid not in records:
            continue
        body = json.loads(store.get_bytes(Zone.DERIVED, records[sid].metrics["json"]))
        probabilities += [{"item": key, "label": label, "probability": float(p)}
                          for label, p in sorted(body["probabilities"].items())]
        proposals += [{"item": key, **{k: b[k] for k in ("label", "x0", "y0", "x1", "y1", "score")}}
                      for b in body["boxes"]]
    return (pd.DataFrame(probabilities, columns=["item", "label", "probability"]),
            pd.DataFrame(proposals, columns=["item", "label", "x0", "y0", "x1", "y1", "score"]))


__all__ = ["HEATMAP_MAX_SIDE", "PredictConfig", "STAGE", "heatmap_png", "item_prefix", "item_probabilities",
           "model_key", "predict_items", "prediction_tables", "round_bodies", "service_body", "stored_predictions"]
