"""Label schemas of annotation rounds: versioned YAML files in include/annotation/schemas/.

A file names the schema and its version, the service project kind it is for, a default selection of
series, which region label outlines which yes/no label, and `schema`: the annotation service's
schema payload as it stands (`{"instructions", "labels": [{"id", "name", "kind", "instructions",
"color"}]}`), posted unchanged. The service refuses unknown keys and out-of-range values with a 422
at dispatch time, long after a curator chose the file; this loader applies the same rules when the
file is read and names the file, the label and the field that break them. (It spells the service's
rules itself: the libraries do not import the service.)
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from curation.vocabulary import ALL_KINDS, QualityDecision

SCHEMAS_DIR = Path(__file__).resolve().parents[1] / "include" / "annotation" / "schemas"

PROJECT_KINDS = ("labels", "quality_review")
LABEL_KINDS = ("boolean", "box", "freehand", "mask")
#: Labels a reader draws: boxes, outlines, and masks painted with the brush or polygon tool (stored
#: run-length encoded per slice; their consensus is STAPLE, `agreement.roi.mask_consensus`).
REGION_KINDS = ("box", "freehand", "mask")

# The service's limits (annotation/schemas.py: SchemaDef, LabelDef).
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,31}$")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}[a-z0-9]$")
_MAX_LABELS = 100
_LABEL_KEYS = {"id", "name", "kind", "instructions", "color"}
_SCHEMA_KEYS = {"labels", "instructions"}
_FILE_KEYS = {"name", "version", "project_kind", "description", "selection", "regions", "schema"}
_SELECTION_KEYS = {"series_kinds", "body_parts", "modalities", "quality_decisions"}


class SchemaError(ValueError):
    """A label schema file breaks a rule; the message names the file, the place and the rule."""


@dataclass(frozen=True)
class LabelSchema:
    """One version of a label schema. `payload` is the service's schema body (None for a quality
    review project without labels); `regions` maps a region label to the yes/no label it outlines."""

    name: str
    version: int
    project_kind: str
    description: str
    payload: dict[str, Any] | None
    regions: dict[str, str] = field(default_factory=dict)
    selection: dict[str, list[str]] = field(default_factory=dict)
    path: str = ""

    @property
    def key(self) -> str:
        """`<name>_v<version>`: the file's stem, and how a DAG Param names the schema."""
        return f"{self.name}_v{self.version}"

    @property
    def labels(self) -> dict[str, str]:
        """label id -> kind (boolean, box, freehand, mask): QC's `schema` rule reads this mapping."""
        return {lab["id"]: lab["kind"] for lab in (self.payload or {}).get("labels", [])}

    @property
    def yes_no_labels(self) -> list[str]:
        return [label for label, kind in self.labels.items() if kind == "boolean"]

    @property
    def region_labels(self) -> list[str]:
        return [label for label, kind in self.labels.items() if kind in REGION_KINDS]

    def to_xcom(self) -> dict[str, Any]:
        """Small: enough for the dispatch task to create the service project and post the schema."""
        return {"name": self.name, "version": self.version, "project_kind": self.project_kind,
                "payload": self.payload, "regions": self.regions}


def _fail(where: str, message: str) -> SchemaError:
    return SchemaError(f"{where}: {message}")


def _text(value: Any, where: str, what: str, max_length: int, min_length: int = 0) -> str:
    if not isinstance(value, str):
        raise _fail(where, f"{what} must be text, not {type(value).__name__}")
    if not min_length <= len(value) <= max_length:
        raise _fail(where, f"{what} must have {min_length} to {max_length} characters, has {len(value)}")
    if "\x00" in value:
        raise _fail(where, f"{what} holds a NUL character")
    return value


def _unknown(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(data) - allowed)
    if extra:
        raise _fail(where, f"unknown key(s) {extra}; allowed: {sorted(allowed)}")


