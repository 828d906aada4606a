"""Simulated readers: how a careful, hasty, random, straight-lining or slow reader answers a yes/no
finding and outlines it, drawn from the synthetic ground truth.

Pure functions, no HTTP (the client that drives the annotation service is `synth.reader_client`).
A reading depends only on (seed, reader, item, label), so a simulated round is the same however its
readers are scheduled, and a reader killed and restarted gives the answer it would have given.

Why these profiles: annotation QC must catch the two classic bad readers, the one answering at
random and the one giving the same answer to everything (straight-lining), while careful readers at
0.9 sensitivity/specificity are what consensus is measured against; hasty and slow readers test that
speed alone (MarkIt's time per case) is not mistaken for bad reading.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from curation.vocabulary import ReviewDecision

#: The service's confidence steps (annotation: 0, 20, ..., 100 %).
CONFIDENCE_STEPS = (0, 20, 40, 60, 80, 100)


@dataclass(frozen=True)
class Box:
    """A region as a reader draws it: x, y, width, height in image pixels (column x, row y, origin at
    the top-left corner of the first pixel), on one instance (position in the item) and frame."""

    x: float
    y: float
    w: float
    h: float
    instance: int = 0
    frame: int = 0

    def corners(self) -> list[list[float]]:
        """The service's box ROI: two corner points [[x0, y0], [x1, y1]]."""
        return [[round(self.x, 2), round(self.y, 2)], [round(self.x + self.w, 2), round(self.y + self.h, 2)]]

    def iou(self, other: Box) -> float:
        ix = max(0.0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0.0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        inter = ix * iy
        union = self.w * self.h + other.w * other.h - inter
        return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class LabelTruth:
    """What a yes/no label should be on one item, and where the finding lies (one box per region)."""

    present: bool
    boxes: tuple[Box, ...] = ()


@dataclass(frozen=True)
class Confidence:
    """A confidence habit: the step a reader gives when right and when wrong (a careful reader is
    less sure of the answers it gets wrong), with `spread` steps of jitter either way. `fixed`: the
    same confidence every time (straight-lining)."""

    right: int = 80
    wrong: int = 40
    spread: int = 1
    fixed: int | None = None

    def draw(self, correct: bool, rng: np.random.Generator) -> int:
        if self.fixed is not None:
            return self.fixed
        centre = CONFIDENCE_STEPS.index(self.right if correct else self.wrong)
        step = centre + int(rng.integers(-self.spread, self.spread + 1))
        return CONFIDENCE_STEPS[min(max(step, 0), len(CONFIDENCE_STEPS) - 1)]


@dataclass(frozen=True)
class ReaderProfile:
    """How one kind of reader answers.

    sensitivity / specificity: probability of "yes" on a present finding / "no" on an absent one.
    guess: None, or the probability of "yes" whatever the truth (a random reader: 0.5).
    flat: None, or the one answer a straight-liner gives to every label.
    box_noise: standard deviation of each box edge, as a fraction of the box's width (x) or height (y).
    box_miss: probability of not drawing the box of a finding answered "yes".
    seconds_median, seconds_sigma: reading time per label, lognormal (median, sigma of its log).
    """

    name: str
    sensitivity: float
    specificity: float
    box_noise: float
    confidence: Confidence
    seconds_median: float
    seconds_sigma: float = 0.4
    guess: float | None = None
    flat: bool | None = None
    box_miss: float = 0.0

    def __post_init__(self) -> None:
        for field_name in ("sensitivity", "specificity", "box_miss"):
            value = getattr(self, field_name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"profile {self.name}: {field_name} {value} is not a probability")
        if self.guess is not None and not 0.0 <= self.guess <= 1.0:
            raise ValueError(f"profile {self.name}: guess {self.guess} is not a probability")
        if self.box_noise < 0 or self.seconds_median <= 0 or self.seconds_sigma < 0:
            raise ValueError(f"profile {self.name}: box_noise, seconds_median and seconds_sigma must be positive")


PROFILES: dict[str, ReaderProfile] = {p.name: p for p in (
    ReaderProfile("careful", 0.9, 0.9, box_noise=0.05, confidence=Confidence(right=80, wrong=40),
                  seconds_median=25.0),
    ReaderProfile("hasty", 0.75, 0.8, box_noise=0.15, confidence=Confidence(right=100, wrong=80),
                  seconds_median=6.0, box_miss=0.2),
    ReaderProfile("random", 0.5, 0.5, box_noise=0.0, confidence=Confidence(right=40, wrong=40, spread=2),
                  seconds_median=5.0, seconds_sigma=0.8, guess=0.5),
    ReaderProfile("flat", 0.0, 1.0, box_noise=0.0, confidence=Confidence(fixed=60), seconds_median=2.0,
                  seconds_sigma=0.2, flat=False),
    ReaderProfile("slow", 0.9, 0.9, box_noise=0.05, confidence=Confidence(right=80, wrong=40),
                  seconds_median=120.0, seconds_sigma=0.5),
)}
#: Other names a spec may use.
ALIASES = {"straight-lining": "flat", "straightlining": "flat", "straight": "flat"}


@dataclass(frozen=True)
class LabelReading:
    """One reader's answer to one label of one item: yes/no, confidence step, boxes, seconds spent."""

    value: bool
    confidence: int
    boxes: tuple[Box, ...]
    seconds: float


def reading_rng(seed: int, reader: str, item: str, label: str) -> np.random.Generator:
    """The random stream of one (seed, reader, item, label): independent of everything else read."""
    digest = hashlib.sha256(f"curate-sim-reader/{seed}/{reader}/{item}/{label}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def _noisy(box: Box, noise: float, rng: np.random.Generator, grid: tuple[int, int] | None) -> Box:
    """`box` with each edge moved by N(0, noise x its size), kept at least one pixel wide."""
    x0, x1 = box.x + rng.normal(0, noise * box.w), box.x + box.w + rng.normal(0, noise * box.w)
    y0, y1 = box.y + rng.normal(0, noise * box.h), box.y + box.h + rng.normal(0, noise * box.h)
    x0, x1 = sorted((x0, x1))
    y0, y1 = sorted((y0, y1))
    if grid is not None:
        x0, x1 = min(max(x0, 0.0), grid[0] - 1.0), min(max(x1, 1.0), float(grid[0]))
        y0, y1 = min(max(y0, 0.0), grid[1] - 1.0), min(max(y1, 1.0), float(grid[1]))
    return Box(x0, y0, max(x1 - x0, 1.0), max(y1 - y0, 1.0), box.instance, box.frame)


def _anywhere(rng: np.random.Generator, grid: tuple[int, int], instances: int = 1) -> Box:
    """A box a random reader draws: anywhere, a tenth to a third of the image across."""
    cols, rows = grid
    w, h = cols * rng.uniform(0.1, 0.33), rows * rng.uniform(0.1, 0.33)
    return Box(rng.uniform(0, cols - w), rng.uniform(0, rows - h), w, h, int(rng.integers(instances)), 0)


def answer(profile: ReaderProfile, truth: LabelTruth, label: str, rng: np.random.Generator,
           grid: tuple[int, int] | None = None, instances: int = 1) -> LabelReading:
    """How `profile` answers `label` on an item whose truth is `truth`.

    `grid` (columns, rows of the image) lets a random reader draw a box somewhere and keeps noisy
    boxes inside the image; `instances`: how many instances the item has (where a random box lands).
    A truth without regions (a label without a box label, a region on an instance the item lacks)
    gives no box. `label` is the label answered; the draw comes from `rng` (see `reading_rng`)."""
    if profile.flat is not None:
        value = profile.flat
    elif profile.guess is not None:
        value = bool(rng.random() < profile.guess)
    elif truth.present:
        value = bool(rng.random() < profile.sensitivity)
    else:
        value = not bool(rng.random() < profile.specificity)
    confidence = profile.confidence.draw(value == truth.present, rng)
    boxes: tuple[Box, ...] = ()
    if value:
        if profile.guess is not None:
            boxes = (_anywhere(rng, grid, instances),) if grid is not None else ()
        else:  # a finding answered yes where it is absent gets no box: there is nothing to outline
            boxes = tuple(_noisy(b, profile.box_noise, rng, grid) for b in truth.boxes
                          if not rng.random() < profile.box_miss)
    seconds = float(profile.seconds_median * math.exp(rng.normal(0.0, profile.seconds_sigma)))
    return LabelReading(value, confidence, boxes, seconds)


#: A human quality review's outcomes (PRIMAGE's; the annotation service's quality-review projects).
QUALITY_DECISIONS = tuple(str(d) for d in ReviewDecision)


@dataclass(frozen=True)
class QualityTruth:
    """What a quality reviewer should decide on a series, and why (the planted defect)."""

    decision: str
    reason: str = ""

    def __post_init__(self) -> None:
        if self.decision not in QUALITY_DECISIONS:
            raise ValueError(f"quality decision {self.decision!r} is not one of {', '.join(QUALITY_DECISIONS)}")


@dataclass(frozen=True)
class QualityReading:
    decision: str
    reason: str
    seconds: float


def quality_answer(profile: ReaderProfile, truth: QualityTruth, rng: np.random.Generator) -> QualityReading:
    """A quality review: the right decision with probability sensitivity (defective series) or
    specificity (clean ones), else the other of approve / exclude; a random reader picks any of the
    three, a straight-liner always approves. Exclude and quarantine carry a reason (the service needs one)."""
    approve, exclude = str(ReviewDecision.APPROVE), str(ReviewDecision.EXCLUDE)
    if profile.flat is not None:
        decision = approve
    elif profile.guess is not None:
        decision = QUALITY_DECISIONS[int(rng.integers(len(QUALITY_DECISIONS)))]
    else:
        right = rng.random() < (profile.specificity if truth.decision == approve else profile.sensitivity)
        decision = truth.decision if right else (exclude if truth.decision == approve else approve)
    reason = "" if decision == approve else (truth.reason if decision == truth.decision and truth.reason
                                               else "simulated reader: image quality")
    seconds = float(profile.seconds_median * math.exp(rng.normal(0.0, profile.seconds_sigma)))
    return QualityReading(decision, reason, seconds)


@dataclass(frozen=True)
class ReaderSpec:
    """One simulated reader: its account name (stable across runs) and profile."""

    username: str
    profile: ReaderProfile


def parse_readers(spec: str, prefix: str = "sim") -> list[ReaderSpec]:
    """`careful:3,random:1,flat:1` -> five readers `sim-careful-1` ... `sim-flat-1`.
    A profile without a count is one reader; a profile named twice is an error."""
    readers: list[ReaderSpec] = []
    seen: set[str] = set()
    parts = [p.strip() for p in spec.split(",")]
    if not spec.strip() or any(not p for p in parts):
        raise ValueError(f"reader spec {spec!r}: expected PROFILE[:COUNT],... e.g. careful:3,random:1,flat:1")
    for part in parts:
        name, _, count_text = part.partition(":")
        name = ALIASES.get(name.strip().lower(), name.strip().lower())
        if name not in PROFILES:
            raise ValueError(f"reader spec {spec!r}: unknown profile {name!r} (known: {', '.join(PROFILES)})")
        if name in seen:
            raise ValueError(f"reader spec {spec!r}: profile {name!r} given twice")
        seen.add(name)
        try:
            count = int(count_text) if count_text.strip() else 1
        except ValueError:
            raise ValueError(f"reader spec {spec!r}: count {count_text!r} of {name!r} is not a whole number") from None
        if not 1 <= count <= 1000:
            raise ValueError(f"reader spec {spec!r}: count of {name!r} must be 1 to 1000, not {count}")
        readers += [ReaderSpec(f"{prefix}-{name}-{n}", PROFILES[name]) for n in range(1, count + 1)]
    return readers


def item_reading(profile: ReaderProfile, reader: str, seed: int, item: str,
                 truth: Mapping[str, LabelTruth], labels: list[str],
                 grid: tuple[int, int] | None = None, instances: int = 1) -> dict[str, LabelReading]:
    """Every yes/no label of one item as `reader` answers it (labels without truth are not answered)."""
    return {label: answer(profile, truth[label], label, reading_rng(seed, reader, item, label), grid, instances)
            for label in labels if label in truth}
