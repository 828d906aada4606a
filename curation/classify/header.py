"""The header facts of one series that classification reasons about, read without pixel data.

Why a summary object: rules, attributes, the header-feature model and the CLI all look at the same
few dozen values (aggregated over the files of the series: unique b-values, temporal positions,
orientations), so they are read once, as plain Python values, from `stop_before_pixels` headers.
"""
from __future__ import annotations

import os
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset

#: Private b-value tags: (group, element offset, private creator, vendor).
_PRIVATE_BVALUE = (
    (0x0019, 0x0C, "SIEMENS MR HEADER"),
    (0x0043, 0x39, "GEMS_PARM_01"),
    (0x2001, 0x03, "Philips Imaging DD 001"),
)


@dataclass
class SeriesHeader:
    """Plain values summarising the headers of a series (one entry per concept, never PHI)."""

    n_files: int = 0
    n_frames: int = 0
    modality: str = ""
    sop_class_uid: str = ""
    manufacturer: str = ""
    series_description: str = ""
    protocol_name: str = ""
    sequence_name: str = ""
    study_description: str = ""
    body_part_examined: str = ""
    image_type: list[str] = field(default_factory=list)  # union over files, upper-case, in order met
    scanning_sequence: list[str] = field(default_factory=list)
    sequence_variant: list[str] = field(default_factory=list)
    scan_options: list[str] = field(default_factory=list)
    mr_acquisition_type: str = ""
    repetition_time: float | None = None
    echo_time: float | None = None
    inversion_time: float | None = None
    flip_angle: float | None = None
    echo_train_length: float | None = None
    magnetic_field_strength: float | None = None
    b_values: list[float] = field(default_factory=list)
    diffusion_directionality: list[str] = field(default_factory=list)
    contrast_agent: str = ""
    temporal_positions: int = 1
    n_positions: int = 0
    orientations: list[list[float]] = field(default_factory=list)  # unique ImageOrientationPatient
    photometric_interpretation: str = ""
    samples_per_pixel: int = 1
    rows: int = 0
    columns: int = 0
    pixel_spacing: list[float] = field(default_factory=list)
    slice_thickness: float | None = None
    derived: bool = False
    units: str = ""  # RescaleType / Units, e.g. HU
    exposure_index: float | None = None
    view_position: str = ""  # projection radiography: PA, AP, LAT, LL, RL...
    source: str = "dicom"  # dicom | nifti
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SeriesHeader":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


def _str(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, (list, tuple, pydicom.multival.MultiValue)):
        return "\\".join(str(x) for x in v)
    return str(v).strip()


def _tokens(v: Any) -> list[str]:
    if v is None or v == "":
        return []
    vals = v if isinstance(v, (list, tuple, pydicom.multival.MultiValue)) else str(v).split("\\")
    return [str(x).strip().upper() for x in vals if str(x).strip()]


def _float(v: Any) -> float | None:
    if v is None or v == "":
        return None
    try:
        if isinstance(v, (list, tuple, pydicom.multival.MultiValue)):
            v = v[0]
        return float(v)
    except (TypeError, ValueError, IndexError):
        return None


def _median(vals: list[float]) -> float | None:
    vals = [v for v in vals if v is not None]
    return float(statistics.median(vals)) if vals else None


def _private_b_value(ds: Dataset) -> float | None:
    groups = {tag >> 16 for tag in ds.keys()}  # private_block scans the dataset: only where the group is
    for group, offset, creator in _PRIVATE_BVALUE:
        if group not in groups:
            continue
        try:
            block = ds.private_block(group, creator)
            elem = block[offset]
        except (KeyError, ValueError):
            continue
        v = _float(elem.value)
        if v is None:
            continue
        if group == 0x0043 and v >= 1e9:  # GE adds 10^9 to flag the b-value field
            v -= 1e9
        return v
    return None


def _frame_groups(ds: Dataset) -> list[Dataset]:
    """Functional group items of an enhanced multi-frame object (shared first, then per frame)."""
    out: list[Dataset] = []
    for kw in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        seq = ds.get(kw)
        if seq:
            out.extend(seq)
    return out


