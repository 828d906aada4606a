"""Analyse a collected round: QC of readers and readings -> agreement -> consensus (majority vote and
Dawid-Skene on yes/no labels, box consensus on boxes, STAPLE on painted masks) -> rewards, written to the catalog as
consensus labels, per-reader reports and the round's summary; and, for a quality-review round, the
human decisions as the series' final quality decisions.

QC judges every reading, gold items included (gold accuracy needs them); agreement, consensus and
rewards are computed on the regular items only. The analysis of one set of readings under one
configuration runs once (`idempotency.run_once`); new readings (a late collect) run it again and
replace the round's conclusions in one transaction. Each step appends its ledger event (qc,
consensus, rewards) in that transaction.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import delete, select

from curation.agreement.consensus import TieRule, dawid_skene, majority_vote
from curation.agreement.qc import QcConfig, QcReport, check, kept
from curation.agreement.report import agreement_report
from curation.agreement.reward import RewardMode, split_rewards
from curation.agreement.roi import MaskConsensus, box_agreement, box_consensus, decode_runs, mask_consensus
from curation.agreement.table import Readings
from curation.catalog import Catalog, add_event
from curation.catalog.models import AnnotationItem, AnnotationRound, ConsensusLabel, QualityReview, ReaderReport
from curation.pipeline.collect import RoundReadings, in_one_transaction, round_readings
from curation.pipeline.dispatch import STAGE, RoundState
from curation.pipeline.idempotency import StageKey, run_once
from curation.pipeline.result import StageResult
from curation.pipeline.select import final_decisions, model_decision, newest_records
from curation.vocabulary import StageStatus

ANALYSE_STAGE = "annotation_analyse"
#: 2: STAPLE rows keep their slice (instance, frame) and mask, so earlier analyses run again.
ANALYSE_VERSION = "2"
MAJORITY, DAWID_SKENE, BOX, STAPLE = "majority", "dawid_skene", "box", "staple"
#: The agreement statistics the round's XCom summary and the `annotations` asset carry.
HEADLINE = ("fleiss_kappa", "krippendorff_alpha")


@dataclasses.dataclass(frozen=True)
class AnalysisConfig:
    """QC thresholds, bootstrap resamples and seed of the CIs, the tie rule of the majority vote,
    the reward budget and mode, and the IoU a box needs to join a cluster of the box consensus."""

    qc: QcConfig = QcConfig()
    n_boot: int = 1000
    seed: int = 0
    tie_rule: str = TieRule.NEGATIVE
    budget: float = 100.0
    reward_mode: str = RewardMode.GENERAL
    box_threshold: float = 0.5

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["tie_rule"], out["reward_mode"] = str(self.tie_rule), str(self.reward_mode)
        return out


def _input_hash(data: RoundReadings) -> str:
    """SHA-256 of the readings as read back (answers and regions), so new readings run again."""
    body = {"readings": data.readings.frame.sort_values(["item", "label", "annotator"]).to_dict(orient="list"),
            "boxes": data.boxes.sort_values(["item", "label", "annotator", "x0", "y0"]).to_dict(orient="list"),
            "gold": sorted(data.gold_items), "labels": data.labels, "regions": data.regions,
            "masks": data.masks.sort_values(["item", "label", "annotator", "instance", "frame"]).to_dict(orient="list")}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def _qc(data: RoundReadings, config: AnalysisConfig) -> QcReport:
    """QC on every reading; box geometry where the item's grid size is known."""
    boxes = data.boxes[data.boxes["width"].notna() & data.boxes["height"].notna()]
    return check(data.readings, config.qc, schema=data.labels or None,
                 boxes=boxes if not boxes.empty else None)


def _regular(data: RoundReadings) -> Readings:
    frame = data.readings.frame
    return Readings(frame[~frame["item"].isin(list(data.gold_items))].reset_index(drop=True))


def _drawn_boxes(data: RoundReadings) -> pd.DataFrame:
    """The box regions (freehand outlines have their own geometry and are not box-merged)."""
    return data.boxes[data.boxes["roi_kind"].fillna("box") == "box"]


