"""Building and writing the synthetic DICOM objects: the modules every real export carries, with PHI
planted where hospitals put it, pixel encoding in several transfer syntaxes, and the scan that
records where each identifying value ended up (for `phi_locations` in the ground truth).
"""
from __future__ import annotations

import datetime as dt
import io
import logging
import re
from dataclasses import dataclass, field

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from curation.vocabulary import Modality
from synth.identity import Patient, Person, Site, uid_from

#: Transfer syntaxes the site uses, by short name (the ground truth records the UID).
TRANSFER_SYNTAXES = {
    "explicit": ExplicitVRLittleEndian,
    "implicit": ImplicitVRLittleEndian,
    "rle": RLELossless,
    "jpegls": JPEGLSLossless,
    "j2k": JPEG2000Lossless,
}
_ENCODING_PLUGIN = {RLELossless: "pydicom", JPEGLSLossless: "pyjpegls", JPEG2000Lossless: "pylibjpeg"}

# openjpeg logs one INFO line per encoded tile; the progress lines are ours to print.
logging.getLogger("openjpeg").setLevel(logging.WARNING)

#: Our implementation identity in the file meta (fixed, so output bytes do not depend on pydicom's).
IMPLEMENTATION_CLASS_UID = "1.2.826.0.1.3680043.10.1465.1"
IMPLEMENTATION_VERSION = "CURATE_SYNTH_1"

#: Private creator of the hospital RIS block that copies identifiers into private tags.
RIS_PRIVATE_CREATOR = "SITE_RIS_EXPORT 1.0"
RIS_PRIVATE_GROUP = 0x0031


@dataclass(frozen=True)
class Vendor:
    """Scanner identity written in the equipment module."""

    key: str  # siemens | ge | philips
    manufacturer: str
    mr_model: str
    ct_model: str
    software: str
    field_strength: float
    serial: str
    station: str


VENDORS = {
    "siemens": Vendor("siemens", "SIEMENS", "MAGNETOM Skyra", "SOMATOM Definition AS+", "syngo MR E11",
                      3.0, "45123", "AWP45123"),
    "ge": Vendor("ge", "GE MEDICAL SYSTEMS", "SIGNA Artist", "Revolution CT", "27\\LX\\MR Software release:RX27.0_R02",
                 1.5, "0000007281MR2", "GEMR2OC0"),
    "philips": Vendor("philips", "Philips Medical Systems", "Ingenia", "Brilliance 64", "5.7.1\\5.7.1.2",
                      3.0, "42817", "PHILIPS-8K3M2Q"),
}


@dataclass
class StudyCtx:
    """Everything shared by the instances of one study (the study-level PHI included)."""

    patient: Patient
    site: Site
    vendor: Vendor
    modality: str
    index: int  # study number within the patient
    date: dt.date
    time: str  # HHMMSS
    description: str
    body_part: str
    referring: Person
    performing: Person
    operator: Person
    reader: Person
    seed: int
    name_in_description: bool = False
    uid: str = ""
    for_uid: str = ""
    accession: str = ""
    study_id: str = ""
    dir: str = ""
    series_count: int = 0

    def __post_init__(self) -> None:
        key = (self.seed, "study", self.patient.index, self.index)
        self.uid = uid_from(*key)
        self.for_uid = uid_from(*key, "for")
        n = int.from_bytes(uid_from(*key, "acc").encode()[-6:], "big") % 10_000_000
        self.accession = f"RA{self.date:%y}{n:07d}"
        self.study_id = f"{(self.patient.index * 37 + self.index * 11 + 1000) % 100000:05d}"
        self.dir = f"S{self.index + 1:04d}"

    @property
    def da(self) -> str:
        return self.date.strftime("%Y%m%d")

    @property
    def written_description(self) -> str:
        """StudyDescription as the RIS wrote it: some sites append the patient name (free-text PHI)."""
        if self.name_in_description:
            return f"{self.description} ({self.patient.family}, {self.patient.given})"
        return self.description


