"""De-identify one DICOM object: header profile, pixel text masking, verification, serialisation.

``Deidentifier.deidentify(data)`` takes the bytes of one Part 10 file and returns a
:class:`FileResult`: the output bytes, or a quarantine reason. Nothing is written here; callers
(the CLI's process pool, the pipeline stage) decide where bytes go."""
from __future__ import annotations

import hashlib
import io
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.filebase import DicomBytesIO
from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, DeflatedExplicitVRLittleEndian

from deid.header import HeaderContext, apply_plan, int_value, patient_key, text_value, texts_of
from deid.ocr import OcrError
from deid.phi import PhiValues
from deid.pixels import Box, at_risk, decode_rle_u8, interleaved, residual_text, scrub_frames, ybr_full_to_rgb
from deid.private import load_safe_private
from deid.profile import Profile, compile_plan, load_profile
from deid.pseudonym import Pseudonymizer
from deid.verify import (Finding, check_identity_removed, scan_bytes, scan_fragments, scan_structure, scan_text,
                         structure_findings)

IMPLEMENTATION_VERSION = "CURATE_DEID_1"
_ORIGINALS = ("PatientID", "PatientName", "PatientBirthDate", "StudyInstanceUID", "AccessionNumber", "StudyDate", "StudyID")
_TAGS = {kw: tag_for_keyword(kw) for kw in _ORIGINALS + ("SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID")}
_ROWS = tag_for_keyword("Rows")
_PIXEL_DATA_TAGS = tuple(tag_for_keyword(k) for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))
#: file meta values the output must not carry (the run writes its own meta)
_META_PHI = tuple((tag_for_keyword(kw), kw, "UI" if kw.endswith("UID") else "AE")
                  for kw in ("MediaStorageSOPInstanceUID", "SourceApplicationEntityTitle", "SendingApplicationEntityTitle",
                             "ReceivingApplicationEntityTitle", "PrivateInformationCreatorUID"))


@dataclass
class FileResult:
    """Outcome for one input. ``status``: written | quarantined. ``reason`` names the attribute or
    check, never a value."""

    status: str
    sha256: str
    reason: str = ""
    reason_code: str = ""
    data: bytes | None = None
    findings: list[Finding] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    pseudonym: str = ""
    study_uid: str = ""
    series_uid: str = ""
    sop_uid: str = ""
    reid: dict[str, Any] = field(default_factory=dict)
    pixels: dict[str, Any] = field(default_factory=dict)


