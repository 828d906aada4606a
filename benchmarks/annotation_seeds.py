"""Issue 14's acceptance over many seeds: does an annotation round, through the pipeline's own path,
reach the figures every time, or only on a lucky seed?

Per seed: N chest series on a fresh SQLite catalog, each with the truth of the three findings of
`include/annotation/schemas/chest_findings_v1.yaml` (opacity, effusion, nodule; prevalence as the
synthetic hospital's chest findings: nodule 2 of 3, opacity and effusion 1 of 3; one box per finding
of plausible size on a 256x256 grid); five simulated readers (`synth.readers`: careful:3 at 0.9
sensitivity/specificity, random:1, flat:1) answer every label and draw their boxes; their readings go
through the annotation service's own CSV exporter into `collect`, after `plan_round`, then `analyse`
(QC -> agreement -> consensus -> rewards). Measured against the truth: consensus accuracy on the yes/no
findings (Dawid-Skene, the consensus the round writes, and majority vote), the IoU of consensus boxes
with the true boxes, which readers QC excluded and by which rules, and the rewards.

Acceptance, per seed (exit 1 if any seed fails; with --report-only never): Dawid-Skene accuracy
>= 0.95; mean box consensus IoU >= 0.7; QC excludes exactly the random and the flat reader, no
consensus label has more voters than the careful readers, and the excluded readers' rewards are 0.
Majority-vote accuracy, the share of true boxes the consensus found, and QC flags on kept readers are
reported, not judged.

    .venv/bin/python benchmarks/annotation_seeds.py [--items 100] [--seeds 10] [--report-only] [--json OUT]
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import statistics
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from annotation.exports.readings import Reading as ExportReading  # noqa: E402
from annotation.exports.tabular import to_csv  # noqa: E402
from curation.agreement.roi import match_boxes  # noqa: E402
from curation.annotation_schema import LabelSchema, load_schema  # noqa: E402
from curation.catalog import Catalog, Instance, Series, Source, StageRecord  # noqa: E402
from curation.pipeline import analyse as analysis  # noqa: E402
from curation.pipeline import dispatch  # noqa: E402
from curation.pipeline.collect import collect, reader_pseudonym  # noqa: E402
from curation.pipeline.select import ItemRef, Selection, select_series  # noqa: E402
from curation.vocabulary import QualityDecision, SeriesKind, StageStatus  # noqa: E402
from synth.readers import Box, LabelTruth, ReaderSpec, answer, parse_readers, reading_rng  # noqa: E402

SCHEMA = "chest_findings_v1"
READERS = "careful:3,random:1,flat:1"
GRID = (256, 256)  # columns, rows
SECRET = b"annotation-seeds-benchmark"
#: Share of chest images showing each finding, as synth/findings.py's chest findings.
PREVALENCE = {"nodule": 2 / 3, "opacity": 1 / 3, "effusion": 1 / 3}
MIN_ACCURACY, MIN_BOX_IOU = 0.95, 0.7
#: A consensus box is paired with the true box when they overlap at least this much.
MATCH_IOU = 0.1

Truth = dict[str, dict[str, LabelTruth]]  # item key -> finding -> truth


def curated_chest_series(catalog: Catalog, n: int, grid: tuple[int, int] = GRID) -> None:
    """`n` chest radiographs as the curation stages leave them: de-identified (one output object),
    classified CR/CHEST, approved by the quality model; one instance of `grid` pixels each."""
    with catalog.session() as s:
        source = Source(kind="folder", uri="/benchmark/in")
        s.add(source)
        s.flush()
        for i in range(n):
            series = Series(series_instance_uid=f"1.2.840.99.{i}", modality="CR")
            s.add(series)
            s.flush()
            s.add(Instance(series_id=series.id, sop_instance_uid=f"1.2.840.99.{i}.1", sha256=f"{i:064x}", size=1,
                           raw_key=f"objects/{i}", source_id=source.id, source_path=f"p{i}.dcm",
                           columns=grid[0], rows=grid[1]))
            subject = dict(subject_type="series", subject_id=series.id, input_hash="i" * 64, config_hash="c" * 64)
            s.add(StageRecord(stage="deid", stage_version="1", status=StageStatus.OK, **subject,
                              metrics={"outputs": [f"ANON{i:04d}/2.25.9{i}/2.25.7{i}/2.25.8{i}.dcm"]}))
            s.add(StageRecord(stage="classify", stage_version="1", status=StageStatus.OK, **subject,
                              metrics={"kind": str(SeriesKind.CR), "body_part": "CHEST"}))
            s.add(StageRecord(stage="quality", stage_version="1", status=StageStatus.OK, **subject,
                              reason="approve", metrics={"decision": {"decision": str(QualityDecision.APPROVE)}}))


def _finding_box(finding: str, rng: np.random.Generator, grid: tuple[int, int]) -> Box:
    """Where a finding lies on a frontal chest radiograph of `grid` pixels, at a plausible size:
    a nodule 10-25 px across in the right lung (image left), an opacity 35-70 px in the left upper
    lung, an effusion over the base of either lung, 50-90 px wide and 25-50 px high."""
    cols, rows = grid
    if finding == "nodule":
        w = h = rng.uniform(10, 25)
        x, y = rng.uniform(0.15, 0.42) * cols, rng.uniform(0.25, 0.7) * rows
    elif finding == "opacity":
        w, h = rng.uniform(35, 70, 2)
        x, y = rng.uniform(0.52, 0.85) * cols - w / 2, rng.uniform(0.18, 0.45) * rows
    else:
        w, h = rng.uniform(50, 90), rng.uniform(25, 50)
        left = rng.random() < 0.5
        x = (rng.uniform(0.1, 0.2) if left else rng.uniform(0.55, 0.62)) * cols
        y = rng.uniform(0.62, 0.8) * rows
    x, y = min(max(x, 0.0), cols - w), min(max(y, 0.0), rows - h)
    return Box(float(x), float(y), float(w), float(h))


def draw_truth(items: list[str], seed: int, grid: tuple[int, int] = GRID) -> Truth:
    """Each item's three findings, present with the chest prevalence, one box each when present."""
    rng = np.random.default_rng([seed, 14])
    truth: Truth = {}
    for item in items:
        truth[item] = {}
        for finding in PREVALENCE:
            present = bool(rng.random() < PREVALENCE[finding])
            truth[item][finding] = LabelTruth(present, (_finding_box(finding, rng, grid),) if present else ())
    return truth


