"""The rule engine: declarative rules (include/classify/rules.yaml) over a SeriesHeader.

Why data: naming conventions differ by vendor, site and year; a site adds its own patterns by editing
the YAML, and every answer names the rule that fired, so a wrong kind is traced to one line.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from curation.classify import attributes as attrs
from curation.classify import physics
from curation.classify.header import SeriesHeader
from curation.vocabulary import ALL_KINDS

RULES_PATH = Path(__file__).resolve().parents[2] / "include" / "classify" / "rules.yaml"

_SEPARATORS = re.compile(r"[_\-.\\]+")


def normalise_text(text: str) -> str:
    """Lower case, vendor separators (_ - . backslash) as spaces: 't2_tirm_tra_dark-fluid' -> 't2 tirm tra dark fluid'."""
    return " ".join(_SEPARATORS.sub(" ", text or "").lower().split())


@dataclass(frozen=True)
class Match:
    """A rule that fired: the kind, how sure the rule is, its id and its stage."""

    kind: str
    confidence: float
    rule: str
    stage: str
    detail: str = ""


def _in_range(value: float | None, bounds: list[float]) -> bool:
    return value is not None and bounds[0] <= value <= bounds[1]


def _text_match(h: SeriesHeader, pattern: re.Pattern) -> str | None:
    """Where the pattern matched: SeriesDescription first, then ProtocolName."""
    for field_name in ("series_description", "protocol_name"):
        text = normalise_text(getattr(h, field_name))
        if text:
            m = pattern.search(text)
            if m:
                return f"{field_name} ~ {m.group(0)!r}"
    return None


def _condition(key: str, value: Any, oblique_degrees: float) -> Callable[[SeriesHeader], str | bool]:
    """A predicate over the header for one condition (returns detail text or a bool)."""
    if key == "modality":
        allowed = {str(v).upper() for v in value}
        return lambda h: h.modality in allowed
    if key == "not_modality":
        banned = {str(v).upper() for v in value}
        return lambda h: h.modality not in banned
    if key == "sop_class_prefix":
        prefixes = tuple(value)
        return lambda h: any(h.sop_class_uid == p or h.sop_class_uid.startswith(p + ".") for p in prefixes)
    if key == "image_type_any":
        tokens = {str(v).upper() for v in value}
        return lambda h: bool(tokens & set(h.image_type))
    if key == "image_type_none":
        tokens = {str(v).upper() for v in value}
        return lambda h: not (tokens & set(h.image_type))
    if key == "scanning_sequence_any":
        tokens = {str(v).upper() for v in value}
        return lambda h: bool(tokens & set(h.scanning_sequence))
    if key == "scanning_sequence_none":
        tokens = {str(v).upper() for v in value}
        return lambda h: not (tokens & set(h.scanning_sequence))
    if key == "flip_over_ernst":
        return lambda h: _in_range(physics.flip_over_ernst(h), value)
    if key == "sequence_variant_any":
        tokens = {str(v).upper() for v in value}
        return lambda h: bool(tokens & set(h.sequence_variant))
    if key == "text":
        pattern = re.compile(value, re.IGNORECASE)
        return lambda h: _text_match(h, pattern) or False
    if key == "flip_not":
        return lambda h: h.flip_angle is None or not _in_range(h.flip_angle, value)
    if key in ("tr", "te", "ti", "flip"):
        attr = {"tr": "repetition_time", "te": "echo_time", "ti": "inversion_time", "flip": "flip_angle"}[key]
        return lambda h: _in_range(getattr(h, attr), value)
    if key == "b_max":
        return lambda h: bool(h.b_values) and _in_range(max(h.b_values), value)
    if key == "temporal_min":
        return lambda h: h.temporal_positions >= int(value)
    if key == "acquisition":
        return lambda h: h.mr_acquisition_type == str(value).upper()
    if key == "derived":
        return lambda h: h.derived is bool(value)
    if key == "contrast_agent":
        return lambda h: (attrs.contrast(h)[1] == "ContrastBolusAgent present") is bool(value)
    if key == "planes_min":
        return lambda h: len(attrs.plane(h, oblique_degrees)[1]) >= int(value)
    if key == "files_max":
        return lambda h: h.n_files <= int(value)
    if key == "source":
        return lambda h: h.source == value
    raise ValueError(f"rules.yaml: unknown condition {key!r}")


_RULE_KEYS = {"id", "kind", "confidence"}


@dataclass(frozen=True)
class Rule:
    id: str
    kind: str
    confidence: float
    stage: str
    conditions: tuple[Callable[[SeriesHeader], str | bool], ...]

    def evaluate(self, h: SeriesHeader) -> Match | None:
        details = []
        for cond in self.conditions:
            r = cond(h)
            if not r:
                return None
            if isinstance(r, str):
                details.append(r)
        return Match(self.kind, self.confidence, self.id, self.stage, "; ".join(details))


class RuleEngine:
    """Ordered stages of rules; `evaluate` returns the first match of each stage."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.oblique_degrees = float(config.get("oblique_degrees", attrs.OBLIQUE_DEGREES))
        self.model_override_confidence = float(config.get("model_override_confidence", 0.97))
        self.physics_defer_below = float(config.get("physics_defer_below", 0.9))
        self.stages: list[tuple[str, list[Rule]]] = []
        seen: set[str] = set()
        for stage in config["stages"]:
            rules = []
            for r in stage["rules"]:
                if r["kind"] not in ALL_KINDS:
                    raise ValueError(f"rules.yaml: rule {r['id']!r} has unknown kind {r['kind']!r}")
                if r["id"] in seen:
                    raise ValueError(f"rules.yaml: duplicate rule id {r['id']!r}")
                seen.add(r["id"])
                conds = tuple(_condition(k, v, self.oblique_degrees) for k, v in r.items() if k not in _RULE_KEYS)
                rules.append(Rule(r["id"], r["kind"], float(r["confidence"]), stage["name"], conds))
            self.stages.append((stage["name"], rules))

    def evaluate(self, h: SeriesHeader) -> dict[str, Match]:
        """First matching rule per stage (stages with no match are absent)."""
        out: dict[str, Match] = {}
        for name, rules in self.stages:
            for rule in rules:
                m = rule.evaluate(h)
                if m is not None:
                    out[name] = m
                    break
        return out

    @classmethod
    def from_file(cls, path: str | Path = RULES_PATH) -> "RuleEngine":
        with open(path, encoding="utf-8") as f:
            return cls(yaml.safe_load(f))


@lru_cache(maxsize=4)
def default_engine(path: str = str(RULES_PATH)) -> RuleEngine:
    """The shipped rules, parsed once per process."""
    return RuleEngine.from_file(path)
