"""Automatic QC of readers and readings: named rules, each flag with a plain-English reason.

A reader who fails a reader-level rule is *excluded* (left out of consensus and rewards by `kept`),
never deleted: the rows stay in the table and the report says why. Reading-level flags (an unknown
label, a bad box, a too-fast reading) point at one reading; they exclude the reader only when they are
a large share of that reader's work. Formulas, defaults and references: docs/agreement.md ("QC").

The rules:
- `schema`: a reading for a label the project's schema does not define (or a box for a non-box label).
- `roi_geometry`: a box outside the image, degenerate (no area, or a side below a few pixels), or
  covering (nearly) the whole image.
- `time_outlier`: a reading faster than its label's floor max(minimum seconds, median / divisor);
  a reader with too large a share of such readings is excluded.
- `straight_lining`: the same answer on every reading while the other readers disagree with it.
- `random_answering`: Cohen's kappa against the leave-one-out majority of the other readers no better
  than chance; the worst reader is removed from the reference first, then the rest are re-tested.
- `gold_accuracy`: accuracy on gold items below the minimum.
- `ai_filter`: MarkIt's "better than random" filter (Witowski, Choi et al., Blockchain in Healthcare
  Today 2021): Cohen's kappa of the reader against the model's pseudo ground truth
  (`ai_probability >= threshold`) must exceed `kappa_min` on every label.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import pandas as pd

from curation.agreement.statistics import BINARY, cohen_kappa_pairs
from curation.agreement.table import Readings, as_frame

YES_NO_KINDS = frozenset({"binary", "boolean"})
KINDS = YES_NO_KINDS | {"box", "freehand", "mask"}  # a yes/no reading (finding present) is valid for every kind
BOX_COLUMNS = ("item", "label", "annotator", "x0", "y0", "x1", "y1")


class Rule(StrEnum):
    """Rule names, as they appear in JSON `qc_flags`."""

    SCHEMA = "schema"
    ROI_GEOMETRY = "roi_geometry"
    TIME_OUTLIER = "time_outlier"
    STRAIGHT_LINING = "straight_lining"
    RANDOM_ANSWERING = "random_answering"
    GOLD_ACCURACY = "gold_accuracy"
    AI_FILTER = "ai_filter"


READING_RULES = frozenset({Rule.SCHEMA, Rule.ROI_GEOMETRY})  # flagged readings `kept` drops


@dataclass(frozen=True)
class Flag:
    """One finding of one rule. `item` is set for reading-level flags; `excludes` is True when the flag
    removes the reader from consensus and rewards."""

    rule: Rule
    annotator: str
    reason: str
    label: str | None = None
    item: str | None = None
    excludes: bool = True

    def to_json(self) -> dict[str, object]:
        return {"rule": str(self.rule), "annotator": self.annotator, "reason": self.reason,
                "label": self.label, "item": self.item, "excludes": self.excludes}


@dataclass(frozen=True)
class QcConfig:
    """Thresholds of every rule (defaults and why: docs/agreement.md, "QC")."""

    ai_threshold: float = 0.5  # pseudo ground truth: ai_probability >= this (MarkIt)
    kappa_min: float = 0.05  # ai_filter: kappa must exceed this on every label (MarkIt)
    ai_min_items: int = 10  # a label judges a reader only when they read this many of its items
    invalid_max_share: float = 0.5  # schema / roi_geometry: excluded above this share of bad readings
    invalid_min_readings: int = 10  # ... once the reader has this many readings (or boxes)
    time_min_seconds: float = 1.0  # absolute floor of every label
    time_median_divisor: float = 4.0  # label floor = max(time_min_seconds, median / this)
    time_min_label_readings: int = 20  # fewer timed readings on a label: only the absolute floor
    time_max_share: float = 0.25  # a reader above this share of too-fast readings is excluded
    time_min_readings: int = 10  # ... once they have this many timed readings
    straight_min_readings: int = 20  # straight-lining needs at least this many readings
    straight_min_disagreement: float = 0.05  # ... and the others' majority saying otherwise this often
    random_kappa_min: float = 0.2  # random_answering: kappa against the others' majority <= this
    random_min_units: int = 30  # ... on at least this many item-labels with a decided majority of >= 2
    gold_min_accuracy: float = 0.7
    gold_min_readings: int = 5
    roi_min_size: float = 2.0  # pixels: a box side shorter than this is degenerate
    roi_whole_image: float = 0.95  # a box covering this share of the image is "the whole image"

    def __post_init__(self) -> None:
        shares = ("ai_threshold", "invalid_max_share", "time_max_share", "straight_min_disagreement",
                  "gold_min_accuracy", "roi_whole_image")
        bad = [name for name in shares if not 0 <= getattr(self, name) <= 1]
        bad += [name for name in ("kappa_min", "random_kappa_min") if not -1 <= getattr(self, name) <= 1]
        bad += [name for name in ("time_min_seconds", "roi_min_size") if not getattr(self, name) >= 0]
        bad += [] if self.time_median_divisor >= 1 else ["time_median_divisor"]
        counts = ("ai_min_items", "invalid_min_readings", "time_min_label_readings", "time_min_readings",
                  "straight_min_readings", "random_min_units", "gold_min_readings")
        bad += [name for name in counts if getattr(self, name) < 1]
        if bad:
            raise ValueError(f"QcConfig out of range: {bad}")


@dataclass(frozen=True)
class QcReport:
    """Every flag, the figures the rules judged, and the excluded readers with their reasons."""

    flags: list[Flag]
    ai_kappa: dict[str, dict[str, float | None]]  # annotator -> label -> kappa (empty without AI)
    passes_ai_filter: dict[str, bool]  # empty without ai_probability
    gold_accuracy: dict[str, float]  # annotators who read gold items
    excluded: dict[str, str]  # annotator -> reasons of the excluding flags, "; "-joined
    random_kappa: dict[str, float | None] = field(default_factory=dict)  # vs the others' majority
    time_floor: dict[str, float] = field(default_factory=dict)  # label -> seconds

    def rules_of(self, annotator: str) -> list[str]:
        """Sorted unique rule names of that reader's flags (reading-level ones included)."""
        return sorted({str(f.rule) for f in self.flags if f.annotator == annotator})

    def to_json(self) -> dict[str, object]:
        return {"flags": [f.to_json() for f in self.flags], "ai_kappa": self.ai_kappa,
                "passes_ai_filter": self.passes_ai_filter, "gold_accuracy": self.gold_accuracy,
                "excluded": self.excluded, "random_kappa": self.random_kappa, "time_floor": self.time_floor}


