"""Which series of a study the others are co-registered to (the "default static series").

Interim rule, from headers only, until the series classifier (issue 4) records its choice:
among 3D-capable volumes (not 4D, enough slices, MR or CT, not our own output), prefer in this
order
  1. T2-weighted (description says T2 and not FLAIR/T2*/SWI/diffusion; or, without a telling
     description, TE >= 60 ms, TR >= 1500 ms and no inversion),
  2. not derived (ImageType value 1 ORIGINAL),
  3. axial (slice normal within ~25 degrees of the head-foot axis),
  4. a 3D acquisition (MRAcquisitionType 3D),
  5. MR before CT,
  6. the smallest voxel, then the most slices (finest grid to resample onto).
So a study with a 3D axial T2 gets it (ProCancer-I's choice); one without still gets its best T2,
and a study without T2 falls back to its finest original axial volume.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from curation.vocabulary import Modality

_T2_WORDS = re.compile(r"t2", re.IGNORECASE)
_NOT_T2 = re.compile(r"flair|tirm|dark|fluid|t2\*|t2star|t2_star|swi|swan|hemo|gre|diff|dwi|adc|trace|ep2d|ir_|stir|"
                     r"t1|mprage|vibe|dyn|perf|loc|scout|survey|(^|[^a-z])pd", re.IGNORECASE)
#: Marks our own outputs (DerivationDescription prefix), never registered again.
OUR_DERIVATION_PREFIX = "curate:"


@dataclass
class SeriesInfo:
    """What the rule needs to know of a series (cheap: first header + counts)."""

    key: Any  # the caller's handle (a path, a catalog id)
    header: Dataset
    n_slices: int
    n_volumes: int
    voxel_mm3: float | None = None

    @property
    def modality(self) -> str:
        return str(self.header.get("Modality", ""))

    @property
    def derived(self) -> bool:
        it = list(self.header.get("ImageType", []) or [])
        return bool(it) and str(it[0]).upper() == "DERIVED"

    @property
    def ours(self) -> bool:
        return str(self.header.get("DerivationDescription", "")).startswith(OUR_DERIVATION_PREFIX)

    @property
    def axial(self) -> bool:
        iop = self.header.get("ImageOrientationPatient")
        if not iop or len(iop) != 6:
            return False
        n = np.cross(np.asarray(iop[:3], float), np.asarray(iop[3:], float))
        norm = float(np.linalg.norm(n))
        return norm > 0 and abs(n[2]) / norm > 0.9

    @property
    def acquisition_3d(self) -> bool:
        return str(self.header.get("MRAcquisitionType", "")).upper() == "3D"

    @property
    def t2_weighted(self) -> bool:
        if self.modality != Modality.MR:
            return False
        text = " ".join(str(self.header.get(k, "")) for k in ("SeriesDescription", "ProtocolName", "SequenceName"))
        if _NOT_T2.search(text):
            return False
        if _T2_WORDS.search(text):
            return True
        try:
            te = float(self.header.get("EchoTime", 0) or 0)
            tr = float(self.header.get("RepetitionTime", 0) or 0)
        except (TypeError, ValueError):
            return False
        ti = self.header.get("InversionTime")
        return te >= 60 and tr >= 1500 and not ti

    def rank(self) -> tuple:
        """Larger is better (compared lexicographically)."""
        voxel = self.voxel_mm3 if self.voxel_mm3 else _voxel_from_header(self.header)
        return (self.t2_weighted, not self.derived, self.axial, self.acquisition_3d, self.modality == Modality.MR,
                -round(voxel, 3), self.n_slices)


def _voxel_from_header(ds: Dataset) -> float:
    try:
        dy, dx = (float(v) for v in ds.PixelSpacing)
        dz = float(ds.get("SpacingBetweenSlices") or ds.get("SliceThickness") or 1.0)
        return dx * dy * dz
    except (AttributeError, TypeError, ValueError):
        return float("inf")


def eligible(info: SeriesInfo, min_slices: int = 8, modalities: Sequence[str] = (Modality.MR, Modality.CT)) -> bool:
    """A series worth registering at all (as fixed or moving)."""
    return info.modality in modalities and info.n_slices >= min_slices and not info.ours


def choose_static(series: Sequence[SeriesInfo], min_slices: int = 8,
                  modalities: Sequence[str] = (Modality.MR, Modality.CT)) -> SeriesInfo | None:
    """The default static series of a study by the rule above; None when no series qualifies."""
    candidates = [s for s in series if eligible(s, min_slices, modalities) and s.n_volumes == 1]
    if not candidates:
        return None
    return max(candidates, key=lambda s: s.rank())


def why(info: SeriesInfo) -> str:
    """One line saying which preferences the chosen series met (for logs and the stage result)."""
    parts = [("T2w" if info.t2_weighted else "not T2w"), ("original" if not info.derived else "derived"),
             ("axial" if info.axial else "not axial"), ("3D" if info.acquisition_3d else "2D"), info.modality]
    return ", ".join(parts)


__all__ = ["OUR_DERIVATION_PREFIX", "SeriesInfo", "choose_static", "eligible", "why"]
