"""The truth a simulated reader reads against, found from an annotation item's `external_id`.

The pipeline registers each series as an item whose `external_id` is its key in the de-identified
zone (`curation.pipeline.select.series_key`): the de-identified SeriesInstanceUID of a DICOM series,
the content-hash folder name `<h>` of a picture (`images/<h>/...`) or volume (`volumes/<h>/...`).
So the simulator finds an item's truth by
- DICOM: `load_findings(site).pseudonymised(Pseudonymizer(secret).uid)`, keyed by those UIDs;
- pictures and volumes: the `pixel_key` of the de-identified file's pixels (or voxels) in the store's
  deid zone, which the site's truth records (`pixel_sha256`, `voxel_sha256`).
Series also carry the truth of a quality review under the key `quality` (exclude a planted defect of
severity >= 3, with it as the reason; else approve). Tests without a synthetic site give a JSON file:
``{external_id: {label: {"value": bool, "boxes": [[x, y, w, h] | {"box": [x, y, w, h], "instance": 0, "frame": 0}]},
"quality": {"decision": "exclude", "reason": "..."}}}``.

A region's instance is kept as the truth names it (a de-identified SOPInstanceUID, a NIfTI slice
index, or none for a picture) and resolved against the item's instances when the task is read
(`label_truth`): the item's instance order is the service's, not the site's.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curation.vocabulary import ReviewDecision
from synth.readers import Box, LabelTruth, QualityTruth

#: The key of an item's quality-review truth beside its labels (a `QualityTruth`, not a label).
QUALITY = "quality"
#: A planted defect of at least this severity (1-5) makes a series one to exclude.
EXCLUDE_SEVERITY = 3


@dataclass(frozen=True)
class TruthRegion:
    """One region of a finding: its box [x, y, w, h] and where (SOP UID, slice index, position or none)."""

    box: tuple[float, float, float, float]
    instance: str | int | None = None
    frame: int = 0


@dataclass(frozen=True)
class ItemLabelTruth:
    """A label's truth on an item before its instances are known: present, and one region per finding."""

    present: bool
    regions: tuple[TruthRegion, ...] = ()


#: Truth per item: label -> ItemLabelTruth, and QUALITY -> QualityTruth where a series has one.
ItemTruth = dict[str, "ItemLabelTruth | QualityTruth"]


def label_truth(truth: ItemLabelTruth, instance_uids: list[str]) -> LabelTruth:
    """Regions placed on the item's instances: a UID by its position, an integer as the frame of a
    single multi-frame instance (a NIfTI volume served as one object) or else as the position; a
    region on an instance the item lacks is dropped."""
    where = {uid: n for n, uid in enumerate(instance_uids)}
    boxes = []
    for r in truth.regions:
        if isinstance(r.instance, str):
            if r.instance not in where:
                continue
            position, frame = where[r.instance], r.frame
        elif isinstance(r.instance, int):
            position, frame = (0, r.instance) if len(instance_uids) == 1 else (r.instance, r.frame)
        else:
            position, frame = 0, r.frame
        boxes.append(Box(*r.box, instance=position, frame=frame))
    return LabelTruth(truth.present, tuple(boxes))


def truth_from_json(path: Path | str) -> dict[str, ItemTruth]:
    """Truth per external id from a JSON file (format in the module's docstring); errors name the item."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object external_id -> {{label: {{value, boxes}}}}")
    out: dict[str, ItemTruth] = {}
    for external_id, labels in data.items():
        out[external_id] = {}
        for label, entry in labels.items():
            if label == QUALITY:
                if not isinstance(entry, dict) or "decision" not in entry:
                    raise ValueError(f"{path}: item {external_id!r}: quality is {{\"decision\": ..., \"reason\": ...}}")
                out[external_id][label] = QualityTruth(entry["decision"], entry.get("reason", ""))
                continue
            if not isinstance(entry, dict) or not isinstance(entry.get("value"), bool):
                raise ValueError(f"{path}: item {external_id!r} label {label!r}: expected {{\"value\": true|false, ...}}")
            regions = []
            for b in entry.get("boxes") or []:
                spec = b if isinstance(b, dict) else {"box": b}
                box = spec.get("box")
                if not (isinstance(box, list) and len(box) == 4):
                    raise ValueError(f"{path}: item {external_id!r} label {label!r}: a box is [x, y, w, h]")
                regions.append(TruthRegion(tuple(float(v) for v in box), spec.get("instance"), int(spec.get("frame", 0))))
            out[external_id][label] = ItemLabelTruth(entry["value"], tuple(regions))
    return out


def _from_findings(truths: Mapping[str, Any]) -> dict[str, ItemLabelTruth]:
    """`synth.findings.Truth` per finding -> one region per finding region id (the instance where its
    box is largest: the slice a reader would outline). Present means visible: what a reader can see."""
    out = {}
    for name, t in truths.items():
        best: dict[str, Any] = {}
        for r in t.regions:
            if r.visible and (r.id not in best or r.box[2] * r.box[3] > best[r.id].box[2] * best[r.id].box[3]):
                best[r.id] = r
        out[name] = ItemLabelTruth(t.visible, tuple(TruthRegion(tuple(map(float, r.box)), r.instance)
                                                    for r in best.values()))
    return out


def truth_from_site(site: Path | str, secret: bytes, deid_root: Path | None = None) -> dict[str, ItemTruth]:
    """Truth per item key of a synthetic site after de-identification with `secret`: series by
    de-identified SeriesInstanceUID and, with `deid_root` (the store's deid zone folder), pictures
    and volumes by their content-hash folder name."""
    from deid.pseudonym import Pseudonymizer
    from synth.findings import load_findings

    pseudonym = Pseudonymizer(secret).uid
    findings = load_findings(site).pseudonymised(pseudonym)
    out = {uid: _from_findings(t) for uid, t in findings.series.items()}
    for series in json.loads((Path(site) / "ground_truth.json").read_text())["series"]:
        out.setdefault(pseudonym(series["series_instance_uid"]), {})[QUALITY] = quality_truth(series.get("degradation"))
    if deid_root is not None:
        out.update(_by_content(deid_root, findings.pictures, findings.volumes))
    return out


def quality_truth(degradation: Mapping[str, Any] | None) -> QualityTruth:
    """A series' quality truth from its planted defect: exclude from EXCLUDE_SEVERITY on, with the
    defect as the reason; else approve."""
    severity = int((degradation or {}).get("severity") or 0)
    if severity >= EXCLUDE_SEVERITY:
        return QualityTruth(str(ReviewDecision.EXCLUDE), f"{degradation['type']} (severity {severity})")
    return QualityTruth(str(ReviewDecision.APPROVE))


def _by_content(deid_root: Path, pictures: Mapping[str, Any], volumes: Mapping[str, Any]) -> dict[str, ItemTruth]:
    from synth.findings import pixel_key

    out = {}
    for path in sorted((deid_root / "images").glob("*/*")):
        from PIL import Image

        with Image.open(path) as im:
            key = pixel_key(np.asarray(im.convert("L")))  # grey, as the site's truth records it
        if key in pictures:
            out[path.parent.name] = _from_findings(pictures[key])
    for path in sorted((deid_root / "volumes").glob("*/*")):
        import nibabel as nib

        key = pixel_key(np.asanyarray(nib.load(path).dataobj))
        if key in volumes:
            out[path.parent.name] = _from_findings(volumes[key])
    return out