class Deidentifier:
    """Holds the compiled profile, the keyed pseudonymizer and the allow-list for many files."""

    def __init__(self, profile: Profile | str = "default", secret: bytes = b"", options: tuple[str, ...] = ()):
        self.profile = load_profile(profile, options) if isinstance(profile, str) else profile.with_options(options)
        self.plan = compile_plan(self.profile)
        self.pseudo = Pseudonymizer(secret)
        self.safe_private = load_safe_private() if "retain_safe_private" in self.profile.options else frozenset()
        self.shifting = "retain_modified_dates" in self.profile.options
        self._constants = frozenset(code for code, _meaning in self.profile.method_codes)

    # -- one object -------------------------------------------------------------------------
    def deidentify(self, data: bytes, name: str = "") -> FileResult:
        sha = hashlib.sha256(data).hexdigest()
        try:
            ds = pydicom.dcmread(io.BytesIO(data))
        except Exception as exc:
            return FileResult("quarantined", sha, f"not readable as DICOM ({type(exc).__name__})", "not_dicom")
        try:
            return self._deidentify(ds, sha)
        except OcrError as exc:
            return FileResult("quarantined", sha, f"pixel text could not be checked: {exc}", "pixels_unhandled")
        except Exception as exc:  # a damaged object: quarantine, name the error type only
            return FileResult("quarantined", sha, f"de-identification failed ({type(exc).__name__})", "deid_error")

    def _deidentify(self, ds: Dataset, sha: str) -> FileResult:
        # presence checks on the element dict by tag number: Dataset's keyword lookups convert
        # names to tags on every call, and reading a value converts it
        elems = ds._dict
        if _TAGS["SOPInstanceUID"] not in elems and "MediaStorageSOPInstanceUID" not in getattr(ds, "file_meta", {}):
            return FileResult("quarantined", sha, "missing SOPInstanceUID (0008,0018)", "missing_uid")
        if _TAGS["SOPInstanceUID"] not in elems:
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        truncated = _truncated_element(ds)
        if truncated:
            return FileResult("quarantined", sha, f"truncated: attribute {truncated} ends past the end of the file", "truncated")
        if _ROWS in elems and not any(t in elems for t in _PIXEL_DATA_TAGS):
            return FileResult("quarantined", sha, "image without Pixel Data (7FE0,0010): truncated or damaged", "truncated")
        meta = ds.file_meta if getattr(ds, "file_meta", None) is not None else FileMetaDataset()
        pkey = patient_key(ds)
        shift = self.pseudo.date_shift_days(pkey) if self.shifting else None
        phi = PhiValues()
        meta_elems = meta._dict
        for tag, kw, vr in _META_PHI:
            elem = meta_elems.get(tag)
            if elem is not None:
                phi.add_texts(kw, vr, texts_of(elem))
        risky = at_risk(ds)
        originals = {k: text_value(ds, _TAGS[k]) for k in _ORIGINALS}
        ctx = HeaderContext(self.plan, self.pseudo, pkey, shift, self.safe_private, phi)
        ctx.seconds_shift = self.pseudo.time_shift_seconds(pkey) if self.shifting else 0
        ctx.constants = self._constants  # CID 7050 code values this run writes itself
        enc = ds.original_encoding
        ctx.enc = (bool(enc[0]), bool(enc[1]) if enc[1] is not None else True)
        apply_plan(ds, ctx)
        self._mark(ds)
        res = FileResult("written", sha, counts=ctx.counts)

        # pixels
        if "PixelData" in ds and self.profile.clean_pixel_data:
            findings = self._pixels(ds, risky, phi, ctx.terms, res)
            if findings:
                res.status, res.findings = "quarantined", findings
                res.reason, res.reason_code = "burned-in text left after masking", "pixel_text_left"
                return res

        # file meta: only what this de-identifier writes (nothing else of the source's meta)
        meta = getattr(ds, "file_meta", None) or meta  # the pixel step may have changed it
        ts = str(meta.get("TransferSyntaxUID") or ExplicitVRLittleEndian)
        if ts == DeflatedExplicitVRLittleEndian:
            ts = ExplicitVRLittleEndian  # raw-byte verification needs uncompressed headers
        sop_uid = text_value(ds, _TAGS["SOPInstanceUID"])
        sop_class = text_value(ds, _TAGS["SOPClassUID"]) or str(meta.get("MediaStorageSOPClassUID", "") or "")
        ds.preamble = b"\x00" * 128
        flagged: list[str] = []
        span: list[int] = []
        out = _serialize(ds, ts, sop_class, sop_uid, flagged, span)

        # verification
        findings = scan_bytes(out, phi, ctx.terms, ctx.new_uids, (span[0], len(out)) if span else None)
        findings += structure_findings(flagged, allow_private=bool(self.safe_private))
        findings += check_identity_removed(ds, sop_uid)
        if findings:
            res.status, res.findings = "quarantined", findings
            res.reason_code = "phi_leak"
            res.reason = "verification found identifying data: " + ", ".join(sorted({f"{f.kind}:{f.source_attribute or f.where}" for f in findings}))[:300]
            return res
        res.data = out
        res.pseudonym = text_value(ds, _TAGS["PatientID"])
        res.study_uid = text_value(ds, _TAGS["StudyInstanceUID"])
        res.series_uid = text_value(ds, _TAGS["SeriesInstanceUID"])
        res.sop_uid = sop_uid
        res.reid = {
            res.pseudonym: {
                "PatientID": originals["PatientID"],
                "PatientName": originals["PatientName"],
                "PatientBirthDate": originals["PatientBirthDate"],
                "date_shift_days": shift,
                "studies": {res.study_uid: {"StudyInstanceUID": originals["StudyInstanceUID"],
                                            "AccessionNumber": originals["AccessionNumber"],
                                            "StudyDate": originals["StudyDate"], "StudyID": originals["StudyID"]}},
            }
        }
        return res

    def _mark(self, ds: Dataset) -> None:
        """PatientIdentityRemoved, DeidentificationMethod(+CodeSequence, CID 7050), temporal flag.
        Built once per Deidentifier; every output gets the same (read-only) elements."""
        marks = getattr(self, "_marks", None)
        if marks is None:
            tmpl = Dataset()
            tmpl.PatientIdentityRemoved = "YES"
            tmpl.DeidentificationMethod = [m for _, m in self.profile.method_codes]
            seq = Sequence()
            for code, meaning in self.profile.method_codes:
                item = Dataset()
                item.CodeValue = code
                item.CodingSchemeDesignator = "DCM"
                item.CodeMeaning = meaning
                seq.append(item)
            tmpl.DeidentificationMethodCodeSequence = seq
            opts = self.profile.options
            tmpl.LongitudinalTemporalInformationModified = (
                "MODIFIED" if "retain_modified_dates" in opts else "UNMODIFIED" if "retain_full_dates" in opts else "REMOVED"
            )
            marks = self._marks = [tmpl[k] for k in ("PatientIdentityRemoved", "DeidentificationMethod",
                                                       "DeidentificationMethodCodeSequence",
                                                       "LongitudinalTemporalInformationModified")]
        for elem in marks:
            ds._dict[elem.tag] = elem

    def _pixels(self, ds: Dataset, risky: bool, phi: PhiValues, terms: list, res: FileResult) -> list[Finding]:
        owned = False  # an array nobody else holds (no defensive copy needed)
        try:
            arr = _native_monochrome(ds)
            if arr is None:
                arr = decode_rle_u8(ds, as_rgb=False)  # YBR_FULL converted only if masked
                owned = arr is not None
            if arr is None:
                arr = _pydicom_pixels(ds)
        except Exception as exc:
            raise OcrError(f"pixel data cannot be decoded ({type(exc).__name__})") from exc
        n_frames = int_value(ds, _NUMBER_OF_FRAMES, "IS") or 1
        samples = int_value(ds, _SAMPLES_PER_PIXEL, "US") or 1
        frames = arr if n_frames > 1 else arr[None]
        if samples > 1 and frames.ndim != 4:
            raise OcrError("unexpected pixel array shape")
        if not owned:
            frames = np.array(frames, copy=True)
        pi = text_value(ds, _PHOTOMETRIC).upper()
        invert = pi == "MONOCHROME1"
        ybr = owned and pi == "YBR_FULL"  # only our RLE decoder keeps YBR; pydicom's gives RGB
        pres, lines = scrub_frames(frames, risky, invert, ybr=ybr)
        boxes = sorted({tuple(b) for _, b in pres.masked_boxes})
        res.pixels = {"at_risk": risky, "masked_boxes": len(boxes), "boxes": [list(b) for b in boxes],
                      "frames": int(frames.shape[0]), "ocr_calls": pres.ocr_calls,
                      "imaged_field_px": pres.field_px, "masked_in_field_px": pres.masked_in_field_px}
        res.counts["pixel_images_scanned"] += 1
        if risky:
            res.counts["pixel_images_at_risk"] += 1
        findings: list[Finding] = []
        if pres.masked_boxes or risky:
            masked = [Box(*b) for b in boxes]
            read, bad, calls = residual_text(frames, risky, invert, masked, ybr=ybr, prior=pres.rejected,
                                             field=pres.field)
            res.pixels["ocr_calls"] += calls
            for ln in bad:
                findings.append(Finding("pixel_text", f"box {ln.box.as_list()}", detail="readable text left after masking"))
            for ln in read:
                hits = scan_text(ln.text, phi, terms) or scan_fragments(ln.text, terms)
                if hits:
                    findings.append(Finding("pixel_text", f"box {ln.box.as_list()}", hits[0], "identifying value read by OCR"))
            if findings:
                return findings
        if pres.masked_boxes:
            self._store_pixels(ds, frames if n_frames > 1 else frames[0], ybr)
            res.counts["pixel_images_masked"] += 1
        if pres.masked_boxes or risky:
            ds.BurnedInAnnotation = "NO"
        return []

    @staticmethod
    def _store_pixels(ds: Dataset, arr: np.ndarray, ybr: bool = False) -> None:
        """Masked pixels go back uncompressed (Explicit VR Little Endian): always a correct transfer
        syntax whatever the source encoding; colour as RGB (uncompressed US allows MONOCHROME2,
        PALETTE COLOR or RGB only). ``ybr``: ``arr`` holds YBR_FULL samples (masked with YBR
        black), converted here by pydicom's own routine: outside the boxes the same RGB as
        pydicom's decoding of the input."""
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        pi = str(ds.PhotometricInterpretation)
        if samples == 3:
            pi = "RGB"
        if ybr:  # pydicom's conversion, on the coloured pixels only (see ybr_full_to_rgb)
            arr = ybr_full_to_rgb(arr)
        # C order: decoded colour is often by plane, and numpy's strided copy is slow
        arr = interleaved(arr)
        lossy = str(ds.file_meta.get("TransferSyntaxUID", "")) in _LOSSY
        ds.set_pixel_data(arr, photometric_interpretation=pi, bits_stored=int(ds.get("BitsStored", arr.dtype.itemsize * 8)),
                          generate_instance_uid=False)
        if lossy:
            ds.LossyImageCompression = "01"