def cohen_kappa(first: np.ndarray, second: np.ndarray) -> float | None:
    """Cohen's kappa of two 0/1 vectors on the positions both read (NaN = not read); None where it is
    undefined (both constant and equal: no disagreement is expected, so none can be beaten)."""
    values = np.column_stack([np.asarray(first, dtype=float), np.asarray(second, dtype=float)])
    _, kappa, _ = cohen_kappa_pairs(np.ones((1, len(values))), values, BINARY)
    return None if np.isnan(kappa[0, 0]) else float(kappa[0, 0])


def _share_flags(rule: Rule, bad: pd.Series, total: pd.Series, config: QcConfig, what: str) -> list[Flag]:
    """Reader-level flags for readers most of whose readings (or boxes) a reading rule found invalid."""
    flags = []
    for annotator, n_bad in bad.items():
        n = int(total.get(annotator, 0))
        if n >= config.invalid_min_readings and n_bad / n > config.invalid_max_share:
            flags.append(Flag(rule, str(annotator), f"{n_bad} of {n} {what} invalid "
                              f"({n_bad / n:.0%} > {config.invalid_max_share:.0%})"))
    return flags


def check_schema(frame: pd.DataFrame, schema: Mapping[str, str], config: QcConfig = QcConfig()) -> list[Flag]:
    """A yes/no reading is valid for any label the schema defines (for region labels it
    says whether the finding is present); readings of labels the schema lacks are flagged."""
    unknown_kinds = sorted({str(k) for k in schema.values()} - KINDS)
    if unknown_kinds:
        raise ValueError(f"unknown label kind(s) {unknown_kinds}; known: {sorted(KINDS)}")
    unknown = frame[~frame["label"].isin(list(schema))]
    flags = [Flag(Rule.SCHEMA, a, f"label {k!r} is not in the schema ({len(schema)} labels)", k, i, False)
             for i, k, a in zip(unknown["item"], unknown["label"], unknown["annotator"])]
    return flags + _share_flags(Rule.SCHEMA, unknown.groupby("annotator").size(),
                                frame.groupby("annotator").size(), config, "readings")


