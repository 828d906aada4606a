"""The words of series classification: kinds, planes, dimensionality (values recorded in the catalog)."""
from __future__ import annotations

from enum import Enum


class SeriesKind(str, Enum):
    """What a series is, in the field's words (MR weighting or map, CT, projection radiography...)."""

    T1W = "T1W"
    T2W = "T2W"
    FLAIR = "FLAIR"
    PDW = "PDW"
    DWI = "DWI"
    ADC = "ADC"
    DCE = "DCE"
    SWI = "SWI"
    LOCALIZER = "LOCALIZER"
    OTHER_MR = "OTHER_MR"
    CT = "CT"
    CT_LOCALIZER = "CT_LOCALIZER"
    CR = "CR"
    DX = "DX"
    MG = "MG"
    US = "US"
    SC = "SC"
    PHOTO = "PHOTO"  # a camera picture (PNG/JPEG: wound, dermatology, specimen)
    SCREENSHOT = "SCREENSHOT"  # a captured screen (PNG/JPEG: viewer or report capture)
    VOLUME = "VOLUME"  # a volume whose acquisition nothing says (NIfTI without description or sidecar)
    OTHER = "OTHER"

    def __str__(self) -> str:  # plain value in f-strings and JSON
        return self.value


#: Kinds that are MR series (the header-feature model predicts among these).
MR_KINDS: tuple[SeriesKind, ...] = (
    SeriesKind.T1W, SeriesKind.T2W, SeriesKind.FLAIR, SeriesKind.PDW, SeriesKind.DWI, SeriesKind.ADC,
    SeriesKind.DCE, SeriesKind.SWI, SeriesKind.LOCALIZER, SeriesKind.OTHER_MR,
)

#: Structural brain MR kinds on which MRIQC's anatomical metrics (tissue classes) make sense.
STRUCTURAL_MR_KINDS: tuple[SeriesKind, ...] = (
    SeriesKind.T1W, SeriesKind.T2W, SeriesKind.FLAIR, SeriesKind.PDW, SeriesKind.SWI,
)

ALL_KINDS: tuple[str, ...] = tuple(k.value for k in SeriesKind)

PLANES: tuple[str, ...] = ("axial", "sagittal", "coronal", "oblique")
DIMENSIONS: tuple[str, ...] = ("2D", "3D", "4D")
