"""Inspect one incoming file: hash it, recognise its format, validate it, keep its bytes.

Runs in worker processes, so it takes and returns plain picklable values. Every refusal carries a
machine-readable `reason_code` and a sentence that names the attribute or the defect, never a value
from the file (values can be PHI).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import re
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from curation.store import LocalStore, Store, Zone, open_store
from curation.vocabulary import FileStatus, QuarantineReason

#: Attributes without which an instance cannot be placed in the catalog.
REQUIRED = (
    ("SOPInstanceUID", "(0008,0018)"),
    ("SOPClassUID", "(0008,0016)"),
    ("StudyInstanceUID", "(0020,000D)"),
    ("SeriesInstanceUID", "(0020,000E)"),
    ("Modality", "(0008,0060)"),
)

#: Transfer syntaxes whose pixel data is stored uncompressed (length is checkable exactly).
NATIVE_SYNTAXES = {
    pydicom.uid.ImplicitVRLittleEndian,
    pydicom.uid.ExplicitVRLittleEndian,
    pydicom.uid.ExplicitVRBigEndian,
    pydicom.uid.DeflatedExplicitVRLittleEndian,
}

DEFAULT_MAX_FILE_BYTES = 4 * 1024**3


@dataclass
class Inspection:
    """What ingest learned about one file (picklable; no pixel data)."""

    rel: str
    size: int = 0
    sha256: str = ""
    raw_key: str | None = None
    copied: bool = False
    status: FileStatus = FileStatus.OK  # OK | QUARANTINE
    format: str = "dicom"  # dicom | png | jpeg | nifti | unknown
    reason_code: str | None = None
    reason: str | None = None
    sop_instance_uid: str | None = None
    sop_class_uid: str | None = None
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    patient_key: str | None = None
    modality: str | None = None
    transfer_syntax_uid: str | None = None
    rows: int | None = None
    columns: int | None = None
    number_of_frames: int | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def refuse(self, code: str, reason: str) -> Inspection:
        self.status, self.reason_code, self.reason = FileStatus.QUARANTINE, code, reason
        return self


def raw_key_for(sha256: str) -> str:
    """Content-addressed key of an object in the raw zone."""
    return f"objects/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def patient_key(site: str, patient_id: str) -> str:
    """Stable, non-reversible catalog key of a patient (the PatientID itself is never stored)."""
    return hashlib.sha256(f"{site}\0{patient_id}".encode()).hexdigest()


_QUOTED = re.compile(r"""(['"]).*?\1""")


def _safe_message(exc: BaseException) -> str:
    """An exception's message with quoted values removed (they may be PHI), shortened."""
    text = _QUOTED.sub("'...'", str(exc)).replace("\n", " ")
    return f"{type(exc).__name__}: {text[:200]}"


@lru_cache(maxsize=4)
def _store(uri: str) -> Store:
    """The worker's store. Local writes skip their per-object fsyncs (still atomic against a killed
    process); the ingest loop makes them durable with one file-system sync before it commits the
    batch's catalog rows, so the catalog never points at bytes a power cut could lose."""
    store = open_store(uri)
    if isinstance(store, LocalStore):
        store.fsync = False
    return store


def _sniff_format(rel: str, head: bytes) -> str | None:
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    lower = rel.lower()
    if lower.endswith(".nii.gz") and head.startswith(b"\x1f\x8b"):
        return "nifti"
    if lower.endswith(".nii") and len(head) >= 348 and head[344:347] in (b"n+1", b"ni1"):
        return "nifti"
    # DICOM without the preamble (old exports): the first element is a group 0008 tag, little endian.
    if len(head) >= 8 and head[:2] in (b"\x08\x00", b"\x02\x00") and head[2:4] != b"\x00\x00":
        return "dicom"
    return None


def _validate_image(data: bytes, fmt: str, insp: Inspection) -> Inspection:
    """PNG/JPEG/NIfTI: check the header decodes and read the matrix size."""
    try:
        if fmt in ("png", "jpeg"):
            from PIL import Image

            with Image.open(io.BytesIO(data)) as im:
                im.verify()
                insp.columns, insp.rows = im.size
        else:
            raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
            if len(raw) < 352:
                return insp.refuse(QuarantineReason.TRUNCATED, "NIfTI file is shorter than its 348-byte header")
            sizeof_hdr = struct.unpack("<i", raw[:4])[0]
            endian = "<" if sizeof_hdr == 348 else ">"
            dims = struct.unpack(endian + "8h", raw[40:56])
            vox_offset = int(struct.unpack(endian + "f", raw[108:112])[0])
            bitpix = struct.unpack(endian + "h", raw[72:74])[0]
            n_vox = 1
            for d in dims[1 : 1 + max(0, min(dims[0], 7))]:
                n_vox *= max(int(d), 1)
            if len(raw) < vox_offset + n_vox * bitpix // 8:
                return insp.refuse(QuarantineReason.TRUNCATED, "NIfTI voxel data is shorter than its header declares")
            insp.columns, insp.rows = int(dims[1]), int(dims[2])
            insp.number_of_frames = int(dims[3]) if dims[0] >= 3 else 1
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a property of the file
        return insp.refuse(QuarantineReason.CORRUPT_IMAGE, f"{fmt.upper()} file does not decode ({_safe_message(exc)})")
    return insp


def _expected_native_length(ds: pydicom.Dataset) -> int:
    rows, cols = int(ds.Rows), int(ds.Columns)
    spp = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    bits = int(ds.BitsAllocated)
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    n = rows * cols * spp * frames
    if bits == 1:
        return (n + 7) // 8
    if getattr(ds, "PhotometricInterpretation", "") == "YBR_FULL_422":
        n = rows * cols * 2 * frames  # 4:2:2 subsampled: two samples per pixel on average
    return n * bits // 8


def _validate_dicom(data: bytes, insp: Inspection, site: str) -> Inspection:
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    except (InvalidDicomError, EOFError, OSError) as exc:
        return insp.refuse(QuarantineReason.TRUNCATED if isinstance(exc, EOFError) else QuarantineReason.CORRUPT,
                           f"DICOM does not parse ({_safe_message(exc)})")
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds on garbage
        return insp.refuse(QuarantineReason.CORRUPT, f"DICOM does not parse ({_safe_message(exc)})")
    try:
        ds.keys()  # forces lazy parsing errors to surface here
        meta = getattr(ds, "file_meta", None)
        ts = meta.get("TransferSyntaxUID") if meta is not None else None
        if ts is None and data[128:132] == b"DICM":
            return insp.refuse(QuarantineReason.CORRUPT,
                               "File Meta Information after the DICM marker is missing or damaged "
                                          "(no Transfer Syntax UID)")
        if ts is None:
            ts = pydicom.uid.ImplicitVRLittleEndian  # no file meta: pydicom guessed the encoding
        ts = UID(str(ts))
        problem = _truncation(ds, data)
        if problem:
            return insp.refuse(QuarantineReason.TRUNCATED, problem)
        for keyword, tag in REQUIRED:
            value = ds.get(keyword)
            if value is None or str(value).strip() == "":
                return insp.refuse(QuarantineReason.MISSING_ATTRIBUTE,
                                   f"required attribute {keyword} {tag} is missing or empty")
        insp.sop_instance_uid = str(ds.SOPInstanceUID)
        insp.sop_class_uid = str(ds.SOPClassUID)
        insp.study_instance_uid = str(ds.StudyInstanceUID)
        insp.series_instance_uid = str(ds.SeriesInstanceUID)
        insp.modality = str(ds.Modality)
        insp.transfer_syntax_uid = str(ts)
        insp.patient_key = patient_key(site, str(ds.get("PatientID", "") or ""))
        if "PixelData" in ds:
            return _validate_pixels(data, ds, ts, insp)
    except Exception as exc:  # noqa: BLE001
        return insp.refuse(QuarantineReason.CORRUPT, f"DICOM header is damaged ({_safe_message(exc)})")
    return insp


#: Sequence Delimitation Item that closes encapsulated (compressed) Pixel Data, little endian.
_SEQ_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def _truncation(ds: pydicom.Dataset, data: bytes) -> str | None:
    """Why the file looks cut short, or None. pydicom stops quietly at end of file, so compare where
    the last top-level element ends with the file's length."""
    tags = list(ds.keys())
    if not tags:
        return "no data element could be read after the header"
    raw = ds.get_item(tags[-1])
    length = getattr(raw, "length", None)
    tell = getattr(raw, "value_tell", None)
    if length is None or tell is None:
        return None
    if length == 0xFFFFFFFF:
        if tags[-1] == 0x7FE00010 and not data.endswith(_SEQ_DELIMITER):
            return "encapsulated Pixel Data has no closing delimiter: the file is truncated"
        return None
    end = tell + length
    if end > len(data):
        return f"the last element declares {end - len(data)} more bytes than the file holds: the file is truncated"
    return None


#: Series whose sample frame this process has decoded (decoding every compressed instance would
#: dominate ingest time; the other instances get a structural check of their encapsulation).
_decoded_series: set[str | None] = set()


def _validate_pixels(data: bytes, ds: pydicom.Dataset, ts: UID, insp: Inspection) -> Inspection:
    """Check the pixel data is complete; for compressed syntaxes decode a sample frame (the first
    frame of the first instance of each series this process sees) and check the structure of the rest."""
    for keyword in ("Rows", "Columns", "BitsAllocated"):
        if keyword not in ds:
            return insp.refuse(QuarantineReason.MISSING_ATTRIBUTE,
                               f"image attribute {keyword} is missing beside Pixel Data")
    insp.rows, insp.columns = int(ds.Rows), int(ds.Columns)
    insp.number_of_frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if not ts.is_transfer_syntax:
        return insp.refuse(QuarantineReason.UNSUPPORTED_TRANSFER_SYNTAX,
                           "Transfer Syntax UID is not a known transfer syntax")
    if ts in NATIVE_SYNTAXES:
        expected = _expected_native_length(ds)
        actual = len(ds.PixelData)
        if actual < expected:
            return insp.refuse(QuarantineReason.TRUNCATED,
                               f"Pixel Data holds {actual} bytes, {expected} expected: the file is truncated")
        return insp
    from pydicom.pixels import get_decoder

    decoder = get_decoder(ts)
    if decoder is None or not decoder.is_available:
        return insp.refuse(QuarantineReason.UNSUPPORTED_TRANSFER_SYNTAX,
                           f"no decoder installed for transfer syntax {ts.name}")
    if insp.series_instance_uid in _decoded_series:
        # A frame of this series already decoded in this worker: check the encapsulation instead
        # (every fragment item parses to the end, one or more fragments per declared frame).
        try:
            from pydicom.encaps import parse_fragments

            n_fragments, _ = parse_fragments(ds.PixelData)
        except Exception as exc:  # noqa: BLE001
            return insp.refuse(QuarantineReason.PIXEL_DECODE_FAILED,
                               f"encapsulated Pixel Data is damaged ({_safe_message(exc)})")
        if n_fragments < (insp.number_of_frames or 1):
            return insp.refuse(QuarantineReason.PIXEL_DECODE_FAILED,
                               f"encapsulated Pixel Data holds {n_fragments} fragments "
                                                      f"for {insp.number_of_frames} frames")
        return insp
    try:
        decoder.as_array(ds, index=0)  # the parsed dataset: no second parse of the file
    except Exception as exc:  # noqa: BLE001
        return insp.refuse(QuarantineReason.PIXEL_DECODE_FAILED, f"first frame does not decode ({_safe_message(exc)})")
    _decoded_series.add(insp.series_instance_uid)
    return insp


def inspect_file(path: str, rel: str, store_uri: str, site: str,
                 max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> Inspection:
    """Inspect the file at `path` (shown as `rel`) and keep its bytes in the raw zone by content hash.

    Bytes are kept for refused files too (nothing is lost): the quarantine record points at them.
    """
    insp = Inspection(rel=rel)
    p = Path(path)
    try:
        size = p.stat().st_size
        insp.size = size
        if size > max_file_bytes:
            return insp.refuse(QuarantineReason.TOO_LARGE,
                               f"file of {size} bytes exceeds the limit of {max_file_bytes} bytes")
        if size == 0:
            return insp.refuse(QuarantineReason.EMPTY, "file is empty")
        data = p.read_bytes()
    except OSError as exc:
        return insp.refuse(QuarantineReason.READ_ERROR, f"file cannot be read ({type(exc).__name__})")
    insp.sha256 = hashlib.sha256(data).hexdigest()
    insp.raw_key = raw_key_for(insp.sha256)
    store = _store(store_uri)
    if not store.exists(Zone.RAW, insp.raw_key):
        store.put_file(Zone.RAW, insp.raw_key, p)
        insp.copied = True

    fmt = _sniff_format(rel, data[:512])
    if fmt is None:
        insp.format = "unknown"
        return insp.refuse(QuarantineReason.NOT_DICOM,
                           "not a DICOM file (no DICM marker, no DICOM element at the start) "
                                        "nor a PNG, JPEG or NIfTI image")
    insp.format = fmt
    if fmt != "dicom":
        return _validate_image(data, fmt, insp)
    return _validate_dicom(data, insp, site)