def _image_sizes(boxes: pd.DataFrame, image_size: Mapping[str, tuple[float, float]] | None) -> pd.DataFrame:
    """width, height per box row, from the frame's own columns or from `image_size[item]`."""
    if image_size is None:
        if not {"width", "height"} <= set(boxes.columns):
            raise ValueError("boxes need `width` and `height` columns or an image_size mapping")
        return boxes[["width", "height"]].astype(float)
    absent = sorted(set(boxes["item"].astype(str)) - {str(k) for k in image_size})
    if absent:
        raise ValueError(f"no image size for item(s) {absent[:5]}")
    sizes = {str(k): v for k, v in image_size.items()}
    return pd.DataFrame([sizes[str(i)] for i in boxes["item"]], columns=["width", "height"],
                        index=boxes.index, dtype=float)


def _box_problem(x0: float, y0: float, x1: float, y1: float, width: float, height: float,
                 config: QcConfig) -> str | None:
    """The first geometry problem of one box, in words with its numbers, or None."""
    box = f"box ({x0:g}, {y0:g}, {x1:g}, {y1:g})"
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        return f"{box} has a missing coordinate"
    if x1 <= x0 or y1 <= y0:
        return f"{box} has no area (x1 <= x0 or y1 <= y0)"
    if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
        return f"{box} lies outside the {width:g} x {height:g} image"
    if min(x1 - x0, y1 - y0) < config.roi_min_size:
        return f"{box} is {x1 - x0:g} x {y1 - y0:g} px, a side below {config.roi_min_size:g} px"
    cover = (x1 - x0) * (y1 - y0) / (width * height)
    if cover >= config.roi_whole_image:
        return f"{box} covers {cover:.0%} of the image (>= {config.roi_whole_image:.0%}): the whole image"
    return None


def check_boxes(boxes: pd.DataFrame, image_size: Mapping[str, tuple[float, float]] | None = None,
                config: QcConfig = QcConfig(), schema: Mapping[str, str] | None = None) -> list[Flag]:
    """Reading-level `roi_geometry` flags for boxes (`item,label,annotator,x0,y0,x1,y1` in image
    pixels, x to the right, y down; image `width`,`height` as columns or `image_size[item]`), and
    `schema` flags for boxes drawn on a label the schema does not define as a box label."""
    missing = [c for c in BOX_COLUMNS if c not in boxes.columns]
    if missing:
        raise ValueError(f"boxes lack column(s) {missing}; have {list(boxes.columns)}")
    sizes = _image_sizes(boxes, image_size)
    coords = boxes[["x0", "y0", "x1", "y1"]].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    flags = []
    for (item, label, annotator), (x0, y0, x1, y1), (width, height) in zip(
            boxes[["item", "label", "annotator"]].astype(str).itertuples(index=False, name=None),
            coords, sizes.to_numpy()):
        if schema is not None and schema.get(label) != "box":
            kind = schema.get(label)
            why = "is not in the schema" if kind is None else f"is a {kind!r} label, not a box label"
            flags.append(Flag(Rule.SCHEMA, annotator, f"box on label {label!r}, which {why}", label, item, False))
        problem = _box_problem(x0, y0, x1, y1, width, height, config)
        if problem is not None:
            flags.append(Flag(Rule.ROI_GEOMETRY, annotator, problem, label, item, False))
    return flags


