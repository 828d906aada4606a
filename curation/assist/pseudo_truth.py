"""The model as pseudo ground truth for reader QC (MarkIt's "better than random" filter): a round's
readings get the model's probability of each item and label in `ai_probability`, which the
agreement library's `ai_filter` rule (curation.agreement.qc) judges readers against. Only the model
the round was dispatched with counts (its name and version are in the round's params), so a later
model's answers never rewrite an old round's QC."""
from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import select

from curation.agreement.table import Readings
from curation.assist.predictions import item_probabilities
from curation.catalog import Catalog
from curation.catalog.models import AnnotationItem, AnnotationRound


def round_model(catalog: Catalog, round_id: int) -> dict[str, str] | None:
    """The model {name, version} whose suggestions the round's readers were shown, if one ran."""
    with catalog.session() as s:
        rnd = s.get(AnnotationRound, round_id)
        model = (rnd.params or {}).get("model") if rnd is not None else None
    return {"name": str(model["name"]), "version": str(model["version"])} if model else None


def with_ai_probability(catalog: Catalog, round_id: int, data: Any) -> Any:
    """`data` (a `RoundReadings`) with `ai_probability` on every reading of an item and label the
    round's model answered; unchanged when no model ran."""
    model = round_model(catalog, round_id)
    if model is None:
        return data
    with catalog.session() as s:
        series = {i.item_key: i.series_id for i in s.scalars(
            select(AnnotationItem).where(AnnotationItem.round_id == round_id))}
    probabilities = item_probabilities(catalog, series, model)
    if not probabilities:
        return data
    frame = data.readings.frame.copy()
    frame["ai_probability"] = [probabilities.get((i, k)) for i, k in zip(frame["item"], frame["label"])]
    frame["ai_probability"] = frame["ai_probability"].astype(float)
    return dataclasses.replace(data, readings=Readings(frame))


__all__ = ["round_model", "with_ai_probability"]