@dataclass
class SeriesCtx:
    """The series-level header values."""

    study: StudyCtx
    number: int
    modality: str
    description: str
    protocol: str
    time: str
    body_part: str
    uid: str = ""
    dir: str = ""
    extension: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.uid = uid_from(self.study.uid, "series", self.number)
        self.dir = f"SE{self.number:04d}"

    def sop_uid(self, instance: int) -> str:
        return uid_from(self.uid, "instance", instance)


def add_seconds(hhmmss: str, seconds: float) -> str:
    """A DICOM TM value `seconds` after `hhmmss` (same day, wraps before midnight)."""
    h, m, s = int(hhmmss[:2]), int(hhmmss[2:4]), int(hhmmss[4:6])
    total = min(h * 3600 + m * 60 + s + seconds, 86399.0)
    hh, rem = divmod(total, 3600)
    mm, ss = divmod(rem, 60)
    frac = ss - int(ss)
    out = f"{int(hh):02d}{int(mm):02d}{int(ss):02d}"
    return out + (f".{int(round(frac * 1e6)):06d}" if frac else "")


def base_dataset(series: SeriesCtx, sop_class: str, instance: int, seconds_into_series: float = 0.0) -> Dataset:
    """Patient, general study, series, equipment, SOP common modules, filled as a real export is,
    with the identifiers a hospital plants in free text, sequences and private tags."""
    st = series.study
    p = st.patient
    site = st.site
    v = st.vendor
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = series.sop_uid(instance)
    ds.StudyDate = st.da
    ds.SeriesDate = st.da
    ds.AcquisitionDate = st.da
    ds.ContentDate = st.da
    ds.InstanceCreationDate = st.da
    ds.StudyTime = st.time
    ds.SeriesTime = series.time
    acq_time = add_seconds(series.time, seconds_into_series)
    ds.AcquisitionTime = acq_time
    ds.ContentTime = acq_time
    ds.InstanceCreationTime = add_seconds(series.time, seconds_into_series + 2)
    ds.AcquisitionDateTime = st.da + acq_time
    ds.AccessionNumber = st.accession
    ds.Modality = series.modality
    ds.Manufacturer = v.manufacturer
    ds.InstitutionName = site.institution
    ds.InstitutionAddress = site.address
    ds.ReferringPhysicianName = st.referring.pn
    ds.ReferringPhysicianTelephoneNumbers = site.phone
    ds.StationName = v.station
    ds.StudyDescription = _lo(st.written_description)
    ds.SeriesDescription = series.description
    ds.InstitutionalDepartmentName = site.department
    ds.PhysiciansOfRecord = st.referring.pn
    ds.PerformingPhysicianName = st.performing.pn
    ds.NameOfPhysiciansReadingStudy = st.reader.pn
    ds.OperatorsName = st.operator.pn
    ds.ManufacturerModelName = v.ct_model if series.modality in (Modality.CT,) else v.mr_model
    ds.ReferencedPatientSequence = Sequence([_ref(
        "1.2.840.10008.3.1.2.1.1", uid_from(st.seed, "patient-record", p.index))])
    ds.ReferencedStudySequence = Sequence([_ref("1.2.840.10008.3.1.2.3.1", st.uid)])
    ds.PatientName = p.pn
    ds.PatientID = p.patient_id
    ds.IssuerOfPatientID = site.issuer
    ds.PatientBirthDate = p.birth_da
    ds.PatientSex = p.sex
    other = Dataset()
    other.PatientID = p.other_id
    other.IssuerOfPatientID = "STATE_HIE"
    other.TypeOfPatientID = "TEXT"
    ds.OtherPatientIDsSequence = Sequence([other])
    ds.PatientAge = f"{p.age_at(st.date):03d}Y"
    ds.PatientSize = f"{p.size_m:.2f}"
    ds.PatientWeight = f"{p.weight_kg:.1f}"
    ds.PatientAddress = p.address
    ds.PatientTelephoneNumbers = p.phone
    ds.AdditionalPatientHistory = (
        f"{p.given} {p.family}, born {p.birth_date:%Y-%m-%d}. Referred by Dr. {st.referring.family} "
        f"for {st.description.lower()}."
    )
    ds.PatientComments = f"Contact {p.phone}"
    ds.DeviceSerialNumber = v.serial
    ds.SoftwareVersions = v.software
    ds.StudyInstanceUID = st.uid
    ds.SeriesInstanceUID = series.uid
    ds.StudyID = st.study_id
    ds.SeriesNumber = series.number
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = instance
    ds.BodyPartExamined = series.body_part
    ds.ProtocolName = series.protocol
    req = Dataset()
    req.AccessionNumber = st.accession
    req.RequestedProcedureID = f"RP{st.study_id}"
    req.RequestedProcedureDescription = _lo(f"{p.pn} - {st.description}")
    req.ScheduledProcedureStepID = f"SPS{st.study_id}1"
    req.ScheduledProcedureStepDescription = st.description
    req.ScheduledProcedureStepStartDate = st.da
    req.RequestingPhysician = st.referring.pn
    ds.RequestAttributesSequence = Sequence([req])
    # identifiers first: LO holds 64 characters, so a long description is what gets cut
    ds.RequestedProcedureDescription = _lo(f"{p.given} {p.family} MRN {p.patient_id}: {st.description}")
    ds.PerformedProcedureStepStartDate = st.da
    ds.PerformedProcedureStepStartTime = st.time
    ds.PerformedProcedureStepID = f"PPS{st.study_id}"
    if instance == 1:
        ds.ImageComments = f"Pt {p.family}^{p.given} MRN {p.patient_id}"
    block = ds.private_block(RIS_PRIVATE_GROUP, RIS_PRIVATE_CREATOR, create=True)
    block.add_new(0x10, "LO", p.pn)
    block.add_new(0x11, "LO", p.patient_id)
    block.add_new(0x12, "DA", st.da)
    block.add_new(0x13, "LT", f"{p.family}, {p.given} / DOB {p.birth_date:%m/%d/%Y} / {p.address}")
    return ds