def time_floors(frame: pd.DataFrame, config: QcConfig = QcConfig()) -> dict[str, float]:
    """Per label: max(time_min_seconds, median seconds / time_median_divisor); only the absolute floor
    where the label has fewer than `time_min_label_readings` timed readings. The median stays put
    while up to half the readings are too fast, which a spread-based fence would not."""
    timed = frame.dropna(subset=["seconds"])
    floors = {}
    for label, seconds in timed.groupby("label")["seconds"]:
        floor = config.time_min_seconds
        if len(seconds) >= config.time_min_label_readings:
            floor = max(floor, float(seconds.median()) / config.time_median_divisor)
        floors[str(label)] = floor
    return floors


def check_times(frame: pd.DataFrame, config: QcConfig = QcConfig()) -> tuple[list[Flag], dict[str, float]]:
    """Reading-level flags below the label's floor; a reader-level flag (excluding) when more than
    `time_max_share` of a reader's (at least `time_min_readings`) timed readings are too fast."""
    floors = time_floors(frame, config)
    timed = frame.dropna(subset=["seconds"])
    floor = timed["label"].map(floors)
    fast = timed[timed["seconds"] < floor]
    flags = [Flag(Rule.TIME_OUTLIER, a, f"{s:g} s, below the floor {floors[k]:.2f} s of label {k!r}", k, i, False)
             for i, k, a, s in zip(fast["item"], fast["label"], fast["annotator"], fast["seconds"])]
    n_fast = fast.groupby("annotator").size()
    n_timed = timed.groupby("annotator").size()
    for annotator, n in n_timed.items():
        k = int(n_fast.get(annotator, 0))
        if n >= config.time_min_readings and k / n > config.time_max_share:
            flags.append(Flag(Rule.TIME_OUTLIER, str(annotator), f"{k} of {n} readings faster than their "
                              f"label's floor ({k / n:.0%} > {config.time_max_share:.0%})"))
    return flags, floors


def _others_majority(values: np.ndarray, pool: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every reader (column): yes and no votes of the *other* pool readers on each unit."""
    read = ~np.isnan(values) & pool[None, :]
    yes = np.where(read, np.nan_to_num(values), 0.0)
    no = read.astype(float) - yes
    return yes.sum(axis=1, keepdims=True) - yes, no.sum(axis=1, keepdims=True) - no


def check_straight_lining(values: np.ndarray, readers: list[str], config: QcConfig = QcConfig()) -> list[Flag]:
    """A reader with one answer on all of (at least `straight_min_readings`) item-labels, where the
    other readers' majority gives the other answer on at least `straight_min_disagreement` of the
    item-labels it decides. With no other reader there is nothing to tell it from a normal set."""
    yes, no = _others_majority(values, np.ones(len(readers), dtype=bool))
    flags = []
    for r, annotator in enumerate(readers):
        read = ~np.isnan(values[:, r])
        answers = np.unique(values[read, r])
        if read.sum() < config.straight_min_readings or len(answers) != 1:
            continue
        decided = read & (yes[:, r] != no[:, r])
        if not decided.any():
            continue
        other = (yes[decided, r] > no[decided, r]).astype(float) != answers[0]
        if other.mean() >= config.straight_min_disagreement:
            word = "yes" if answers[0] == 1 else "no"
            flags.append(Flag(Rule.STRAIGHT_LINING, annotator,
                              f"answered {word!r} on all {int(read.sum())} readings while the other readers' "
                              f"majority said otherwise on {other.mean():.0%} of them "
                              f"(>= {config.straight_min_disagreement:.0%})"))
    return flags


def _kappa_against_others(values: np.ndarray, pool: np.ndarray, config: QcConfig) -> dict[int, float | None]:
    """Kappa of every pool reader against the strict majority of the other pool readers, on units
    with >= 2 other readings and no tie; None where untestable (too few units, constant reference)."""
    yes, no = _others_majority(values, pool)
    out: dict[int, float | None] = {}
    for r in np.flatnonzero(pool):
        usable = ~np.isnan(values[:, r]) & (yes[:, r] + no[:, r] >= 2) & (yes[:, r] != no[:, r])
        reference = (yes[usable, r] > no[usable, r]).astype(float)
        if usable.sum() < config.random_min_units or len(np.unique(reference)) < 2:
            out[int(r)] = None
        else:
            out[int(r)] = cohen_kappa(values[usable, r], reference)
    return out


def _mean_pairwise_kappa(values: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """Per reader: mean Cohen's kappa with each other pool reader (NaN pairs left out)."""
    columns = np.flatnonzero(pool)
    pairs, kappa, _ = cohen_kappa_pairs(np.ones((1, len(values))), values[:, columns], BINARY)
    total, count = np.zeros(len(pool)), np.zeros(len(pool))
    for (a, b), k in zip(pairs, kappa[0]):
        if not np.isnan(k):
            total[columns[[a, b]]] += k
            count[columns[[a, b]]] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.inf)