def _serialize(ds: Dataset, ts: str, sop_class: str, sop_uid: str, flagged: list[str],
               span: list[int] | None = None) -> bytes:
    """Part 10 bytes: preamble, file meta, then the dataset in its transfer syntax's encoding.
    The lean writer reports the private/curve/overlay tags it wrote into ``flagged``; the
    pydicom fallbacks (big endian, deflated input) are walked once more for them. The lean
    writer also appends to ``span`` where the Pixel Data value begins (nothing when there is
    none, or through the fallbacks)."""
    from pydicom.uid import UID

    from deid.writer import file_meta_bytes, pixel_value_start, write_le

    uid = UID(ts)
    enc = ds.original_encoding
    lean = uid.is_little_endian and (enc[0] is None or (enc[0], enc[1]) == (uid.is_implicit_VR, uid.is_little_endian))
    if not lean:
        # encoding changes (deflated input written uncompressed) or big endian: pydicom converts
        fm = FileMetaDataset()
        if sop_class:
            fm.MediaStorageSOPClassUID = sop_class
        fm.MediaStorageSOPInstanceUID = sop_uid
        fm.TransferSyntaxUID = uid
        fm.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        fm.ImplementationVersionName = IMPLEMENTATION_VERSION
        ds.file_meta = fm
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        flagged += [f.where for f in scan_structure(ds, allow_private=False)]
        return buf.getvalue()
    fp = DicomBytesIO()
    fp.is_implicit_VR = uid.is_implicit_VR
    fp.is_little_endian = True
    fp.write(b"\x00" * 128 + b"DICM")
    fp.write(file_meta_bytes(sop_class, sop_uid, ts, PYDICOM_IMPLEMENTATION_UID, IMPLEMENTATION_VERSION))
    at: list[int] = []
    write_le(fp, ds, uid.is_implicit_VR, ds._character_set, flagged, pixel_at=at)
    out = fp.getvalue()
    if at and span is not None:
        span.append(pixel_value_start(out, at[0], uid.is_implicit_VR))
    return out


