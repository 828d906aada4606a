"""Patient-level splits that stay put across versions.

A patient's split is a pure function of its pseudonym, the seed and the target ratios: a keyed hash
(HMAC-SHA256, key = the seed) of the pseudonym mapped to [0, 1) and compared with the cumulative
ratios. Adding patients in a later version therefore never moves an existing patient, and all of a
patient's series share its split, so no patient is in two splits (the leak a random per-series
split makes). The realised fractions approach the targets as patients grow in number.
"""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_RATIOS: tuple[tuple[str, float], ...] = (("train", 0.7), ("validation", 0.15), ("test", 0.15))


@dataclass(frozen=True)
class SplitPlan:
    """Named splits with target ratios (in this order on [0, 1)) and the seed of the keyed hash."""

    ratios: tuple[tuple[str, float], ...] = DEFAULT_RATIOS
    seed: int = 0

    def __post_init__(self) -> None:
        names = [n for n, _ in self.ratios]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"split names must be given once each, got {names}")
        if any(r < 0 for _, r in self.ratios) or abs(sum(r for _, r in self.ratios) - 1.0) > 1e-9:
            raise ValueError(f"split ratios must be non-negative and sum to 1, got {dict(self.ratios)}")

    @classmethod
    def parse(cls, text: str, seed: int = 0) -> SplitPlan:
        """From `train=0.7,validation=0.15,test=0.15`."""
        pairs = []
        for part in (p.strip() for p in text.split(",") if p.strip()):
            name, sep, value = part.partition("=")
            try:
                pairs.append((name.strip(), float(value)))
            except ValueError:
                raise ValueError(f"split {part!r} must be NAME=RATIO (e.g. train=0.7)") from None
            if not sep or not name.strip():
                raise ValueError(f"split {part!r} must be NAME=RATIO (e.g. train=0.7)")
        return cls(tuple(pairs), seed)

    def to_json(self) -> dict[str, Any]:
        return {"ratios": [[n, r] for n, r in self.ratios], "seed": self.seed, "method": "hmac-sha256"}


def position(patient: str, seed: int) -> float:
    """Where a patient falls on [0, 1): the first 8 bytes of HMAC-SHA256(seed, pseudonym)."""
    digest = hmac.new(str(seed).encode(), patient.encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign(patient: str, plan: SplitPlan) -> str:
    """The split of one patient."""
    at, edge = position(patient, plan.seed), 0.0
    for name, ratio in plan.ratios:
        edge += ratio
        if at < edge:
            return name
    return plan.ratios[-1][0]  # rounding of the cumulative sum just below 1


def assign_all(patients: Iterable[str], plan: SplitPlan) -> dict[str, str]:
    """Split of each patient, sorted by pseudonym."""
    return {p: assign(p, plan) for p in sorted(set(patients))}


def counts(splits: Mapping[str, str], plan: SplitPlan) -> dict[str, int]:
    """Patients per split, every split of the plan named (zero where empty)."""
    out = {name: 0 for name, _ in plan.ratios}
    for split in splits.values():
        out[split] += 1
    return out


__all__ = ["DEFAULT_RATIOS", "SplitPlan", "assign", "assign_all", "counts", "position"]