def _box_table(data: RoundReadings, voters: Readings, qc: QcReport) -> pd.DataFrame:
    """Regions of the readers QC kept on regular items, plus one empty row for each kept reader who
    answered the region's yes/no label (or any label of the item) and drew nothing: the box
    consensus needs a majority of those who read, not of those who drew."""
    bad = {(f.item, f.label, f.annotator) for f in qc.flags if f.item is not None and f.label in data.regions}
    boxes = _drawn_boxes(data)
    boxes = boxes[boxes["annotator"].isin(voters.annotators) & ~boxes["item"].isin(list(data.gold_items))]
    # a bool array, not a list: an empty list would select no columns (a round without boxes: masks only)
    boxes = boxes[np.array([(i, k, a) not in bad for i, k, a in zip(boxes["item"], boxes["label"], boxes["annotator"])],
                           dtype=bool)]
    frame = voters.frame
    region_labels = sorted({k for k, kind in data.labels.items() if kind == "box"}) or sorted(boxes["label"].unique())
    readers_of = {}
    for region in region_labels:
        finding = data.regions.get(region)
        source = frame[frame["label"] == finding] if finding else frame
        readers_of[region] = source[["item", "annotator"]].drop_duplicates()
    drew = set(zip(boxes["item"], boxes["label"], boxes["annotator"]))
    empty = [{"item": i, "label": region, "annotator": a}
             for region, pairs in readers_of.items() for i, a in zip(pairs["item"], pairs["annotator"])
             if (i, region, a) not in drew]
    return pd.concat([boxes[["item", "label", "annotator", "x0", "y0", "x1", "y1"]],
                      pd.DataFrame(empty, columns=["item", "label", "annotator"])], ignore_index=True)


def _mask_consensus(data: RoundReadings, voters: Readings) -> MaskConsensus | None:
    """STAPLE over the kept readers' painted masks on regular items, with each reader's Dice; a kept
    reader who read the item and painted nothing for the label counts as an empty mask (drawing
    nothing is their answer), so one careless painter cannot become the consensus."""
    painted = data.masks[data.masks["annotator"].isin(voters.annotators) & ~data.masks["item"].isin(list(data.gold_items))]
    if painted.empty:
        return None
    frame = voters.frame
    readers = {item: sorted(set(frame.loc[frame["item"] == item, "annotator"])) for item in painted["item"].unique()}
    return mask_consensus(painted, readers=readers)


def _mask_rows(masks: MaskConsensus | None) -> list[dict[str, Any]]:
    """One consensus row per slice STAPLE marks (ordinal: the slices in instance, frame order):
    value = its pixels, x0..y1 = their bounding box, n_positive = the readers who painted the label,
    instance and frame = the slice, mask = the consensus itself as the service encodes a mask
    ({rows, columns, rle}), which a release writes as DICOM SEG."""
    if masks is None:
        return []
    painted = masks.readers[masks.readers["pixels"] > 0].groupby(["item", "label"]).size()
    n_read = masks.readers.groupby(["item", "label"]).size()
    rows = []
    for (item, label), group in masks.masks.groupby(["item", "label"], sort=True):
        for ordinal, m in enumerate(group.sort_values(["instance", "frame"]).to_dict(orient="records")):
            pixels = decode_runs(m["rle"], m["rows"], m["columns"])
            ys, xs = np.nonzero(pixels)
            rows.append({"item": item, "label": label, "method": STAPLE, "ordinal": ordinal, "value": int(m["pixels"]),
                         "n_readers": int(n_read[(item, label)]), "n_positive": int(painted.get((item, label), 0)),
                         "x0": float(xs.min()), "y0": float(ys.min()), "x1": float(xs.max() + 1), "y1": float(ys.max() + 1),
                         "instance": int(m["instance"]), "frame": int(m["frame"]),
                         "mask": {"rows": int(m["rows"]), "columns": int(m["columns"]), "rle": [int(n) for n in m["rle"]]}})
    return rows


