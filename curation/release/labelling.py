"""A release's `labels/`: for each released DICOM series a labels round reached consensus on, one
SR TID 1500 (findings and boxes) and, where there are boxes, the SEG of their masks, built by
curation.release.labels on the released (de-identified) instances only.

Consensus boxes are series-level (the consensus table names no instance); each is placed on the
instance its readers' boxes of that label named most often (Reading.instance, the 0-based index
of the item's instances in release order; ties: the lower index), else on the first instance.
One SR and one SEG series per series and round: their UIDs hash `<series>/round-<id>`.

Consensus masks (STAPLE rows, which carry their slice and mask) are slice-level: each is laid on the
instance (and frame) its row names and written as their own binary SEG series, one segment per mask
label (`round-<id>-mask-<n>.dcm`, UIDs hashing `<series>/round-<id>/masks`), pixel for pixel the
consensus. A mask row is neither a finding nor a box of the SR."""
from __future__ import annotations

import io
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from pydicom import Dataset
from sqlalchemy import select

from curation.catalog import Catalog
from curation.catalog.models import AnnotationItem, ConsensusLabel, Reading
from curation.pipeline.analyse import STAPLE
from curation.agreement.roi import decode_runs
from curation.release.labels import Box, Finding, ReleaseIdentity, boxes_to_masks, consensus_segs, findings_sr


@dataclass
class RoundConsensus:
    """One series' consensus in one round, and where its readers drew each label's boxes."""

    rows: list[ConsensusLabel] = field(default_factory=list)
    box_instances: dict[str, Counter] = field(default_factory=dict)


@dataclass(frozen=True)
class Skipped:
    series: str
    round: int
    reason: str

    def to_json(self) -> dict[str, object]:
        return {"series": self.series, "round": self.round, "reason": self.reason}


def consensus_of_rounds(catalog: Catalog, round_ids: Sequence[int],
                        series_ids: set[int]) -> dict[tuple[int, int], RoundConsensus]:
    """(round id, series id) -> its consensus rows (sorted) and its readers' box instances."""
    out: dict[tuple[int, int], RoundConsensus] = {}
    with catalog.session() as s:
        items = {i.id: i.series_id for i in s.scalars(select(AnnotationItem)
                                                      .where(AnnotationItem.round_id.in_(list(round_ids))))}
        for r in s.scalars(select(ConsensusLabel).where(ConsensusLabel.round_id.in_(list(round_ids)))
                           .order_by(ConsensusLabel.round_id, ConsensusLabel.label, ConsensusLabel.method,
                                     ConsensusLabel.ordinal)):
            if items[r.item_id] in series_ids:
                out.setdefault((r.round_id, items[r.item_id]), RoundConsensus()).rows.append(r)
        for r in s.scalars(select(Reading).where(Reading.round_id.in_(list(round_ids)), Reading.x0.is_not(None))):
            found = out.get((r.round_id, items[r.item_id]))
            if found is not None:
                found.box_instances.setdefault(r.label, Counter())[int(r.instance or 0)] += 1
        s.expunge_all()
    return out


def _placement(counts: Counter | None, n_sources: int) -> int:
    if not counts:
        return 0
    best = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    return best if 0 <= best < n_sources else 0


def _bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _frames(ds: Dataset) -> int:
    return int(getattr(ds, "NumberOfFrames", 1) or 1)


def consensus_masks(rows: Sequence[ConsensusLabel], sources: Sequence[Dataset]) -> dict[str, np.ndarray]:
    """The mask rows as SEG masks: per label a bool array (frames, rows, cols) over the sources'
    frames in order (as `boxes_to_masks`), each slice decoded from the row's run lengths; a row
    naming an instance or frame the release lacks, or a size other than the instance's, is refused."""
    offsets, total = [], 0
    for src in sources:
        offsets.append(total)
        total += _frames(src)
    out: dict[str, np.ndarray] = {}
    for r in rows:
        index, frame = int(r.instance or 0), int(r.frame or 0)
        if not 0 <= index < len(sources) or not 0 <= frame < _frames(sources[index]):
            raise ValueError(f"the {r.label} consensus mask is on image {index + 1} frame {frame + 1}, which the "
                             f"release does not hold ({len(sources)} instance(s))")
        src = sources[index]
        height, width = int(r.mask["rows"]), int(r.mask["columns"])
        if (height, width) != (int(src.Rows), int(src.Columns)):
            raise ValueError(f"the {r.label} consensus mask is {height} x {width}, its released instance "
                             f"{int(src.Rows)} x {int(src.Columns)}")
        full = out.setdefault(r.label, np.zeros((total, height, width), dtype=bool))
        full[offsets[index] + frame] |= decode_runs(r.mask["rle"], height, width)
    return out


def series_labels(identity: ReleaseIdentity, folder: str, key: str, round_id: int, sources: Sequence[Dataset],
                  consensus: RoundConsensus) -> list[tuple[str, bytes]]:
    """(release path, bytes) of one series' SR and SEGs in one round, under `folder` (the series'
    `labels/<patient>/<study>/<series>/`); `sources`: its released instances in release order."""
    label_series = f"{key}/round-{round_id}"
    findings, boxes = [], []
    masks: dict[str, list[ConsensusLabel]] = defaultdict(list)
    for r in consensus.rows:
        if r.mask is not None:
            masks[r.method].append(r)
        elif r.method == STAPLE:
            continue  # a mask's bounding box from an analysis before masks were kept (analyse v1) is no box
        elif r.x0 is None:
            findings.append(Finding(r.label, r.value, r.method, r.n_readers, r.posterior))
        else:
            src = sources[_placement(consensus.box_instances.get(r.label), len(sources))]
            boxes.append(Box(r.label, str(src.SOPInstanceUID), r.x0, r.y0, r.x1, r.y1, r.method, r.n_readers))
    out = []
    if findings or boxes:  # a round of mask labels only has no measurement for the SR (highdicom refuses none)
        out.append((f"{folder}round-{round_id}-sr.dcm",
                    _bytes(findings_sr(sources, findings, boxes, identity=identity, series_uid=label_series))))
    if boxes:
        segs = consensus_segs(sources, boxes_to_masks(boxes, sources), identity=identity, series_uid=label_series,
                              method=boxes[0].method, n_readers=max(b.n_readers for b in boxes))
        out += [(f"{folder}round-{round_id}-seg-{n}.dcm", _bytes(seg)) for n, seg in enumerate(segs, start=1)]
    written = 0
    for method, rows in sorted(masks.items()):
        segs = consensus_segs(sources, consensus_masks(rows, sources), identity=identity,
                              series_uid=f"{label_series}/masks" + (f"/{method}" if written else ""),
                              method=method, n_readers=max(r.n_readers for r in rows))
        out += [(f"{folder}round-{round_id}-mask-{written + n}.dcm", _bytes(seg)) for n, seg in enumerate(segs, start=1)]
        written += len(segs)
    return out


__all__ = ["RoundConsensus", "Skipped", "consensus_masks", "consensus_of_rounds", "series_labels"]
