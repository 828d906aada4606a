"""PredictOperator: a findings model over a round's selected items before dispatch
(`curation.assist.predictions`), so readers see its suggestions and QC can use its probabilities.

Skips cleanly (the round goes on without suggestions, with a warning) when no model is named, the
named model is not installed or cannot be built (module or weights missing), or it accepts none of
the selected kinds. XCom: the model's name and version and counts;
the answers themselves are in the derived zone and the catalog.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk.exceptions import AirflowSkipException

from operators.base import CurationOperator

#: The pool of CPU inference (include/airflow/pools.json): torch uses the worker's cores, one run at a time.
INFERENCE_POOL = "curate_inference"


class PredictOperator(CurationOperator):
    """Run the findings model `model` (an entry point of `curate.findings_models`) over the selected
    items, `batch_size` images per call, on the CPU."""

    template_fields: Sequence[str] = ("selected", "model", "batch_size")
    ui_color = "#fdebd0"

    def __init__(self, *, selected: Mapping[str, Any], model: str = "chest", batch_size: int = 8,
                 **kwargs: Any) -> None:
        kwargs.setdefault("pool", INFERENCE_POOL)
        super().__init__(**kwargs)
        self.selected, self.model, self.batch_size = selected, model, batch_size

    def execute(self, context: Any) -> dict[str, Any]:
        from curation.assist.predictions import PredictConfig, predict_items
        from curation.assist.registry import ModelNotFound, available, load_model
        from curation.vocabulary import StageStatus

        if not self.model:
            raise AirflowSkipException("no findings model named: the round goes without suggestions")
        try:
            model = load_model(str(self.model))
        except ModelNotFound as exc:  # a round goes on without suggestions, loudly
            self.log.warning("%s (installed: %s): no suggestions this round", exc, sorted(available()) or "none")
            raise AirflowSkipException(f"findings model {self.model!r} is not available") from None
        info = model.info
        items = list((self.selected or {}).get("items") or [])
        if not any(i.get("kind") in info.kinds for i in items):
            raise AirflowSkipException(f"model {info.name} {info.version} accepts {list(info.kinds)}; none of the "
                                       f"{len(items)} selected items is of these kinds")
        hook = self.hook()
        results = predict_items(hook.get_catalog(), hook.get_store(), model, items,
                                PredictConfig(batch_size=int(self.batch_size)))
        done = [r for r in results if r.status == StageStatus.OK]
        images = sum(int(r.metrics.get("images", 0)) for r in done)
        cpu_s = sum(float(r.metrics.get("cpu_s", 0.0)) for r in done if not r.reused)
        self.log.info("model %s %s: %d of %d items predicted (%d reused), %d images, %.2f CPU s of inference",
                      info.name, info.version, len(done), len(items), sum(r.reused for r in done), images, cpu_s)
        return {"model": {"name": info.name, "version": info.version}, "items": len(done),
                "skipped": len(results) - len(done), "reused": sum(bool(r.reused) for r in done), "images": images,
                "cpu_s": round(cpu_s, 3)}


__all__ = ["INFERENCE_POOL", "PredictOperator"]