def _rewards(regular: Readings, qc: QcReport, config: AnalysisConfig) -> tuple[dict[str, float], str | None]:
    """Every reader's reward, and why nobody is paid when the budget cannot be split (QC kept no
    one, or no item has two payable readings to agree on)."""
    excluded = {a: why for a, why in qc.excluded.items() if a in regular.annotators}
    nobody = {a: 0.0 for a in regular.annotators}
    if not set(regular.annotators) - set(excluded):
        return nobody, "QC kept no reader"
    try:
        return split_rewards(regular, config.budget, config.reward_mode, excluded=excluded).rewards, None
    except ValueError as exc:
        return nobody, str(exc)


def strict_json(value: Any) -> Any:
    """`value` as strict JSON (PostgreSQL's json type refuses NaN and Infinity): non-finite -> None."""
    if isinstance(value, Mapping):
        return {str(k): strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _headline(block: Mapping[str, Any] | None) -> dict[str, Any]:
    block = block or {}
    return {k: v for name in HEADLINE for k, v in ((name, block.get(name)), (f"{name}_ci95", block.get(f"{name}_ci95")))}


def _analysis(catalog: Catalog, round_id: int, data: RoundReadings, config: AnalysisConfig) -> StageResult:
    """Compute everything, then write it in one transaction with its ledger events."""
    qc = _qc(data, config)
    regular = _regular(data)
    voters = kept(regular, qc)
    report = agreement_report(regular, n_boot=config.n_boot, seed=config.seed, tie_rule=config.tie_rule, qc=qc)
    consensus_rows: list[dict[str, Any]] = []
    boxes = pd.DataFrame()
    masks: MaskConsensus | None = None
    if not voters.frame.empty:
        vote = majority_vote(voters, config.tie_rule).labels
        ds = dawid_skene(voters).posterior.set_index(["item", "label"])["p_positive"]
        for r in vote.to_dict(orient="records"):
            posterior = float(ds.loc[(r["item"], r["label"])])
            common = {"item": r["item"], "label": r["label"], "n_readers": int(r["n_readers"]),
                      "n_positive": int(r["n_positive"])}
            consensus_rows.append({**common, "method": MAJORITY, "posterior": None,
                                   "value": None if pd.isna(r["consensus"]) else int(r["consensus"])})
            consensus_rows.append({**common, "method": DAWID_SKENE, "posterior": posterior,
                                   "value": int(posterior >= 0.5)})
        table = _box_table(data, voters, qc)
        if not table.empty:
            boxes = box_consensus(table, threshold=config.box_threshold)
            for (item, label), group in boxes.groupby(["item", "label"], sort=True):
                for ordinal, b in enumerate(group.to_dict(orient="records")):
                    consensus_rows.append({"item": item, "label": label, "method": BOX, "ordinal": ordinal,
                                           "n_readers": int(b["n_readers"]), "n_positive": int(b["n_readers"]),
                                           **{c: float(b[c]) for c in ("x0", "y0", "x1", "y1")}})
        masks = _mask_consensus(data, voters)
        consensus_rows.extend(_mask_rows(masks))
    rewards, unpaid = _rewards(regular, qc, config)
    box_summary = _box_summary(data, voters)
    per_annotator = report["per_annotator"]
    flags = {a: [f.to_json() for f in qc.flags if f.annotator == a] for a in data.readings.annotators}
    n_read = Counter(data.readings.frame["annotator"])

    def write(s: Any) -> StageResult:
        rnd = s.get(AnnotationRound, round_id)
        items = {i.item_key: i.id for i in s.scalars(select(AnnotationItem).where(AnnotationItem.round_id == round_id))}
        s.execute(delete(ConsensusLabel).where(ConsensusLabel.round_id == round_id))
        s.execute(delete(ReaderReport).where(ReaderReport.round_id == round_id))
        s.flush()
        subject = f"annotation_round:{round_id}"
        add_event(s, stage=STAGE, action="qc", subject=subject,
                  details={"readers": len(flags), "excluded": dict(sorted(qc.excluded.items())),
                           "flags": dict(Counter(str(f.rule) for f in qc.flags))})
        for a in data.readings.annotators:
            notes = per_annotator.get(a, {})
            s.add(ReaderReport(round_id=round_id, reader=a, n_readings=int(n_read[a]), qc_flags=flags[a],
                               passes_qc=a not in qc.excluded, reward=float(rewards.get(a, 0.0)),
                               feedback=strict_json({**(notes.get("feedback") or {}),
                                                     "gold_accuracy": notes.get("gold_accuracy"),
                                                     "passes_ai_filter": notes.get("passes_ai_filter")})))
        for row in consensus_rows:
            s.add(ConsensusLabel(round_id=round_id, item_id=items[row["item"]],
                                 **{k: v for k, v in row.items() if k != "item"}))
        counts = Counter((r["method"], r.get("value")) for r in consensus_rows)
        consensus_digest = hashlib.sha256(json.dumps(consensus_rows, sort_keys=True, default=str).encode()).hexdigest()
        add_event(s, stage=STAGE, action="consensus", subject=subject, outputs=[consensus_digest],
                  details={"majority_positive": counts[(MAJORITY, 1)], "majority_negative": counts[(MAJORITY, 0)],
                           "undecided": counts[(MAJORITY, None)], "dawid_skene_positive": counts[(DAWID_SKENE, 1)],
                           "boxes": counts[(BOX, None)], "mask_slices": sum(1 for r in consensus_rows if r["method"] == STAPLE),
                           "readers_kept": report["readers_kept"]})
        add_event(s, stage=STAGE, action="rewards", subject=subject,
                  details={"budget": config.budget, "mode": str(config.reward_mode), "unpaid": unpaid,
                           "rewards": {a: round(float(v), 6) for a, v in sorted(rewards.items())}})
        summary = {
            "items": len(set(regular.frame["item"])), "gold_items": len(data.gold_items),
            "answers": len(data.readings.frame), "regions": len(data.boxes), "readers": len(data.readings.annotators),
            "readers_kept": report["readers_kept"], "readers_excluded": report["readers_excluded"],
            **_headline(report["overall"]), "overall": report["overall"], "per_label": report["per_label"],
            "all_readers": report["all_readers"]["overall"], "consensus": report["consensus"],
            "consensus_boxes": int(len(boxes)), "box_agreement": box_summary,
            "mask_agreement": masks.summary() if masks is not None else None,
            "rewards": {"budget": config.budget, "mode": str(config.reward_mode), "paid": rewards, "unpaid": unpaid},
            "config": config.to_json(),
        }
        rnd.summary = strict_json(summary)
        rnd.state = RoundState.ANALYSED
        metrics = {"round_id": round_id, "items": summary["items"], "answers": summary["answers"],
                   "readers": summary["readers"], "readers_kept": len(report["readers_kept"]),
                   "readers_excluded": len(report["readers_excluded"]), **_headline(report["overall"]),
                   "consensus_positive": counts[(MAJORITY, 1)], "consensus_boxes": int(len(boxes))}
        return StageResult(status=StageStatus.OK, metrics=strict_json(metrics), output_hashes=[consensus_digest])

    return in_one_transaction(catalog, write)


def _box_summary(data: RoundReadings, voters: Readings) -> dict[str, Any] | None:
    """Box agreement (IoU, detection F1) between the kept readers, where at least two drew."""
    boxes = _drawn_boxes(data)
    boxes = boxes[boxes["annotator"].isin(voters.annotators) & ~boxes["item"].isin(list(data.gold_items))]
    if boxes["annotator"].nunique() < 2:
        return None
    return box_agreement(boxes[["item", "label", "annotator", "x0", "y0", "x1", "y1"]]).summary()["overall"]


def analyse(catalog: Catalog, round_id: int, config: AnalysisConfig = AnalysisConfig()) -> StageResult:
    """QC, agreement, consensus and rewards of a collected labels round, written to the catalog.
    Metrics (XCom-safe: counts, kappa and alpha with their CIs, no reader names): round_id, items,
    answers, readers, readers_kept, readers_excluded, fleiss_kappa[_ci95], krippendorff_alpha[_ci95],
    consensus_positive, consensus_boxes."""
    from curation.assist.pseudo_truth import with_ai_probability

    data = with_ai_probability(catalog, round_id, round_readings(catalog, round_id))  # ai_filter's pseudo truth
    if data.readings.frame.empty or _regular(data).frame.empty:
        return StageResult(status=StageStatus.SKIPPED, reason="no readings of the round's regular items were "
                           "collected: nothing to analyse", metrics={"round_id": round_id, "answers": 0})
    key = StageKey.of(ANALYSE_STAGE, ANALYSE_VERSION, "round", round_id, _input_hash(data), config.to_json())
    result = run_once(catalog, key, lambda: _analysis(catalog, round_id, data, config))
    return result


def reader_reports(catalog: Catalog, round_id: int) -> dict[str, dict[str, Any]]:
    """Per reader pseudonym: qc_flags (rule names), passes_qc, reward, n_readings, the flags' reasons."""
    with catalog.session() as s:
        rows = s.scalars(select(ReaderReport).where(ReaderReport.round_id == round_id).order_by(ReaderReport.reader))
        return {r.reader: {"qc_flags": sorted({f["rule"] for f in r.qc_flags}), "passes_qc": r.passes_qc,
                           "reward": r.reward, "n_readings": r.n_readings,
                           "reasons": [f["reason"] for f in r.qc_flags if f.get("excludes")]} for r in rows}


def consensus_labels(catalog: Catalog, round_id: int, method: str = DAWID_SKENE) -> pd.DataFrame:
    """The round's consensus by `method` as a table: item, label, value, posterior, n_readers, and
    for boxes x0, y0, x1, y1."""
    with catalog.session() as s:
        rows = s.execute(select(AnnotationItem.item_key, ConsensusLabel).join(
            AnnotationItem, AnnotationItem.id == ConsensusLabel.item_id)
            .where(ConsensusLabel.round_id == round_id, ConsensusLabel.method == method)
            .order_by(ConsensusLabel.label, AnnotationItem.item_key, ConsensusLabel.ordinal)).all()
    return pd.DataFrame([{"item": key, "label": c.label, "value": c.value, "posterior": c.posterior,
                          "n_readers": c.n_readers, "x0": c.x0, "y0": c.y0, "x1": c.x1, "y1": c.y1}
                         for key, c in rows],
                        columns=["item", "label", "value", "posterior", "n_readers", "x0", "y0", "x1", "y1"])


def apply_quality_review(catalog: Catalog, round_id: int) -> StageResult:
    """Make the human decisions of a quality-review round the series' final quality decisions: the
    decisions are already in `quality_review` (collect_quality); this records, per series, the final
    decision it now has beside the model's in one `final_quality_decision` ledger event, and returns
    counts (by decision, and how often people overrode the model)."""
    with catalog.session() as s:
        series = sorted(set(s.scalars(select(QualityReview.series_id).where(QualityReview.round_id == round_id))))
    finals = final_decisions(catalog, series)
    model = {sid: model_decision(rec) for sid, rec in newest_records(catalog, "quality", series).items()}
    decided = {sid: f for sid, f in finals.items() if f.source == "human"}
    by_decision = dict(Counter(f.decision for f in decided.values()))
    overridden = sum(1 for sid, f in decided.items() if f.decision != model.get(sid))

    def write(s: Any) -> StageResult:
        rnd = s.get(AnnotationRound, round_id)
        if rnd is None:
            raise ValueError(f"annotation round {round_id} is not in the catalog")
        outputs = [f"series:{sid}={f.decision}" for sid, f in sorted(decided.items())]
        if rnd.state != RoundState.ANALYSED or (rnd.summary or {}).get("final") != outputs:
            add_event(s, stage=STAGE, action="final_quality_decision", subject=f"annotation_round:{round_id}",
                      outputs=outputs, details={"series": len(decided), "by_decision": by_decision,
                                                "model_decision_overridden": overridden})
            rnd.summary = {"series": len(decided), "by_decision": by_decision,
                           "model_decision_overridden": overridden, "final": outputs}
            rnd.state = RoundState.ANALYSED
            reused = False
        else:
            reused = True
        return StageResult(status=StageStatus.OK, reused=reused,
                           metrics={"round_id": round_id, "series": len(decided), "by_decision": by_decision,
                                    "model_decision_overridden": overridden})

    return in_one_transaction(catalog, write)


__all__ = ["ANALYSE_STAGE", "AnalysisConfig", "analyse", "apply_quality_review", "consensus_labels", "reader_reports",
           "strict_json"]
