"""Kind of a de-identified PNG/JPEG image or NIfTI volume, from its content (the deid zone keeps no
file name, no metadata and no sidecar to read a kind from).

PNG/JPEG, from the pixels:
- SCREENSHOT: most neighbouring pixels exactly equal (flat panels of a user interface, rendered
  graphics): ``flat`` >= 0.5, counted over pixels that are neither black nor white, so the black
  border of a radiograph or the masked boxes of de-identification do not count;
- PHOTO: colour (mean channel difference above a few grey levels) and not flat;
- DX (projection radiograph): grey and not flat. A grey camera picture also lands here: nothing in
  the pixels tells them apart without a learned model; the kind says what such files mostly are
  (chest and bone radiographs as research datasets ship them).
NIfTI: the header classifier (``classify_series``, which reads the cleaned ``descrip`` through
``curation.classify.nifti``); when it can only fall back, the kind is VOLUME.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from curation.classify.classifier import STAGE_VERSION, classify_series, is_nifti
from curation.vocabulary import SeriesKind

RULE = "content.raster"
FLAT_SCREENSHOT = 0.5
COLOUR_MIN = 3.0  # mean |R-G| + |G-B| in 8-bit levels below which an RGB image is grey


def raster_features(img: np.ndarray) -> dict[str, float]:
    """colour (mean channel difference, 8-bit levels), flat (share of horizontally equal
    neighbours among pixels neither black nor white), levels (distinct values), bits."""
    a = np.asarray(img)
    bits = 16 if a.dtype == np.uint16 else 8
    top = (1 << bits) - 1
    if a.ndim == 3:
        c = a[..., :3].astype(np.int32)
        colour = float(np.abs(c[..., 0] - c[..., 1]).mean() + np.abs(c[..., 1] - c[..., 2]).mean()) * (255.0 / top)
        grey = a[..., :3].max(axis=2)
        same = np.all(a[:, 1:, :3] == a[:, :-1, :3], axis=2)
        flat_px = a[..., :3].reshape(-1, 3)
        levels = len(np.unique(flat_px.view([("", flat_px.dtype)] * 3)))
    else:
        colour, grey = 0.0, a
        same = a[:, 1:] == a[:, :-1]
        levels = len(np.unique(a))
    inner = (grey[:, 1:] > 0) & (grey[:, 1:] < top)
    flat = float((same & inner).sum() / max(int(inner.sum()), 1))
    return {"colour": round(colour, 3), "flat": round(flat, 4), "levels": int(levels), "bits": bits}


def raster_kind(img: np.ndarray) -> tuple[str, float, str]:
    """(kind, confidence, detail) of one image's pixels."""
    return kind_from_features(raster_features(img))


def kind_from_features(f: dict[str, Any]) -> tuple[str, float, str]:
    """(kind, confidence, detail) from ``raster_features``: measured once, used for kind and evidence."""
    if f["flat"] >= FLAT_SCREENSHOT:
        return SeriesKind.SCREENSHOT, min(0.95, 0.6 + f["flat"] - FLAT_SCREENSHOT), f"{f['flat']:.0%} flat neighbours"
    if f["colour"] >= COLOUR_MIN:
        return SeriesKind.PHOTO, min(0.95, 0.6 + f["colour"] / 100.0), f"colour {f['colour']:.1f}, {f['flat']:.0%} flat"
    return (SeriesKind.DX, 0.7,
            f"grey ({f['bits']}-bit, {f['levels']} levels), {f['flat']:.0%} flat: projection radiograph")


def read_raster(path: str | os.PathLike) -> np.ndarray:
    """The pixels of a PNG/JPEG as written by deid.raster: grey (rows, cols) or RGB (rows, cols, 3)."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"{Path(path).name}: not a readable PNG/JPEG")
    if img.ndim == 3:
        img = cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB)
    return img


def classify_image(path: str | os.PathLike, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Classification record (same fields as ``classify_series``) of one PNG/JPEG or NIfTI file."""
    p = Path(path)
    if is_nifti(p):
        result = classify_series([p], config)
        if result.get("stage") == "fallback":
            result.update(kind=SeriesKind.VOLUME, confidence=0.6, rule="content.volume", stage="content",
                          detail=f"volume without acquisition description (header fallback was "
                                 f"{result['kind']} by {result['rule']})")
        return result
    features = raster_features(read_raster(p))
    kind, conf, detail = kind_from_features(features)
    return {"kind": kind, "confidence": round(conf, 4), "rule": RULE, "stage": "content", "detail": detail,
            "modality": None, "plane": None, "planes": [], "dimensions": "2D",
            "contrast": False, "derived": False, "body_part": None, "n_files": 1, "n_frames": 1,
            "evidence": {"features": features}, "stage_version": STAGE_VERSION}
