"""What readers did with a model's suggestions, read from the annotation service's JSON export
(`GET /api/projects/{id}/export/json`, each reading's `assist` record, ai_interface.md section 2):
the tables the validation report (curation.agreement.validation) takes. Readers stay as the export
names them; a caller that keeps the tables pseudonymises them as collect does."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

_READ, _SUBMITTED = "annotate", "submitted"


@dataclass(frozen=True)
class AssistTables:
    """readings: item, label, annotator, value (the submitted, aided answer); assisted: item, label,
    annotator, unaided, aided (blind-first readings only); suggestions: item, label, annotator,
    box_index (None: the label's call), action, reason; boxes: item, label (the finding a region
    outlines), annotator, x0, y0, x1, y1."""

    readings: pd.DataFrame
    assisted: pd.DataFrame
    suggestions: pd.DataFrame
    boxes: pd.DataFrame


def _value(v: Any) -> int:
    return int(bool(v))


def export_tables(export: Mapping[str, Any], regions: Mapping[str, str] | None = None) -> AssistTables:
    """The tables of the submitted readings (verifications and skips left out) of a JSON export;
    `regions`: region label -> the yes/no label it outlines (a label schema's `regions`)."""
    regions = dict(regions or {})
    readings, assisted, suggestions, boxes = [], [], [], []
    for r in export["readings"]:
        if r.get("kind") != _READ or r.get("status") != _SUBMITTED:
            continue
        item, who = str(r["item"]["external_id"]), str(r["annotator"])
        aided = {lv["label"]: _value(lv["value"]) for lv in r.get("labels") or []}
        readings += [{"item": item, "label": label, "annotator": who, "value": v} for label, v in aided.items()]
        assist = r.get("assist") or {}
        for lv in assist.get("unaided") or []:
            if lv["label"] in aided:
                assisted.append({"item": item, "label": lv["label"], "annotator": who, "unaided": _value(lv["value"]),
                                 "aided": aided[lv["label"]]})
        suggestions += [{"item": item, "label": s["label"], "annotator": who, "box_index": s.get("box_index"),
                         "action": s["action"], "reason": s.get("reason") or ""} for s in assist.get("suggestions") or []]
        for roi in r.get("rois") or []:
            if roi.get("kind") == "box" and len(roi.get("points") or []) == 2:
                (x0, y0), (x1, y1) = roi["points"]
                boxes.append({"item": item, "label": regions.get(roi["label"], roi["label"]), "annotator": who,
                              "x0": min(x0, x1), "y0": min(y0, y1), "x1": max(x0, x1), "y1": max(y0, y1)})
    return AssistTables(
        readings=pd.DataFrame(readings, columns=["item", "label", "annotator", "value"]),
        assisted=pd.DataFrame(assisted, columns=["item", "label", "annotator", "unaided", "aided"]),
        suggestions=pd.DataFrame(suggestions, columns=["item", "label", "annotator", "box_index", "action", "reason"]),
        boxes=pd.DataFrame(boxes, columns=["item", "label", "annotator", "x0", "y0", "x1", "y1"]))


__all__ = ["AssistTables", "export_tables"]