def _lo(text: str) -> str:
    """A value that fits LO (64 characters)."""
    return text[:64].rstrip()


def _ref(sop_class: str, sop_uid: str) -> Dataset:
    r = Dataset()
    r.ReferencedSOPClassUID = sop_class
    r.ReferencedSOPInstanceUID = sop_uid
    return r


def set_pixels(
    ds: Dataset,
    pixels: np.ndarray,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
) -> None:
    """Set the image pixel module from an array: (rows, cols), (frames, rows, cols) or with a trailing
    sample axis of 3 for colour. Signedness follows the dtype."""
    arr = np.ascontiguousarray(pixels)
    color = photometric in ("RGB", "YBR_FULL", "YBR_FULL_422")
    frames = arr.shape[0] if arr.ndim == (4 if color else 3) else 1
    rows, cols = (arr.shape[-3], arr.shape[-2]) if color else (arr.shape[-2], arr.shape[-1])
    ds.SamplesPerPixel = 3 if color else 1
    ds.PhotometricInterpretation = photometric
    if color:
        ds.PlanarConfiguration = 0
    ds.Rows = rows
    ds.Columns = cols
    bits = arr.dtype.itemsize * 8
    ds.BitsAllocated = bits
    ds.BitsStored = bits_stored or bits
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if arr.dtype.kind == "i" else 0
    if frames > 1 or arr.ndim == (4 if color else 3):
        ds.NumberOfFrames = frames
    ds.PixelData = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()


