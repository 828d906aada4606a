"""Numeric header features for the series-kind model: acquisition physics and coded header fields only.

Why no text: the model exists for series whose SeriesDescription/ProtocolName is blank (de-identified
away) or misleading, so it must decide from what the scanner wrote about the acquisition itself.
"""
from __future__ import annotations

import math

import numpy as np

from curation.classify import attributes as attrs
from curation.classify import physics
from curation.classify.header import SeriesHeader

_SEQ = ("SE", "GR", "IR", "EP", "RM")
_VAR = ("SK", "SS", "SP", "MP", "OSP", "TRSS", "NONE")
_OPTS = ("FS", "IR", "PFP", "SAT1", "FC")
_IMAGE_TYPE = ("DIFFUSION", "ADC", "TRACEW", "LOCALIZER", "SWI", "MNIP", "P", "PHASE", "MOSAIC", "MPR",
               "PROJECTION IMAGE", "SECONDARY", "M_IR", "M_SE", "M_FFE", "R", "T1", "T2")

FEATURE_NAMES: tuple[str, ...] = (
    "log_tr", "has_tr", "log_te", "has_te", "log_ti", "has_ti", "flip", "has_flip", "log_etl",
    *(f"seq_{s}" for s in _SEQ),
    *(f"var_{v}" for v in _VAR),
    *(f"opt_{o}" for o in _OPTS),
    "acq_3d", "acq_2d",
    "b_max", "log_n_b", "has_b",
    "derived",
    *(f"it_{t.replace(' ', '_')}" for t in _IMAGE_TYPE),
    "contrast_agent", "log_temporal", "multi_plane", "log_files", "log_positions", "images_per_position",
    "field_strength", "log_flip_over_ernst",
)


def _log(v: float | None) -> float:
    return math.log1p(max(v, 0.0)) if v is not None else 0.0


def header_features(h: SeriesHeader) -> np.ndarray:
    """Feature vector (float32, len(FEATURE_NAMES)) of one series header."""
    seq, var, opts, it = set(h.scanning_sequence), set(h.sequence_variant), set(h.scan_options), set(h.image_type)
    images = max(h.n_frames, h.n_files, 1)
    f: list[float] = [
        _log(h.repetition_time), float(h.repetition_time is not None),
        _log(h.echo_time), float(h.echo_time is not None),
        _log(h.inversion_time), float(h.inversion_time is not None),
        (h.flip_angle or 0.0) / 90.0, float(h.flip_angle is not None),
        _log(h.echo_train_length),
        *(float(s in seq) for s in _SEQ),
        *(float(v in var) for v in _VAR),
        *(float(o in opts) for o in _OPTS),
        float(h.mr_acquisition_type == "3D"), float(h.mr_acquisition_type == "2D"),
        (max(h.b_values) / 1000.0) if h.b_values else 0.0, math.log1p(len(h.b_values)), float(bool(h.b_values)),
        float(h.derived),
        *(float(t in it) for t in _IMAGE_TYPE),
        float(attrs.contrast(h)[1] == "ContrastBolusAgent present"),
        math.log(max(h.temporal_positions, 1)),
        float(len(attrs.plane(h)[1]) > 1),
        math.log(max(h.n_files, 1)),
        math.log(max(h.n_positions, 1)),
        images / max(h.n_positions, 1),
        (h.magnetic_field_strength or 0.0) / 3.0,
        math.log(ratio) if (ratio := physics.flip_over_ernst(h)) else 0.0,
    ]
    return np.asarray(f, dtype=np.float32)


def has_physics(h: SeriesHeader) -> bool:
    """Whether the header says enough about the acquisition for the model to be asked at all."""
    return h.repetition_time is not None or h.echo_time is not None or bool(h.scanning_sequence)