def export_rows(items: list[str], truth: Truth, readers: list[ReaderSpec], seed: int,
                grid: tuple[int, int] = GRID) -> list[dict[str, str]]:
    """The service's CSV export (its own exporter) of every reader reading every item once, each
    answer and box drawn by `synth.readers.answer` from the reader's own (seed, reader, item, label)
    stream: what `curate annotators simulate` submits, without the HTTP round trip."""
    readings, task = [], 0
    start = datetime(2026, 12, 5, 8)
    for n, item in enumerate(items):
        record = SimpleNamespace(id=n + 1, external_id=item, modality="CR", body_part="CHEST",
                                 instances=[SimpleNamespace(sop_instance_uid=f"2.25.8{n}")], context={})
        for reader in readers:
            task += 1
            labels, rois, label_ms = [], [], {}
            for finding, finding_truth in truth[item].items():
                read = answer(reader.profile, finding_truth, finding,
                              reading_rng(seed, reader.username, item, finding), grid)
                labels.append({"label": finding, "value": read.value, "confidence": read.confidence})
                label_ms[finding] = int(read.seconds * 1000)
                rois += [{"label": f"{finding}_box", "kind": "box", "instance": b.instance, "frame": b.frame,
                          "points": b.corners()} for b in read.boxes]
            active = sum(label_ms.values())
            readings.append(ExportReading(
                task_id=task, item=record, reader=reader.username, reader_level="senior", kind="annotate",
                status="submitted", round=1, verify_level=0, decision=None, schema_version=1, schema_labels={},
                is_gold=False, gold_score=None, labels=labels, rois=rois, wall_ms=active + 500, active_ms=active,
                idle_ms=0, label_ms=label_ms, submitted_at=start + timedelta(seconds=task)))
    return list(csv.DictReader(io.StringIO(to_csv(SimpleNamespace(name="chest"), readings))))


