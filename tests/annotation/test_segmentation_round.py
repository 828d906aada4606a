"""A round of a mask label on the pipeline's side (issue 17 point 8), on a real catalog: the service's
CSV export of painted masks (its own exporter) -> collect -> analyse, whose consensus for the mask
label is STAPLE over the kept readers' masks with each reader's Dice in the round's summary."""
from __future__ import annotations

import csv
import io
from datetime import datetime
from types import SimpleNamespace

import numpy as np
from sqlalchemy import select

from annotation import masks
from annotation.exports.readings import Reading as ExportReading
from annotation.exports.tabular import to_csv
from curation.agreement.roi import decode_runs
from curation.annotation_schema import parse_schema
from curation.catalog import Catalog
from curation.catalog.models import AnnotationRound, ConsensusLabel
from curation.pipeline import analyse as analysis
from curation.pipeline import dispatch
from curation.pipeline.collect import collect, reader_pseudonym, round_readings
from curation.pipeline.select import Selection, select_series
from tests.pipeline.test_annotation_select import add_series

SECRET = b"mask-round-secret"
SIZE = 64
SCHEMA = parse_schema({"name": "lesion_masks", "version": 1, "project_kind": "labels",
                       "regions": {"lesion_mask": "lesion"},
                       "schema": {"labels": [{"id": "lesion", "name": "Lesion", "kind": "boolean"},
                                             {"id": "lesion_mask", "name": "Lesion mask", "kind": "mask"}]}})


def disk(cx: float, cy: float, r: float) -> np.ndarray:
    ys, xs = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    return (xs - cx) ** 2 + (ys - cy) ** 2 <= r * r


def _export(items: list[str], painted: dict[str, dict[str, np.ndarray]]) -> list[dict[str, str]]:
    """Every reader reads every item: 'lesion' yes where they painted, their masks on slice 0."""
    readings, task = [], 0
    for n, item in enumerate(items):
        record = SimpleNamespace(id=n + 1, external_id=item, modality="CT", body_part="CHEST", context={},
                                 instances=[SimpleNamespace(sop_instance_uid=f"2.25.66{n}")])
        for reader, by_item in painted.items():
            task += 1
            mask = by_item.get(item)
            rois = [] if mask is None else [{"label": "lesion_mask", "kind": "mask", "instance": 0, "frame": 0,
                                             "rows": SIZE, "columns": SIZE, "rle": masks.encode(mask)}]
            readings.append(ExportReading(
                task_id=task, item=record, reader=reader, reader_level="senior", kind="annotate", status="submitted",
                round=1, verify_level=0, decision=None, schema_version=1, schema_labels={}, is_gold=False, gold_score=None,
                labels=[{"label": "lesion", "value": mask is not None, "confidence": 80}], rois=rois,
                wall_ms=9000, active_ms=8000, idle_ms=0, label_ms={"lesion": 8000}, submitted_at=datetime(2026, 12, 5, 9)))
    return list(csv.DictReader(io.StringIO(to_csv(SimpleNamespace(name="masks"), readings))))


def test_round_consensus_of_a_mask_label_is_staple_with_dice_per_reader(tmp_path) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    try:
        for i in range(4):
            add_series(catalog, i, size=(SIZE, SIZE))
        refs = select_series(catalog, Selection.from_params({"project": "masks"}, {}))
        keys = [r.item_key for r in refs]
        rnd = dispatch.plan_round(catalog, project="masks", name="manual__m", schema=SCHEMA, items=refs,
                                  params={"readers_per_item": 3})
        dispatch.record_dispatch(catalog, rnd.round_id, {"round": {"id": 7, "number": 1, "per_item": [
            {"item_id": 100 + n, "external_id": k} for n, k in enumerate(keys)]}})
        lesion = {k: disk(20 + 5 * n, 30, 8) for n, k in enumerate(keys[:3])}  # the fourth item has none
        painted = {"reader-a": lesion, "reader-b": lesion,
                   "reader-c": {k: np.roll(m, 3, axis=0) for k, m in lesion.items()},
                   # the fourth reader misses the lesion of the first item and paints nothing there
                   "reader-d": {k: m for k, m in lesion.items() if k != keys[0]}}
        assert collect(catalog, rnd.round_id, _export(keys, painted), SECRET).metrics["new"] > 0
        data = round_readings(catalog, rnd.round_id)
        assert len(data.masks) == 3 + 3 + 3 + 2 and set(data.masks["label"]) == {"lesion_mask"}
        dispatch.record_close(catalog, rnd.round_id, {"state": "complete", "items": 4, "complete_items": 4})
        result = analysis.analyse(catalog, rnd.round_id, analysis.AnalysisConfig(n_boot=50, seed=1))
        assert not result.reused

        with catalog.session() as s:
            rows = s.execute(select(ConsensusLabel).where(ConsensusLabel.round_id == rnd.round_id,
                                                          ConsensusLabel.method == analysis.STAPLE)).scalars().all()
            summary = s.get(AnnotationRound, rnd.round_id).summary
        assert len(rows) == 3  # one consensus slice for each item with a lesion
        for row in rows:
            assert row.n_readers == 4 and row.label == "lesion_mask"
        by_pixels = sorted((r.value, r.x0, r.y0, r.x1, r.y1) for r in rows)
        expected = sorted((int(m.sum()), *map(float, masks.bounding_box(m))) for m in lesion.values())
        assert by_pixels == expected  # STAPLE keeps the lesion the readers agree on, pixel for pixel in count and extent
        assert {r.n_positive for r in rows} == {3, 4}
        agreement = summary["mask_agreement"]
        assert agreement["method"] == "staple" and agreement["consensus_slices"] == 3 and agreement["skipped"] == 0
        dice = {name: agreement["mean_dice"][reader_pseudonym(name, SECRET)] for name in painted}
        assert dice["reader-a"] == dice["reader-b"] == 1.0
        assert 0.5 < dice["reader-c"] < 1.0
        assert dice["reader-d"] < 1.0  # a lesion missed counts as Dice 0 on that item
        # the consensus masks themselves, as the library gives them, equal the agreed lesion
        consensus = analysis._mask_consensus(data, data.readings)
        for rec in consensus.masks.to_dict(orient="records"):
            assert np.array_equal(decode_runs(rec["rle"], rec["rows"], rec["columns"]), lesion[rec["item"]])
    finally:
        catalog.dispose()
