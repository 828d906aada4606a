"""Series attributes that follow from the geometry and a few tags: plane, 2D/3D/4D, contrast, derived,
body part. Each returns the value and the evidence for it, so a curator can see why."""
from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from curation.classify.header import SeriesHeader
from curation.vocabulary import Modality, SeriesKind

#: Angle (degrees) between the slice normal and the nearest patient axis beyond which a plane is oblique.
OBLIQUE_DEGREES = 30.0

_AXIS_PLANE = {0: "sagittal", 1: "coronal", 2: "axial"}  # normal along x (L), y (P), z (S)
#: ViewPosition (DICOM defined terms) -> plane of the detector.
_VIEW_PLANE = {"PA": "coronal", "AP": "coronal", "LAT": "sagittal", "LL": "sagittal", "RL": "sagittal",
               "RLD": "coronal", "LLD": "coronal"}


def plane_of_orientation(iop: list[float], oblique_degrees: float = OBLIQUE_DEGREES) -> str:
    """Plane of one ImageOrientationPatient: the patient axis closest to the slice normal."""
    row = np.asarray(iop[:3], dtype=float)
    col = np.asarray(iop[3:6], dtype=float)
    n = np.cross(row, col)
    norm = float(np.linalg.norm(n))
    if norm == 0.0:
        return "oblique"
    n = np.abs(n / norm)
    axis = int(np.argmax(n))
    angle = math.degrees(math.acos(min(1.0, float(n[axis]))))
    return "oblique" if angle > oblique_degrees else _AXIS_PLANE[axis]


def plane_of_affine(affine: np.ndarray, oblique_degrees: float = OBLIQUE_DEGREES) -> str:
    """Plane of a NIfTI volume: its slices are along the third voxel axis (RAS affine)."""
    n = np.asarray(affine, dtype=float)[:3, 2]
    norm = float(np.linalg.norm(n))
    if norm == 0.0:
        return "oblique"
    n = np.abs(n / norm)
    axis = int(np.argmax(n))
    angle = math.degrees(math.acos(min(1.0, float(n[axis]))))
    return "oblique" if angle > oblique_degrees else _AXIS_PLANE[axis]


def plane(h: SeriesHeader, oblique_degrees: float = OBLIQUE_DEGREES) -> tuple[str | None, list[str]]:
    """(plane, planes met): None when the series mixes planes (a 3-plane localizer) or has no geometry."""
    planes: list[str] = []
    for iop in h.orientations:
        p = plane_of_orientation(iop, oblique_degrees)
        if p not in planes:
            planes.append(p)
    if len(planes) == 1:
        return planes[0], planes
    if not planes and h.view_position:
        # A projection radiograph has no slice; its view says which plane the detector lies in.
        view = _VIEW_PLANE.get(h.view_position)
        if view:
            return view, [view]
    return None, planes


def dimensions(h: SeriesHeader) -> tuple[str, str]:
    """('2D'|'3D'|'4D', why): 4D when volumes repeat over time or b-value, else the acquisition type."""
    if h.temporal_positions > 1:
        return "4D", f"{h.temporal_positions} temporal positions"
    if len(h.b_values) > 1:
        return "4D", f"{len(h.b_values)} b-values"
    images = max(h.n_frames, h.n_files)
    if "MOSAIC" in h.image_type and h.n_files > 1:
        return "4D", f"{h.n_files} mosaic volumes"
    if h.n_positions and images >= 2 * h.n_positions and h.n_positions > 1:
        return "4D", f"{images} images at {h.n_positions} positions"
    if h.mr_acquisition_type in ("2D", "3D"):
        return h.mr_acquisition_type, "MRAcquisitionType"
    if h.source == "nifti":
        return ("3D" if h.n_positions > 1 else "2D"), "volume shape"
    if h.modality == Modality.US and h.n_frames > 1:
        return "2D", f"cine of {h.n_frames} frames"
    if h.n_positions > 1 or (h.n_frames > 1 and h.modality not in (Modality.US, Modality.XA, Modality.RF)):
        return "3D", f"{max(h.n_positions, h.n_frames)} slice positions"
    return "2D", "single image"


_CONTRAST_WORDS = re.compile(
    r"(\+\s*c\b|\bc\s*\+|\bpost\b|\bpostcontrast\b|\bgd\b|\bgad\w*|\bkm\b|\bce\b|\bcontrast\b|\bw\s*/\s*c\b|\bdyn\w*\b|\bdce\b)",
    re.IGNORECASE,
)
_NO_CONTRAST = {"", "NONE", "NO", "N", "NA", "N/A", "0"}


def contrast(h: SeriesHeader, kind: str | None = None) -> tuple[bool, str]:
    """(contrast-enhanced?, why): the ContrastBolusAgent first, then the series naming."""
    if h.contrast_agent and h.contrast_agent.strip().upper() not in _NO_CONTRAST:
        return True, "ContrastBolusAgent present"
    if kind == SeriesKind.DCE:
        return True, "dynamic contrast-enhanced series"
    for text in (h.series_description, h.protocol_name):
        text = (text or "").replace("_", " ")
        m = _CONTRAST_WORDS.search(text)
        if m and not re.search(r"\b(pre|without|w/o|wo|nc|native)\b", text, re.IGNORECASE):
            return True, f"naming: {m.group(0).strip()!r}"
    return False, "no agent recorded"


_BODY_WORDS: list[tuple[str, str]] = [
    (r"\b(brain|head|neuro|skull|cranial|cerebr\w*)\b", "HEAD"),
    (r"\b(chest|thorax|thoracic|lung\w*|cxr)\b", "CHEST"),
    (r"\b(abdomen|abd|liver|abdominal)\b", "ABDOMEN"),
    (r"\b(pelvis|pelvic)\b", "PELVIS"),
    (r"\b(prostate)\b", "PROSTATE"),
    (r"\b(breast|mammo\w*)\b", "BREAST"),
    (r"\b(knee)\b", "KNEE"),
    (r"\b(spine|spinal|lumbar|cervical|thoracic spine|l-spine|c-spine)\b", "SPINE"),
]


def body_part(h: SeriesHeader) -> tuple[str | None, str]:
    """(BodyPartExamined as written, else a region inferred from the descriptions, why)."""
    if h.body_part_examined:
        return h.body_part_examined, "BodyPartExamined"
    text = " ".join((h.series_description, h.protocol_name, h.study_description)).replace("_", " ")
    for pattern, part in _BODY_WORDS:
        if re.search(pattern, text, re.IGNORECASE):
            return part, "descriptions"
    return None, "not recorded"


def attributes(h: SeriesHeader, kind: str | None = None, oblique_degrees: float = OBLIQUE_DEGREES) -> dict[str, Any]:
    """All attributes with their evidence, as plain values."""
    pl, planes = plane(h, oblique_degrees)
    dims, dims_why = dimensions(h)
    ce, ce_why = contrast(h, kind)
    bp, bp_why = body_part(h)
    return {
        "plane": pl,
        "planes": planes,
        "dimensions": dims,
        "contrast": ce,
        "derived": h.derived,
        "body_part": bp,
        "evidence": {"dimensions": dims_why, "contrast": ce_why, "body_part": bp_why,
                     "derived": "ImageType[0] = DERIVED" if h.derived else "ImageType[0] not DERIVED"},
    }