@dataclass
class SeedResult:
    seed: int
    items: int
    accuracy_ds: float
    accuracy_majority: float
    box_iou_mean: float
    box_iou_median: float
    boxes_found: int
    boxes_true: int
    boxes_spurious: int
    excluded: dict[str, list[str]]  # reader username -> QC rules flagged
    flagged_kept: dict[str, list[str]]  # readers QC flagged but kept -> rules
    consensus_voters: int  # most readers behind any yes/no consensus label
    rewards: dict[str, float]
    fleiss_kappa: float | None

    def failures(self, bad_readers: set[str]) -> list[str]:
        out = []
        if not self.accuracy_ds >= MIN_ACCURACY:
            out.append(f"Dawid-Skene accuracy {self.accuracy_ds:.3f} < {MIN_ACCURACY}")
        if not self.box_iou_mean >= MIN_BOX_IOU:
            out.append(f"mean box IoU {self.box_iou_mean:.3f} < {MIN_BOX_IOU}")
        if set(self.excluded) != bad_readers:
            out.append(f"QC excluded {sorted(self.excluded)}, expected {sorted(bad_readers)}")
        if self.consensus_voters > len(self.rewards) - len(bad_readers):
            out.append(f"{self.consensus_voters} readers voted in a consensus label")
        paid = [r for r in bad_readers if self.rewards.get(r, 0) != 0]
        if paid:
            out.append(f"rewarded {paid}")
        return out


def _accuracy(consensus, truth: Truth) -> float:
    return float(np.mean([bool(v) == truth[i][k].present
                          for i, k, v in zip(consensus["item"], consensus["label"], consensus["value"])]))


def _box_figures(boxes, truth: Truth) -> tuple[list[float], int, int, int]:
    """IoU of each true box with the consensus box paired to it (one to one, overlap >= MATCH_IOU),
    how many true boxes have one, how many there are, and consensus boxes paired with no true box."""
    ious, found, n_true, spurious = [], 0, 0, 0
    drawn = {key: group[["x0", "y0", "x1", "y1"]].to_numpy(float)
             for key, group in boxes.groupby([boxes["item"], boxes["label"].str.removesuffix("_box")])}
    for item, findings in truth.items():
        for finding, t in findings.items():
            true = np.array([[b.x, b.y, b.x + b.w, b.y + b.h] for b in t.boxes]).reshape(-1, 4)
            mine = drawn.get((item, finding), np.empty((0, 4)))
            n_true += len(true)
            match = match_boxes(mine, true, threshold=MATCH_IOU)
            ious += [float(v) for v in match.iou]
            found += match.n_matches
            spurious += len(mine) - match.n_matches
    return ious, found, n_true, spurious


def run_seed(seed: int, n_items: int, schema: LabelSchema, readers: list[ReaderSpec], workdir: Path) -> SeedResult:
    """One round on a fresh SQLite catalog: select -> plan -> collect -> analyse, measured against the truth."""
    catalog = Catalog(f"sqlite:///{workdir / f'seed{seed}-{n_items}.sqlite'}")
    try:
        curated_chest_series(catalog, n_items)
        refs: list[ItemRef] = select_series(catalog, Selection.from_params({"project": "chest"}, schema.selection))
        items = [r.item_key for r in refs]
        truth = draw_truth(items, seed)
        rnd = dispatch.plan_round(catalog, project="chest", name=f"seed-{seed}", schema=schema, items=refs,
                                  params={"readers_per_item": len(readers)})
        collect(catalog, rnd.round_id, export_rows(items, truth, readers, seed), SECRET)
        result = analysis.analyse(catalog, rnd.round_id, analysis.AnalysisConfig(n_boot=0, seed=seed))
        reports = analysis.reader_reports(catalog, rnd.round_id)
        by_name = {r.username: reports[reader_pseudonym(r.username, SECRET)] for r in readers}
        ds = analysis.consensus_labels(catalog, rnd.round_id, analysis.DAWID_SKENE)
        ious, found, n_true, spurious = _box_figures(analysis.consensus_labels(catalog, rnd.round_id, analysis.BOX),
                                                     truth)
        return SeedResult(
            seed=seed, items=len(items),
            accuracy_ds=_accuracy(ds, truth),
            accuracy_majority=_accuracy(analysis.consensus_labels(catalog, rnd.round_id, analysis.MAJORITY), truth),
            box_iou_mean=float(np.mean(ious)) if ious else float("nan"),
            box_iou_median=float(np.median(ious)) if ious else float("nan"),
            boxes_found=found, boxes_true=n_true, boxes_spurious=spurious,
            excluded={name: r["qc_flags"] for name, r in by_name.items() if not r["passes_qc"]},
            flagged_kept={name: r["qc_flags"] for name, r in by_name.items() if r["passes_qc"] and r["qc_flags"]},
            consensus_voters=int(ds["n_readers"].max()),
            rewards={name: float(r["reward"]) for name, r in by_name.items()},
            fleiss_kappa=result.metrics.get("fleiss_kappa"))
    finally:
        catalog.dispose()


