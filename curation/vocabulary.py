"""The platform's words: every value the stages record in the catalog, the store or a report, spelled once.

A series kind, a quality decision, a stage status, a quarantine reason code, a zone: each is a
``StrEnum`` member whose value is exactly the string written today, so members compare equal to the
strings already in a catalog, serialise to them in JSON, SQLAlchemy and f-strings, and hash like them.
(``yaml.safe_dump`` refuses enum members: pass ``str(member)``.) Code outside this module names these
words through the enums; tests/platform/test_vocabulary.py fails on a stray literal.
"""

from __future__ import annotations

from enum import StrEnum


class SeriesKind(StrEnum):
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


#: Kinds that are MR series (the header-feature model predicts among these).
MR_KINDS: tuple[SeriesKind, ...] = (
    SeriesKind.T1W, SeriesKind.T2W, SeriesKind.FLAIR, SeriesKind.PDW, SeriesKind.DWI, SeriesKind.ADC,
    SeriesKind.DCE, SeriesKind.SWI, SeriesKind.LOCALIZER, SeriesKind.OTHER_MR,
)

#: Structural brain MR kinds on which MRIQC's anatomical metrics (tissue classes) make sense.
STRUCTURAL_MR_KINDS: tuple[SeriesKind, ...] = (
    SeriesKind.T1W, SeriesKind.T2W, SeriesKind.FLAIR, SeriesKind.PDW, SeriesKind.SWI,
)

#: Projection radiography: one 2D image measured in the image plane (no slices, no volume).
PROJECTION_KINDS: tuple[SeriesKind, ...] = (SeriesKind.CR, SeriesKind.DX, SeriesKind.MG)

#: Localizers: planning images nobody curates as data.
LOCALIZER_KINDS: tuple[SeriesKind, ...] = (SeriesKind.LOCALIZER, SeriesKind.CT_LOCALIZER)

ALL_KINDS: tuple[str, ...] = tuple(k.value for k in SeriesKind)

PLANES: tuple[str, ...] = ("axial", "sagittal", "coronal", "oblique")
DIMENSIONS: tuple[str, ...] = ("2D", "3D", "4D")


class Modality(StrEnum):
    """DICOM Modality (0008,0060) values the platform reads, writes or tells apart (PS3.3 C.7.3.1.1.1)."""

    MR = "MR"
    CT = "CT"
    CR = "CR"
    DX = "DX"
    MG = "MG"
    US = "US"
    SC = "SC"
    OT = "OT"  # other: what a non-DICOM file is catalogued under
    XA = "XA"
    RF = "RF"
    XC = "XC"
    ES = "ES"


class QualityDecision(StrEnum):
    """The quality stage's verdict on a series, in increasing severity."""

    APPROVE = "approve"
    REVIEW = "review"
    EXCLUDE = "exclude"


class ReviewDecision(StrEnum):
    """A person's quality decision on a series in a quality-review round (PRIMAGE's three outcomes,
    the annotation service's words): approve and exclude as the model's, or quarantine for follow-up."""

    APPROVE = QualityDecision.APPROVE.value
    EXCLUDE = QualityDecision.EXCLUDE.value
    QUARANTINE = "quarantine"


#: Severity order of the decisions (the worst hit wins).
DECISION_SEVERITY: dict[QualityDecision, int] = {
    QualityDecision.APPROVE: 0, QualityDecision.REVIEW: 1, QualityDecision.EXCLUDE: 2,
}


class StageStatus(StrEnum):
    """Status of one stage on one subject, as recorded in the catalog's stage results."""

    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"
    REVIEW = "review"  # done, but a person should look (low-confidence kind, quality "review")
    EXCLUDED = "excluded"  # quality decided "exclude"
    QUARANTINED = "quarantined"
    PARTIAL = "partial"  # de-identification wrote some instances and quarantined others


#: The stage status each quality decision is recorded as.
STATUS_OF_DECISION: dict[QualityDecision, StageStatus] = {
    QualityDecision.APPROVE: StageStatus.OK,
    QualityDecision.REVIEW: StageStatus.REVIEW,
    QualityDecision.EXCLUDE: StageStatus.EXCLUDED,
}


class FileStatus(StrEnum):
    """What happened to one file: at ingest (ok | quarantine) and at de-identification (written,
    unchanged, quarantined; the values of deid.engine.FileResult.status)."""

    OK = "ok"
    QUARANTINE = "quarantine"
    WRITTEN = "written"
    UNCHANGED = "unchanged"
    QUARANTINED = "quarantined"


class QuarantineReason(StrEnum):
    """Machine-readable ``reason_code`` of a quarantined file, as written to the catalog.

    The de-identification codes are written by the ``deid`` library (which cannot import curation)
    and recorded by the deid stage; their values are listed here so the catalog's words are in one place.
    """

    # ingest: reading a source (curation.ingest.sources)
    READ_ERROR = "read_error"
    LINK = "link"
    NOT_REGULAR_FILE = "not_regular_file"
    ARCHIVE_LINK = "archive_link"
    ARCHIVE_PATH_TRAVERSAL = "archive_path_traversal"
    ARCHIVE_DUPLICATE_ENTRY = "archive_duplicate_entry"
    ARCHIVE_ENTRY_CORRUPT = "archive_entry_corrupt"
    TOO_LARGE = "too_large"
    UNSAFE_KEY = "unsafe_key"
    DOWNLOAD_FAILED = "download_failed"
    # ingest: inspecting a file (curation.ingest.inspect, curation.ingest.pipeline)
    EMPTY = "empty"
    NOT_DICOM = "not_dicom"
    TRUNCATED = "truncated"
    CORRUPT = "corrupt"
    CORRUPT_IMAGE = "corrupt_image"
    MISSING_ATTRIBUTE = "missing_attribute"
    UNSUPPORTED_TRANSFER_SYNTAX = "unsupported_transfer_syntax"
    PIXEL_DECODE_FAILED = "pixel_decode_failed"
    CONFLICTING_DUPLICATE = "conflicting_duplicate"
    # de-identification (deid.engine, deid.raster, deid.nifti, deid.batch; the deid stage)
    MISSING_UID = "missing_uid"
    DEID_ERROR = "deid_error"
    PIXELS_UNHANDLED = "pixels_unhandled"
    PIXEL_TEXT_LEFT = "pixel_text_left"
    PHI_LEAK = "phi_leak"
    NOT_IMAGE = "not_image"
    UNREADABLE = "unreadable"
    CONFLICT = "conflict"
    QUARANTINED = "quarantined"  # the deid stage's fallback when a result carries no code


class Zone(StrEnum):
    """Storage zones. ``raw`` holds PHI; ``vault`` holds secrets (pseudonymisation key, re-id map)."""

    RAW = "raw"
    DEID = "deid"
    DERIVED = "derived"
    RELEASES = "releases"
    VAULT = "vault"