def encode(ds: Dataset, transfer_syntax: str) -> bytes:
    """The file bytes (preamble, file meta, dataset) in the given transfer syntax."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if "SOPInstanceUID" in ds:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    meta.SourceApplicationEntityTitle = "PACS_EXPORT"
    ds.file_meta = meta
    if transfer_syntax in _ENCODING_PLUGIN:
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        # pydicom would give a compressed copy a new SOPInstanceUID; ours are deterministic.
        ds.compress(transfer_syntax, encoding_plugin=_ENCODING_PLUGIN[transfer_syntax], generate_instance_uid=False)
    meta.TransferSyntaxUID = transfer_syntax
    buf = io.BytesIO()
    if "SOPInstanceUID" in ds:
        pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    else:  # a planted bad input: the standard forbids it, so write the meta as it is
        ds.preamble = bytes(128)
        meta.FileMetaInformationVersion = b"\x00\x01"
        pydicom.dcmwrite(buf, ds, enforce_file_format=False)
    return buf.getvalue()


def add_overlay(ds: Dataset, text: str, description: str, group: int = 0x6000) -> None:
    """A graphics overlay whose bitmap spells `text` and whose OverlayDescription holds `description`."""
    import cv2

    rows, cols = int(ds.Rows), int(ds.Columns)
    canvas = np.zeros((rows, cols), np.uint8)
    scale = max(0.3, cols / 700)
    cv2.putText(canvas, text, (4, max(12, rows // 12)), cv2.FONT_HERSHEY_SIMPLEX, scale, 1, 1, cv2.LINE_8)
    bits = np.packbits(canvas.ravel().astype(np.uint8), bitorder="little")
    if bits.size % 2:
        bits = np.append(bits, np.uint8(0))
    ds.add_new((group, 0x0010), "US", rows)  # not-vocabulary
    ds.add_new((group, 0x0011), "US", cols)  # not-vocabulary
    ds.add_new((group, 0x0022), "LO", _lo(description))
    ds.add_new((group, 0x0040), "CS", "G")
    ds.add_new((group, 0x0050), "SS", [1, 1])
    ds.add_new((group, 0x0100), "US", 1)  # not-vocabulary
    ds.add_new((group, 0x0102), "US", 0)  # not-vocabulary
    ds.add_new((group, 0x3000), "OW", bits.tobytes())


# ---------------------------------------------------------------------------------------------
# Where did the PHI go?


class PhiScanner:
    """Finds every planted identifying value in a dataset: names and IDs as case-insensitive
    substrings on word boundaries (free text included), dates/times/UIDs as exact values.

    Every DA/TM/DT value and every source UID (our 2.25 root) met on the way is itself
    identifying, so the scan adds it to the patient's `phi_values`.
    """

    def __init__(self, patient: Patient, text_values: list[str]) -> None:
        self.patient = patient
        self.text_values_source = list(text_values)
        self.text_values = sorted(set(text_values), key=lambda v: (-len(v), v))  # longest first, stable
        pattern = "|".join(re.escape(v) for v in self.text_values)
        self._re = re.compile(rf"(?<![A-Za-z0-9])(?:{pattern})(?![A-Za-z0-9])", re.IGNORECASE)
        self._lut = {v.lower(): v for v in reversed(self.text_values)}

    def _canonical(self, found: str) -> str:
        """The planted spelling matched (case-insensitively) by `found`."""
        return self._lut.get(found.lower(), found)

    def scan(self, ds: Dataset, file: str, out: list[dict]) -> None:
        if getattr(ds, "file_meta", None) is not None:
            self._walk(ds.file_meta, "", file, out)
        self._walk(ds, "", file, out)

    def _walk(self, ds: Dataset, prefix: str, file: str, out: list[dict]) -> None:
        for elem in ds:
            tag = f"({elem.tag.group:04X},{elem.tag.element:04X})"
            if elem.VR == "SQ":
                name = elem.keyword or tag
                for i, item in enumerate(elem.value):
                    self._walk(item, f"{prefix}{name}[{i}].", file, out)
                continue
            if elem.tag.group & 0xFF00 == 0x6000 and elem.tag.element == 0x3000:
                out.append({"file": file, "tag": prefix + tag, "value": self.patient.pn,
                            "encoding": "overlay_bitmap"})
                continue
            if elem.VR in ("OB", "OW", "OF", "OD", "OL", "OV", "UN") or elem.value is None:
                continue
            values = elem.value if isinstance(elem.value, (list, pydicom.multival.MultiValue)) else [elem.value]
            for val in values:
                s = str(val)
                if not s:
                    continue
                if elem.VR in ("DA", "TM", "DT") or (elem.VR == "UI" and s.startswith("2.25.")):
                    self.patient.add_phi(s, exact=True)
                    out.append({"file": file, "tag": prefix + tag, "value": s})
                    continue
                if elem.VR in ("UI", "US", "SS", "UL", "SL", "FL", "FD", "IS", "DS", "AT", "UV", "SV"):
                    continue
                # Leftmost-longest, non-overlapping: "DOE^JOHN^A" is reported once, not also as "DOE".
                for m in self._re.finditer(s):
                    out.append({"file": file, "tag": prefix + tag, "value": self._canonical(m.group(0))})
