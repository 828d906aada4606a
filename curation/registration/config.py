"""Hyperparameters of registration: shipped defaults (include/registration/default.yaml) merged
with per-call overrides (CLI `--set`, a YAML file, the DAG's Params dict).

Overrides are checked against the defaults so a typo ("coregister.tranform") fails loudly instead
of silently running with the default.
"""
from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from curation.settings import settings

#: Where the shipped defaults live; CURATE_REGISTRATION_CONFIG points elsewhere if set.
DEFAULT_CONFIG_PATH = Path(__file__).resolve().parents[2] / "include" / "registration" / "default.yaml"

#: Allowed values of the enumerated settings.
CHOICES: dict[str, tuple[str, ...]] = {
    "backend": ("simpleitk", "dipy"),
    "transform": ("rigid", "affine"),
    "metric": ("mattes", "correlation"),
    "sampling": ("regular", "random", "none"),
    "initializer": ("identity", "geometry", "moments"),
    "mask": ("otsu", "none"),
    "interpolator": ("linear", "bspline", "nearest"),
}


@lru_cache(maxsize=4)
def _read_defaults(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return data


def default_config() -> dict[str, Any]:
    """A fresh copy of the shipped defaults."""
    path = str(settings().registration_config or DEFAULT_CONFIG_PATH)
    return copy.deepcopy(_read_defaults(path))


def _merge(base: dict[str, Any], over: Mapping[str, Any], where: str) -> None:
    for key, value in over.items():
        if key not in base:
            raise ValueError(f"unknown registration setting {where}{key!r}; known: {sorted(base)}")
        if isinstance(base[key], dict):
            if not isinstance(value, Mapping):
                raise ValueError(f"registration setting {where}{key} must be a mapping")
            _merge(base[key], value, f"{where}{key}.")
        else:
            base[key] = copy.deepcopy(value)


def parse_assignment(text: str) -> dict[str, Any]:
    """`a.b=value` (value parsed as YAML: numbers, lists, booleans) into {"a": {"b": value}}."""
    if "=" not in text:
        raise ValueError(f"expected KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    value = yaml.safe_load(raw) if raw.strip() else ""
    out: dict[str, Any] = {}
    node = out
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ValueError(f"empty key in {text!r}")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return out


def load_config(*overrides: Mapping[str, Any] | str | os.PathLike[str] | None) -> dict[str, Any]:
    """Defaults, then each override in turn (a mapping, or the path of a YAML/JSON file)."""
    cfg = default_config()
    for over in overrides:
        if over is None:
            continue
        if not isinstance(over, Mapping):
            with open(over, encoding="utf-8") as fh:
                over = yaml.safe_load(fh) or {}
            if not isinstance(over, Mapping):
                raise ValueError("a registration config file must hold a mapping")
        _merge(cfg, over, "")
    validate(cfg)
    return cfg


def validate(cfg: Mapping[str, Any]) -> None:
    """Raise ValueError naming the first bad setting."""
    for section in ("coregister", "motion_correction"):
        params = cfg[section]
        for key, allowed in CHOICES.items():
            if key in params and params[key] not in allowed:
                raise ValueError(f"{section}.{key} = {params[key]!r}; choose one of {list(allowed)}")
        n = len(params["shrink_factors"])
        for key in ("smoothing_sigmas_mm", "sampling_percentage", "dense_below_voxels"):
            if key == "dense_below_voxels" and isinstance(params[key], (int, float)):
                continue  # one threshold for every level
            if not isinstance(params[key], (list, tuple)) or len(params[key]) != n:
                raise ValueError(f"{section}.{key} needs {n} values (one per level), got {params[key]!r}")
        if any(int(f) < 1 for f in params["shrink_factors"]):
            raise ValueError(f"{section}.shrink_factors must be >= 1")
        if any(not 0 < float(p) <= 1 for p in params["sampling_percentage"]):
            raise ValueError(f"{section}.sampling_percentage values must be in (0, 1]")
    if cfg["output"]["interpolator"] not in CHOICES["interpolator"]:
        raise ValueError(f"output.interpolator must be one of {list(CHOICES['interpolator'])}")


__all__ = ["CHOICES", "DEFAULT_CONFIG_PATH", "default_config", "load_config", "parse_assignment", "validate"]
