"""What changed between two versions of a release: series added, removed and revised (which
columns, pixels included through each series' content hash), consensus labels changed, and counts
with deltas; rendered as the release's CHANGES.md, as IDC's release notes do.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from curation.release.layout import ReleaseTree
from curation.release.tables import (
    CONSENSUS_SCHEMA,
    CONSENSUS_TABLE,
    READING_SCHEMA,
    READINGS_TABLE,
    SERIES_SCHEMA,
    SERIES_TABLE,
    read_rows,
)

_SCHEMAS = {SERIES_TABLE: SERIES_SCHEMA, READINGS_TABLE: READING_SCHEMA, CONSENSUS_TABLE: CONSENSUS_SCHEMA}
#: Consensus columns compared between versions (the round id and posterior move with any re-analysis).
_LABEL_VALUE = ("value", "x0", "y0", "x1", "y1", "mask")


def _table(tree: ReleaseTree | None, path: str) -> list[dict[str, Any]]:
    return read_rows(tree.read(path), _SCHEMAS[path]) if tree is not None and tree.exists(path) else []


def counts(series: list[dict[str, Any]], readings: list[dict[str, Any]],
           consensus: list[dict[str, Any]]) -> dict[str, int]:
    """The headline figures of one version."""
    findings = [r for r in consensus if r["method"] != "box" and r.get("mask") is None]
    out = {"series": len(series), "patients": len({r["patient"] for r in series}),
           "studies": len({r["study"] for r in series}), "files": sum(r["n_files"] or 0 for r in series),
           "readings": len(readings), "readers": len({r["reader"] for r in readings}),
           "consensus_labels": len(findings),
           "consensus_positive": sum(1 for r in findings if r["value"] == 1),
           "consensus_boxes": sum(1 for r in consensus if r["method"] == "box")}
    mask_slices = sum(1 for r in consensus if r.get("mask") is not None)
    if mask_slices:  # only releases with masks name them (earlier CHANGES.md stay as they were)
        out["consensus_mask_slices"] = mask_slices
    for split, n in sorted(Counter(r["split"] for r in series).items()):
        out[f"series_{split}"] = n
    patients = {r["patient"]: r["split"] for r in series}
    for split, n in sorted(Counter(patients.values()).items()):
        out[f"patients_{split}"] = n
    return out


def _labels(consensus: list[dict[str, Any]]) -> dict[tuple[str, str, str, int], dict[str, Any]]:
    return {(r["series"], r["label"], r["method"], r["ordinal"]): {k: r[k] for k in _LABEL_VALUE} for r in consensus}


@dataclass
class ReleaseDiff:
    old: str | None
    new: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    revised: dict[str, list[str]] = field(default_factory=dict)  # series -> columns that changed
    labels: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"old": self.old, "new": self.new, "series_added": self.added, "series_removed": self.removed,
                "series_revised": self.revised, "labels_changed": self.labels, "counts": self.counts}


def diff_trees(old: ReleaseTree | None, new: ReleaseTree, old_label: str | None = None,
               new_label: str = "new") -> ReleaseDiff:
    """Compare the tables of `old` (None: the first version) and `new`: series by key, consensus labels
    of the series both hold by (series, label, method, ordinal), and the headline counts."""
    old_series = {r["series"]: r for r in _table(old, SERIES_TABLE)}
    new_series = {r["series"]: r for r in _table(new, SERIES_TABLE)}
    diff = ReleaseDiff(old_label, new_label, added=sorted(set(new_series) - set(old_series)),
                       removed=sorted(set(old_series) - set(new_series)))
    for key in sorted(set(old_series) & set(new_series)):
        changed = [c for c in new_series[key] if old_series[key].get(c) != new_series[key][c]]
        if changed:
            diff.revised[key] = changed
    # labels of series present in both versions: an added or removed series' labels come and go with it
    kept = set(old_series) & set(new_series)
    old_labels, new_labels = _labels(_table(old, CONSENSUS_TABLE)), _labels(_table(new, CONSENSUS_TABLE))
    for key in sorted(k for k in set(old_labels) | set(new_labels) if k[0] in kept):
        before, after = old_labels.get(key), new_labels.get(key)
        if before != after:
            diff.labels.append({"series": key[0], "label": key[1], "method": key[2], "ordinal": int(key[3]),
                                "old": before, "new": after})
    before = counts(list(old_series.values()), _table(old, READINGS_TABLE), _table(old, CONSENSUS_TABLE))
    after = counts(list(new_series.values()), _table(new, READINGS_TABLE), _table(new, CONSENSUS_TABLE))
    diff.counts = {k: {"old": before.get(k, 0), "new": after.get(k, 0), "delta": after.get(k, 0) - before.get(k, 0)}
                   for k in sorted(set(before) | set(after))}
    return diff


def _short(value: dict[str, Any] | None) -> str:
    if value is None:
        return "none"
    return json.dumps({k: v for k, v in value.items() if v is not None}, sort_keys=True)


def changes_markdown(diff: ReleaseDiff) -> str:
    """CHANGES.md: the counts with deltas, then every series and label change by key."""
    title = f"# Changes in {diff.new}" + (f" since {diff.old}" if diff.old else " (first version)")
    lines = [title, "", "| count | previous | this version | delta |", "|---|---:|---:|---:|"]
    for name, c in diff.counts.items():
        lines.append(f"| {name} | {c['old']} | {c['new']} | {c['delta']:+d} |")
    lines += ["", f"## Series added ({len(diff.added)})", ""] + [f"- `{k}`" for k in diff.added]
    lines += ["", f"## Series removed ({len(diff.removed)})", ""] + [f"- `{k}`" for k in diff.removed]
    lines += ["", f"## Series revised ({len(diff.revised)})", ""]
    lines += [f"- `{k}`: {', '.join(cols)}" for k, cols in diff.revised.items()]
    lines += ["", f"## Labels changed ({len(diff.labels)})", ""]
    lines += [f"- `{c['series']}` {c['label']} ({c['method']} #{c['ordinal']}): {_short(c['old'])} -> {_short(c['new'])}"
              for c in diff.labels]
    return "\n".join(lines) + "\n"


__all__ = ["CONSENSUS_TABLE", "READINGS_TABLE", "ReleaseDiff", "SERIES_TABLE", "changes_markdown", "counts",
           "diff_trees"]