def _label(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise _fail(where, "a label is a mapping with id, name, kind (and instructions, color)")
    _unknown(raw, _LABEL_KEYS, where)
    for key in ("id", "name", "kind"):
        if key not in raw:
            raise _fail(where, f"the label has no {key!r}")
    label_id = _text(raw["id"], where, "id", 32, 1)
    if not _SLUG.match(label_id):
        raise _fail(where, f"id {label_id!r} must be lower-case letters, digits, '_' or '-' (at most 32, "
                           "starting with a letter or digit)")
    where = f"{where} ({label_id})"
    if raw["kind"] not in LABEL_KINDS:
        raise _fail(where, f"kind {raw['kind']!r} is not one of {list(LABEL_KINDS)}")
    label = {"id": label_id, "name": _text(raw["name"], where, "name", 128, 1), "kind": raw["kind"]}
    if "instructions" in raw:
        label["instructions"] = _text(raw["instructions"], where, "instructions", 4000)
    if "color" in raw:
        color = _text(raw["color"], where, "color", 7)
        if not _COLOR.match(color):
            raise _fail(where, f"color {color!r} must be #rrggbb (quote it in YAML: \"#f5a623\")")
        label["color"] = color
    return label


def _payload(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise _fail(where, "schema must be a mapping with labels (and instructions)")
    _unknown(raw, _SCHEMA_KEYS, where)
    labels = raw.get("labels")
    if not isinstance(labels, list) or not 1 <= len(labels) <= _MAX_LABELS:
        raise _fail(where, f"schema.labels must be a list of 1 to {_MAX_LABELS} labels")
    parsed = [_label(lab, f"{where}.labels[{i}]") for i, lab in enumerate(labels)]
    seen: set[str] = set()
    for lab in parsed:
        if lab["id"] in seen:
            raise _fail(where, f"label id {lab['id']!r} is given twice")
        seen.add(lab["id"])
    payload: dict[str, Any] = {"labels": parsed}
    if "instructions" in raw:
        payload["instructions"] = _text(raw["instructions"], where, "instructions", 8000)
    return payload


def _regions(raw: Any, labels: Mapping[str, str], where: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise _fail(where, "regions must map a region label to the yes/no label it outlines")
    out = {}
    for region, finding in raw.items():
        if labels.get(region) not in REGION_KINDS:
            raise _fail(where, f"{region!r} is not a region (box, freehand or mask) label of the schema")
        if labels.get(finding) != "boolean":
            raise _fail(where, f"{region!r} outlines {finding!r}, which is not a yes/no (boolean) label of the schema")
        out[str(region)] = str(finding)
    return out


def _selection(raw: Any, where: str) -> dict[str, list[str]]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise _fail(where, "selection must be a mapping")
    _unknown(raw, _SELECTION_KEYS, where)
    out = {}
    for key, values in raw.items():
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise _fail(where, f"selection.{key} must be a list of text values")
        out[key] = list(values)
    bad = sorted(set(out.get("series_kinds", [])) - set(ALL_KINDS))
    if bad:
        raise _fail(where, f"selection.series_kinds {bad} are not series kinds ({', '.join(ALL_KINDS)})")
    bad = sorted(set(out.get("quality_decisions", [])) - {str(d) for d in QualityDecision})
    if bad:
        raise _fail(where, f"selection.quality_decisions {bad} are not quality decisions")
    return out


def parse_schema(data: Any, where: str = "<schema>") -> LabelSchema:
    """A `LabelSchema` from the YAML's mapping; SchemaError naming `where` and the rule broken."""
    if not isinstance(data, Mapping):
        raise _fail(where, "a label schema file is a mapping (name, version, project_kind, schema, ...)")
    _unknown(data, _FILE_KEYS, where)
    for key in ("name", "version", "project_kind"):
        if key not in data:
            raise _fail(where, f"missing {key!r}")
    name = _text(data["name"], where, "name", 64, 2)
    if not _NAME.match(name):
        raise _fail(where, f"name {name!r} must be lower-case letters, digits and '_'")
    version = data["version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _fail(where, f"version must be a whole number >= 1, not {version!r}")
    kind = data["project_kind"]
    if kind not in PROJECT_KINDS:
        raise _fail(where, f"project_kind {kind!r} is not one of {list(PROJECT_KINDS)}")
    if "schema" in data:
        payload: dict[str, Any] | None = _payload(data["schema"], f"{where}: schema")
    elif kind == "labels":
        raise _fail(where, "a labels project needs a schema (labels to answer)")
    else:
        payload = None
    labels = {lab["id"]: lab["kind"] for lab in (payload or {}).get("labels", [])}
    return LabelSchema(name=name, version=version, project_kind=kind,
                       description=_text(data.get("description", ""), where, "description", 4000),
                       payload=payload, regions=_regions(data.get("regions"), labels, f"{where}: regions"),
                       selection=_selection(data.get("selection"), f"{where}: selection"), path=where)


def load_schema(name_or_path: str | Path, directory: Path | None = None) -> LabelSchema:
    """Load a schema by key (`chest_findings_v1`) from `directory` (the shipped schemas by default)
    or by path. The file's stem must be `<name>_v<version>`, so a key names one version for good."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = (directory or SCHEMAS_DIR) / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(available(directory)) or "none"
        raise SchemaError(f"no label schema {str(name_or_path)!r} (looked for {path}; known: {known})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SchemaError(f"{path}: not valid YAML ({exc})") from exc
    schema = parse_schema(data, str(path))
    if path.stem != schema.key:
        raise SchemaError(f"{path}: the file of {schema.name} version {schema.version} must be named "
                          f"{schema.key}.yaml (a key names one version for good)")
    return schema


def available(directory: Path | None = None) -> list[str]:
    """The schema keys shipped (or in `directory`), sorted."""
    folder = directory or SCHEMAS_DIR
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


__all__ = ["LABEL_KINDS", "PROJECT_KINDS", "SCHEMAS_DIR", "LabelSchema", "SchemaError", "available", "load_schema",
           "parse_schema"]
