"""CSV (one row per label or ROI, MarkIt's columns and more) and JSON exports."""
from __future__ import annotations

import csv
import io
import json
from typing import Any

from annotation import masks
from annotation.exports.readings import Reading
from annotation.models import Project

# MarkIt exports case, annotator, label, value with confidence, ROI and time per case; these
# columns hold all of those plus the ones a multi-reader project needs (round, level, verification, gold).
CSV_COLUMNS = [
    "project", "round", "item_id", "external_id", "modality", "body_part", "task_id", "task_kind", "verify_level",
    "decision", "status", "annotator", "annotator_level", "schema_version", "is_gold", "gold_score", "record",
    "label", "label_name", "value", "confidence", "roi_kind", "instance", "frame", "sop_instance_uid",
    "x_min", "y_min", "x_max", "y_max", "points", "time_total_s", "time_active_s", "time_idle_s", "time_label_s",
    "skip_reason", "loaded_at", "submitted_at", "quality_decision", "quality_reason",
    "assist_model", "assist_shown", "suggestion_box", "suggestion_action", "suggestion_reason",
]


def _s(ms: int | None) -> str:
    return "" if ms is None else f"{ms / 1000:.3f}"


def rows(project: Project, readings: list[Reading]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for r in readings:
        base = {
            "project": project.name, "round": r.round, "item_id": r.item.id, "external_id": r.item.external_id,
            "modality": r.item.modality, "body_part": r.item.body_part, "task_id": r.task_id, "task_kind": r.kind,
            "verify_level": r.verify_level or "", "decision": r.decision or "", "status": r.status,
            "annotator": r.reader, "annotator_level": r.reader_level, "schema_version": r.schema_version or "",
            "is_gold": int(r.is_gold), "gold_score": "" if r.gold_score is None else r.gold_score,
            "time_total_s": _s(r.wall_ms), "time_active_s": _s(r.active_ms), "time_idle_s": _s(r.idle_ms),
            "skip_reason": r.skip_reason or "", "loaded_at": r.loaded_at.isoformat() if r.loaded_at else "",
            "submitted_at": r.submitted_at.isoformat() if r.submitted_at else "",
            "quality_decision": r.quality_decision or "", "quality_reason": r.quality_reason or "",
        }
        records = _assist_rows(out, base, r)
        if r.quality_decision:
            out.append({**base, "record": "quality"})
            records += 1
        for lv in r.labels:
            out.append({**base, "record": "label", "label": lv["label"],
                        "label_name": r.schema_labels.get(lv["label"], {}).get("name", ""),
                        "value": int(bool(lv["value"])), "confidence": lv["confidence"],
                        "time_label_s": _s(r.label_ms.get(lv["label"]))})
            records += 1
        for roi in r.rois:
            xs, ys, geometry = _geometry(roi)
            inst = r.item.instances[roi["instance"]] if roi["instance"] < len(r.item.instances) else None
            out.append({**base, "record": "roi", "label": roi["label"],
                        "label_name": r.schema_labels.get(roi["label"], {}).get("name", ""), "roi_kind": roi["kind"],
                        "instance": roi["instance"], "frame": roi["frame"],
                        "sop_instance_uid": inst.sop_instance_uid if inst else "",
                        "x_min": round(min(xs), 2), "y_min": round(min(ys), 2), "x_max": round(max(xs), 2),
                        "y_max": round(max(ys), 2), "points": json.dumps(geometry, separators=(",", ":")),
                        "time_label_s": _s(r.label_ms.get(roi["label"]))})
            records += 1
        if records == 0:
            out.append({**base, "record": "none"})
    return out


def _assist_rows(out: list[dict[str, Any]], base: dict[str, Any], r: Reading) -> int:
    """A reading made with model suggestions: its unaided answers (blind first) and each suggestion's fate;
    every row of the reading names the model and whether it was shown."""
    if not r.assist:
        return 0
    a = r.assist
    base.update(assist_model=f"{a['model']['name']} {a['model']['version']}", assist_shown=int(bool(a["shown"])))
    n = 0
    for lv in a.get("unaided") or []:
        out.append({**base, "record": "unaided", "label": lv["label"],
                    "label_name": r.schema_labels.get(lv["label"], {}).get("name", ""),
                    "value": int(bool(lv["value"])), "confidence": lv["confidence"]})
        n += 1
    for s in a.get("suggestions") or []:
        row = {**base, "record": "suggestion", "label": s["label"],
               "label_name": r.schema_labels.get(s["label"], {}).get("name", ""),
               "suggestion_box": "" if s.get("box_index") is None else s["box_index"],
               "suggestion_action": s["action"], "suggestion_reason": s.get("reason", "")}
        if s.get("box"):
            row.update(x_min=round(s["box"][0], 2), y_min=round(s["box"][1], 2), x_max=round(s["box"][2], 2),
                       y_max=round(s["box"][3], 2))
        out.append(row)
        n += 1
    return n


def _geometry(roi: dict) -> tuple[list[float], list[float], object]:
    """x and y extents and the `points` cell: a box's or outline's points; a mask's bounding box and
    its run-length encoding (`{"rows", "columns", "rle"}`, annotation/masks.py)."""
    if roi["kind"] == "mask":
        x0, y0, x1, y1 = masks.bounding_box(masks.roi_mask(roi)) or (0, 0, 0, 0)
        return [x0, x1], [y0, y1], {"rows": roi["rows"], "columns": roi["columns"], "rle": roi["rle"]}
    return [p[0] for p in roi["points"]], [p[1] for p in roi["points"]], roi["points"]


def to_csv(project: Project, readings: list[Reading]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, restval="", lineterminator="\n")
    writer.writeheader()
    for row in rows(project, readings):
        writer.writerow(row)
    return buf.getvalue()


def to_json(project: Project, readings: list[Reading], schemas: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "project": {"id": project.id, "name": project.name, "kind": project.kind, "blind_first": project.blind_first,
                    "readers_per_item": project.readers_per_item, "verification_levels": project.verification_levels},
        "schema_versions": schemas,
        "readings": [
            {
                "task_id": r.task_id, "item": {"id": r.item.id, "external_id": r.item.external_id, "round": r.round,
                                               "modality": r.item.modality, "body_part": r.item.body_part,
                                               "sop_instance_uids": [i.sop_instance_uid for i in r.item.instances]},
                "annotator": r.reader, "annotator_level": r.reader_level, "kind": r.kind, "status": r.status,
                "verify_level": r.verify_level, "decision": r.decision, "schema_version": r.schema_version,
                "is_gold": r.is_gold, "gold_score": r.gold_score, "labels": r.labels, "rois": r.rois, "comment": r.comment,
                "timing": {"total_ms": r.wall_ms, "active_ms": r.active_ms, "idle_ms": r.idle_ms, "per_label_ms": r.label_ms},
                "skip_reason": r.skip_reason,
                "quality": {"decision": r.quality_decision, "reason": r.quality_reason or ""} if r.quality_decision else None,
                "assist": r.assist,
                "loaded_at": r.loaded_at.isoformat() if r.loaded_at else None,
                "submitted_at": r.submitted_at.isoformat() if r.submitted_at else None,
            }
            for r in readings
        ],
    }


def quality_decisions(project: Project, readings: list[Reading]) -> dict[str, Any]:
    """Human quality decisions of a quality-review project: who decided what, when, and why, beside
    what the model had said (the pipeline writes the human decision back as the series' final one)."""
    decisions = []
    for r in readings:
        if r.kind != "annotate" or r.status != "submitted" or not r.quality_decision:
            continue
        model = (r.item.context or {}).get("quality") or {}
        decisions.append({
            "task_id": r.task_id, "item_id": r.item.id, "external_id": r.item.external_id, "round": r.round,
            "is_gold": r.is_gold, "decision": r.quality_decision, "reason": r.quality_reason or "",
            "reader": r.reader, "reader_level": r.reader_level,
            "decided_at": r.submitted_at.isoformat() if r.submitted_at else None,
            "model": {"decision": model.get("decision"), "score": model.get("score"), "reason": model.get("reason", "")},
        })
    return {"project_id": project.id, "project": project.name, "kind": project.kind, "decisions": decisions}