def _short(name: str) -> str:
    return name.removeprefix("sim-")


def table(results: list[SeedResult], readers: list[ReaderSpec], bad: set[str]) -> str:
    """The per-seed table (Markdown) and its min / mean rows."""
    kept = [r.username for r in readers if r.username not in bad]
    excluded_names = ", ".join(_short(n) for n in sorted(bad))
    head = ("| seed | items | accuracy DS | accuracy majority | box IoU mean / median | true boxes found "
            "| spurious boxes | Fleiss' kappa (kept) | QC excluded (rules) | flagged, kept | voters "
            f"| rewards {excluded_names} / kept "
            "| pass |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        excluded = "; ".join(f"{_short(n)}: {', '.join(rules)}" for n, rules in sorted(r.excluded.items())) or "none"
        rewards = (", ".join(f"{r.rewards[n]:g}" for n in sorted(bad)) + " / "
                   + ", ".join(f"{r.rewards[n]:.1f}" for n in kept))
        kappa = f"{r.fleiss_kappa:.3f}" if r.fleiss_kappa is not None else "-"
        flagged = "; ".join(f"{_short(n)}: {', '.join(rules)}" for n, rules in sorted(r.flagged_kept.items())) or "none"
        lines.append(f"| {r.seed} | {r.items} | {r.accuracy_ds:.3f} | {r.accuracy_majority:.3f} "
                     f"| {r.box_iou_mean:.3f} / {r.box_iou_median:.3f} | {r.boxes_found} / {r.boxes_true} "
                     f"| {r.boxes_spurious} | {kappa} | {excluded} | {flagged} | {r.consensus_voters} | {rewards} "
                     f"| {'yes' if not r.failures(bad) else 'NO'} |")
    for name, agg in (("min", min), ("mean", statistics.fmean)):
        found = agg([r.boxes_found / r.boxes_true for r in results])
        lines.append(f"| **{name}** | | {agg([r.accuracy_ds for r in results]):.3f} "
                     f"| {agg([r.accuracy_majority for r in results]):.3f} "
                     f"| {agg([r.box_iou_mean for r in results]):.3f} / {agg([r.box_iou_median for r in results]):.3f} "
                     f"| {found:.1%} | | | | | | | {sum(not r.failures(bad) for r in results)}/{len(results)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100, help="chest items per round (default 100)")
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 (default 10)")
    parser.add_argument("--readers", default=READERS, help=f"reader spec (default {READERS})")
    parser.add_argument("--report-only", action="store_true", help="print the table; exit 0 whatever the figures")
    parser.add_argument("--json", type=Path, help="also write the per-seed figures here")
    args = parser.parse_args(argv)
    readers = parse_readers(args.readers)
    bad = {r.username for r in readers if r.profile.guess is not None or r.profile.flat is not None}
    schema = load_schema(SCHEMA)
    with tempfile.TemporaryDirectory(prefix="annotation-seeds-") as tmp:
        results = [run_seed(seed, args.items, schema, readers, Path(tmp)) for seed in range(args.seeds)]
    print(f"{args.items} items x {len(PREVALENCE)} findings, readers {args.readers}, seeds 0..{args.seeds - 1}")
    print(table(results, readers, bad))
    failed = {r.seed: r.failures(bad) for r in results if r.failures(bad)}
    for seed, why in failed.items():
        print(f"seed {seed}: " + "; ".join(why))
    if args.json:
        args.json.write_text(json.dumps([vars(r) for r in results], indent=1))
    print(f"acceptance: {'met' if not failed else 'NOT met'} in {len(results) - len(failed)}/{len(results)} seeds")
    return 1 if failed and not args.report_only else 0


if __name__ == "__main__":
    sys.exit(main())