def check_random_answering(values: np.ndarray, readers: list[str], skip: set[str],
                           config: QcConfig = QcConfig()) -> tuple[list[Flag], dict[str, float | None]]:
    """Greedy leave-one-out test. Among the readers whose kappa against the others' majority is
    <= `random_kappa_min`, the one with the lowest mean pairwise kappa is flagged and removed from the
    reference, then the rest are re-tested. Pairwise kappas pick who goes first because a random
    reader drags down every other reader's majority but not their kappas with each other. Reported:
    each reader's kappa from the last round in which it could be tested."""
    pool = np.array([a not in skip for a in readers], dtype=bool)
    flags: list[Flag] = []
    final: dict[str, float | None] = {a: None for a, p in zip(readers, pool) if p}
    while True:
        kappas = _kappa_against_others(values, pool, config)
        final.update({readers[r]: k for r, k in kappas.items() if k is not None})
        low = [r for r, k in kappas.items() if k is not None and k <= config.random_kappa_min]
        if not low:
            return flags, final
        pairwise = _mean_pairwise_kappa(values, pool)
        worst = min(low, key=lambda r: (pairwise[r], kappas[r], readers[r]))
        flags.append(Flag(Rule.RANDOM_ANSWERING, readers[worst],
                          f"Cohen's kappa {kappas[worst]:.3f} <= {config.random_kappa_min:g} against the "
                          f"majority of the other {int(pool.sum()) - 1} readers: no better than chance"))
        pool[worst] = False


def check_gold(frame: pd.DataFrame, config: QcConfig = QcConfig()) -> tuple[list[Flag], dict[str, float]]:
    """Accuracy on gold items per reader; below `gold_min_accuracy` on at least `gold_min_readings`
    gold readings excludes (fewer readings are reported, not judged)."""
    if "gold" not in frame.columns:
        return [], {}
    gold = frame.dropna(subset=["gold"])
    correct = (gold["value"] == gold["gold"].astype(int)).groupby(gold["annotator"])
    accuracy, n = correct.mean(), correct.size()
    flags = [Flag(Rule.GOLD_ACCURACY, str(a), f"{accuracy[a]:.0%} correct on {n[a]} gold readings "
                  f"(< {config.gold_min_accuracy:.0%})")
             for a in accuracy.index
             if n[a] >= config.gold_min_readings and accuracy[a] < config.gold_min_accuracy]
    return flags, {str(a): float(v) for a, v in accuracy.items()}