def summarize(datasets: Sequence[Dataset]) -> SeriesHeader:
    """Summarise the headers of the files of one series (any order)."""
    h = SeriesHeader(n_files=len(datasets))
    if not datasets:
        return h
    first = datasets[0]
    h.modality = _str(first.get("Modality")).upper()
    h.sop_class_uid = _str(first.get("SOPClassUID"))
    h.manufacturer = _str(first.get("Manufacturer"))
    h.series_description = _str(first.get("SeriesDescription"))
    h.protocol_name = _str(first.get("ProtocolName"))
    h.sequence_name = _str(first.get("SequenceName") or first.get("PulseSequenceName"))
    h.study_description = _str(first.get("StudyDescription"))
    h.body_part_examined = _str(first.get("BodyPartExamined")).upper()
    h.scanning_sequence = _tokens(first.get("ScanningSequence"))
    h.sequence_variant = _tokens(first.get("SequenceVariant"))
    h.scan_options = _tokens(first.get("ScanOptions"))
    h.mr_acquisition_type = _str(first.get("MRAcquisitionType")).upper()
    h.photometric_interpretation = _str(first.get("PhotometricInterpretation")).upper()
    h.samples_per_pixel = int(_float(first.get("SamplesPerPixel")) or 1)
    h.rows = int(_float(first.get("Rows")) or 0)
    h.columns = int(_float(first.get("Columns")) or 0)
    h.pixel_spacing = [float(x) for x in (first.get("PixelSpacing") or first.get("ImagerPixelSpacing") or [])]
    h.slice_thickness = _float(first.get("SliceThickness"))
    h.units = _str(first.get("RescaleType") or first.get("Units")).upper()
    h.exposure_index = _float(first.get("ExposureIndex"))
    h.view_position = _str(first.get("ViewPosition")).upper()
    h.magnetic_field_strength = _float(first.get("MagneticFieldStrength"))

    image_type: list[str] = []
    tr, te, ti, fa, etl = [], [], [], [], []
    bvals: set[float] = set()
    directionality: list[str] = []
    temporal: set[str] = set()
    n_temporal_declared = 1
    positions: set[tuple[float, ...]] = set()
    orientations: list[list[float]] = []
    frames = 0
    agent = ""
    for ds in datasets:
        for t in _tokens(ds.get("ImageType")):
            if t not in image_type:
                image_type.append(t)
        tr.append(_float(ds.get("RepetitionTime")))
        te.append(_float(ds.get("EchoTime")))
        ti.append(_float(ds.get("InversionTime")))
        fa.append(_float(ds.get("FlipAngle")))
        etl.append(_float(ds.get("EchoTrainLength")))
        nf = int(_float(ds.get("NumberOfFrames")) or 1)
        frames += nf
        b = _float(ds.get("DiffusionBValue"))
        if b is None:
            b = _private_b_value(ds)
        groups = _frame_groups(ds) if nf > 1 else []
        for g in groups:
            for item in g.get("MRDiffusionSequence") or []:
                fb = _float(item.get("DiffusionBValue"))
                if fb is not None:
                    bvals.add(round(fb, 1))
            for item in g.get("PlaneOrientationSequence") or []:
                iop = [round(float(x), 3) for x in item.get("ImageOrientationPatient") or []]
                if len(iop) == 6 and iop not in orientations:
                    orientations.append(iop)
            for item in g.get("PlanePositionSequence") or []:
                ipp = item.get("ImagePositionPatient")
                if ipp:
                    positions.add(tuple(round(float(x), 2) for x in ipp))
            for item in g.get("FrameContentSequence") or []:
                tp = item.get("TemporalPositionIndex")
                if tp is not None:
                    temporal.add(str(tp))
        if b is not None:
            bvals.add(round(b, 1))
        d = _str(ds.get("DiffusionDirectionality")).upper()
        if d and d not in directionality:
            directionality.append(d)
        tp = ds.get("TemporalPositionIdentifier")
        if tp is not None and tp != "":
            temporal.add(str(tp))
        n_temporal_declared = max(n_temporal_declared, int(_float(ds.get("NumberOfTemporalPositions")) or 1))
        ipp = ds.get("ImagePositionPatient")
        if ipp:
            positions.add(tuple(round(float(x), 2) for x in ipp))
        iop = ds.get("ImageOrientationPatient")
        if iop and len(iop) == 6:
            r = [round(float(x), 3) for x in iop]
            if r not in orientations:
                orientations.append(r)
        if not agent:
            agent = _str(ds.get("ContrastBolusAgent"))
            if not agent:
                seq = ds.get("ContrastBolusAgentSequence")
                if seq:
                    agent = _str(seq[0].get("CodeMeaning")) or "yes"
    h.image_type = image_type
    h.derived = bool(image_type) and image_type[0] == "DERIVED"
    h.repetition_time = _median(tr)
    h.echo_time = _median(te)
    h.inversion_time = _median(ti)
    h.flip_angle = _median(fa)
    h.echo_train_length = _median(etl)
    h.b_values = sorted(bvals)
    h.diffusion_directionality = directionality
    h.contrast_agent = agent
    h.temporal_positions = max(len(temporal), n_temporal_declared, 1)
    h.n_positions = len(positions)
    h.orientations = orientations
    h.n_frames = frames
    return h


def series_files(series: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """The files of a series given as a folder (non-recursive, hidden files skipped) or a list of paths."""
    if isinstance(series, (str, os.PathLike)):
        p = Path(series)
        if p.is_dir():
            return sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
        return [p]
    return [Path(s) for s in series]


def read_headers(paths: Iterable[str | os.PathLike]) -> list[Dataset]:
    """Headers of the DICOM files among `paths` (pixel data not read; unreadable files skipped)."""
    out = []
    for p in paths:
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True)
        except (pydicom.errors.InvalidDicomError, OSError, ValueError, EOFError):
            continue
        if "SOPClassUID" in ds or "Modality" in ds:
            out.append(ds)
    return out


def read_series_header(series: str | os.PathLike | Iterable[str | os.PathLike]) -> SeriesHeader:
    """Summary of the headers of a DICOM series (folder or list of files)."""
    return summarize(read_headers(series_files(series)))