def _truncated_element(ds: Dataset) -> str:
    """The tag of a top-level element whose value is shorter than its declared length, or ''.
    Only raw elements carry a declared length (a converted DataElement has none)."""
    for elem in ds._dict.values():
        if type(elem) is not RawDataElement:
            continue
        length = elem.length
        value = elem.value
        if isinstance(value, (bytes, bytearray)) and length not in (None, 0xFFFFFFFF) and len(value) < length:
            t = int(elem.tag)
            return f"({t >> 16:04X},{t & 0xFFFF:04X})"
    return ""


def _native_monochrome(ds: Dataset) -> np.ndarray | None:
    """Uncompressed little-endian grey pixels straight from the bytes (pydicom's decoder
    machinery costs about a millisecond per file; most of a site is CT/MR like this)."""
    ts = str(ds.file_meta.get("TransferSyntaxUID", ""))
    if ts not in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1") or (int_value(ds, _SAMPLES_PER_PIXEL, "US") or 1) != 1:
        return None
    bits = _required_us(ds, _BITS_ALLOCATED, "BitsAllocated")
    if bits not in (8, 16):
        return None
    dtype = np.dtype(("i" if _required_us(ds, _PIXEL_REPRESENTATION, "PixelRepresentation") else "u")
                     + str(bits // 8)).newbyteorder("<")
    rows, cols = _required_us(ds, _ROWS, "Rows"), _required_us(ds, _COLUMNS, "Columns")
    n = int_value(ds, _NUMBER_OF_FRAMES, "IS") or 1
    raw = ds.PixelData
    need = rows * cols * n * (bits // 8)
    if len(raw) < need:
        raise ValueError("pixel data shorter than its header says")
    arr = np.frombuffer(raw, dtype=dtype, count=rows * cols * n)
    return arr.reshape((n, rows, cols) if n > 1 else (rows, cols))


_NUMBER_OF_FRAMES, _SAMPLES_PER_PIXEL, _PHOTOMETRIC = 0x00280008, 0x00280002, 0x00280004
_BITS_ALLOCATED, _PIXEL_REPRESENTATION, _COLUMNS = 0x00280100, 0x00280103, 0x00280011


def _required_us(ds: Dataset, tag: int, keyword: str) -> int:
    """A US attribute the pixels cannot be read without; pydicom's error when it is absent."""
    v = int_value(ds, tag, "US")
    return int(getattr(ds, keyword)) if v is None else v


#: JPEG-LS (lossless, near-lossless): the decoding is specified exactly by the standard (no
#: transform with rounding), so every conforming decoder gives the same pixels
_JPEG_LS = {"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"}


def _pydicom_pixels(ds: Dataset) -> np.ndarray:
    """``ds.pixel_array``, JPEG-LS through CharLS (pyjpegls) first: pydicom prefers pylibjpeg's
    libjpeg, which took 4.8 ms CPU per 256x256 CT slice against CharLS's 1.4 (the same array);
    CT of a site is often JPEG-LS. Falls back to pydicom's own choice when CharLS fails."""
    if str(ds.file_meta.get("TransferSyntaxUID", "")) in _JPEG_LS:
        try:
            ds.pixel_array_options(decoding_plugin="pyjpegls")
            return ds.pixel_array
        except Exception:
            ds.pixel_array_options()  # back to pydicom's defaults
    return ds.pixel_array


_LOSSY = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.81",
          "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.101"}