def check_ai(readings: Readings, config: QcConfig = QcConfig()) -> tuple[list[Flag], dict[str, dict[str, float | None]],
                                                                        dict[str, bool]]:
    """MarkIt's "better than random" filter. Per label and reader: kappa against the pseudo ground
    truth on the items both have. A label where the AI's pseudo truth is constant is not judged (kappa
    is 0 or undefined for every reader, whatever they answer; reported as None); a label where the
    reader read fewer than `ai_min_items` items is reported but not judged. A reader constant on a
    label where the AI varies has kappa 0 and fails."""
    frame = readings.frame
    if "ai_probability" not in frame.columns or frame["ai_probability"].isna().all():
        return [], {}, {}
    readers = readings.annotators
    kappas: dict[str, dict[str, float | None]] = {a: {} for a in readers}
    flags: list[Flag] = []
    for label in readings.labels:
        values = readings.ratings(label, annotators=readers).values
        probability = readings.ratings(label, column="ai_probability", annotators=readers).values
        ai = np.nanmax(np.where(np.isnan(probability), -np.inf, probability), axis=1)
        truth = np.where(np.isfinite(ai), (ai >= config.ai_threshold).astype(float), np.nan)
        judged = len(np.unique(truth[~np.isnan(truth)])) == 2
        for r, annotator in enumerate(readers):
            both = ~np.isnan(values[:, r]) & ~np.isnan(truth)
            kappa = cohen_kappa(values[both, r], truth[both]) if judged and both.any() else None
            kappas[annotator][label] = kappa
            if judged and both.sum() >= config.ai_min_items and (kappa is None or kappa <= config.kappa_min):
                shown = "undefined" if kappa is None else f"{kappa:.3f}"
                flags.append(Flag(Rule.AI_FILTER, annotator, f"Cohen's kappa {shown} <= {config.kappa_min:g} "
                                  f"against the AI (ai_probability >= {config.ai_threshold:g}) on label "
                                  f"{label!r}, {int(both.sum())} items", label))
    failed = {f.annotator for f in flags}
    return flags, kappas, {a: a not in failed for a in readers}


def check(readings: Readings | pd.DataFrame, config: QcConfig = QcConfig(), schema: Mapping[str, str] | None = None,
          boxes: pd.DataFrame | None = None,
          image_size: Mapping[str, tuple[float, float]] | None = None) -> QcReport:
    """Run every rule whose inputs are present: schema when `schema` is given, roi_geometry when
    `boxes` are, time_outlier with `seconds`, gold_accuracy with `gold`, ai_filter with
    `ai_probability`; straight_lining and random_answering always."""
    table = readings if isinstance(readings, Readings) else Readings(as_frame(readings))
    frame = table.frame
    flags: list[Flag] = []
    if schema is not None:
        flags += check_schema(frame, schema, config)
    if boxes is not None:
        box_flags = check_boxes(boxes, image_size, config, schema)
        flags += box_flags
        total = boxes.groupby(boxes["annotator"].astype(str)).size()
        for rule in (Rule.SCHEMA, Rule.ROI_GEOMETRY):
            bad = pd.Series([f.annotator for f in box_flags if f.rule is rule], dtype=object).value_counts()
            flags += _share_flags(rule, bad, total, config, f"boxes ({rule})")
    floors: dict[str, float] = {}
    if "seconds" in frame.columns:
        time_flags, floors = check_times(frame, config)
        flags += time_flags
    readers = table.annotators
    values = table.ratings(None, annotators=readers).values
    straight = check_straight_lining(values, readers, config)
    random_flags, random_kappa = check_random_answering(values, readers, {f.annotator for f in straight}, config)
    gold_flags, gold_accuracy = check_gold(frame, config)
    ai_flags, ai_kappa, passes = check_ai(table, config)
    flags += straight + random_flags + gold_flags + ai_flags
    reasons: dict[str, list[str]] = {}
    for f in flags:
        if f.excludes:
            reasons.setdefault(f.annotator, []).append(f"{f.rule}: {f.reason}")
    excluded = {a: "; ".join(reasons[a]) for a in sorted(reasons)}
    return QcReport(flags, ai_kappa, passes, gold_accuracy, excluded, random_kappa, floors)


def kept(readings: Readings | pd.DataFrame, report: QcReport) -> Readings:
    """The readings without the excluded readers' rows and without readings a schema or geometry
    flag found invalid (too-fast readings stay: a vote is still a vote; the reader is judged on them)."""
    frame = as_frame(readings)
    invalid = {(f.item, f.label, f.annotator) for f in report.flags
               if f.rule in READING_RULES and f.item is not None}
    keys = pd.Series(list(zip(frame["item"], frame["label"], frame["annotator"])), index=frame.index)
    keep = ~frame["annotator"].isin(list(report.excluded)) & ~keys.isin(invalid)
    return Readings(frame[keep].reset_index(drop=True))
