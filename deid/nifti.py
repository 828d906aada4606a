"""De-identification of NIfTI-1/NIfTI-2 volumes: the header's free text cleaned, extensions dropped,
voxels and geometry kept bit for bit.

A NIfTI header has no patient fields, but its text fields are free text that converters and people
fill with whatever they like: ``descrip`` (80 bytes: often the series description, sometimes the
patient's name or the acquisition time), ``aux_file`` (24: a file name), ``intent_name`` (16),
the ANALYZE leftovers ``db_name`` (18) and ``data_type`` (10), NIfTI-2's ``unused_str``; and
extensions (DICOM headers from dcm2nii/mri_convert, AFNI XML, free comments) carry whole patient
headers. So:
- ``descrip`` and ``intent_name`` keep only words of acquisition vocabulary (``T1w``, ``FLAIR``,
  ``axial``...; an allow-list: what classification reads, nothing that can name a person);
- ``aux_file``, ``db_name``, ``data_type``, ``unused_str`` are emptied;
- every extension is dropped, and bytes after the voxel data (trailing junk) are not copied;
- the header is rewritten in place by field (nibabel's header as parsed, ``binaryblock``), so the
  affine (qform/sform), scaling, units and voxel bytes are exactly the input's; the data follow
  the header directly (``vox_offset`` 352 / 544); output gzip-compressed without a stored name
  or time.
Verification reloads the output: same affine and voxels, no extension, text fields from the
allow-list only, no word of the stripped text (or the file name) in the header, none of 8+
characters anywhere. The output's name is derived from its content."""
from __future__ import annotations

import gzip
import hashlib
import io
import re
from collections.abc import Iterable

import nibabel as nib
import numpy as np

from deid.filemeta import (PIXEL_TERM_MIN, ImageResult, byte_findings, name_hints, pseudonymous_name,
                           terms_of)
from deid.verify import Finding

VERSION = "nifti/1"
#: Fields kept after cleaning (allow-listed words only).
CLEANED_FIELDS = ("descrip", "intent_name")
#: Fields emptied: nothing in them is needed downstream.
EMPTIED_FIELDS = ("aux_file", "db_name", "data_type", "unused_str")
#: Words of series naming that may stay in ``descrip``/``intent_name`` (lowercase): contrast,
#: sequence, plane, dimensionality, modality and common derived-map names.
ACQUISITION_WORDS = frozenset(
    """t1 t1w t1wce t2 t2w t2star t2starw pd pdw pdt2 flair stir dwi dti adc fa md trace b0 bold fmri
    asl perf perfusion swi swan mprage spgr fspgr tfl tse fse se gre ge epi ir space cube vibe dixon
    fs fatsat water fat inphase outphase mra tof pc localizer scout survey ct mr mri pet spect cbf cbv
    mtt tmax axial ax sagittal sag coronal cor oblique iso 2d 3d 4d pre post gd contrast ce c
    brain head neck spine cervical thoracic lumbar chest abdomen pelvis knee hip shoulder wrist
    ankle prostate breast liver cardiac heart mask seg segmentation label labels map maps
    magnitude phase real imaginary mean std min max mni template warped registered
    """.split()
)
_WORD = re.compile(r"[0-9A-Za-z+]+")


def clean_text(value: bytes) -> bytes:
    """The allow-listed words of a free-text field, space-separated (ASCII), in their order."""
    words = _WORD.findall(value.split(b"\x00", 1)[0].decode("latin-1"))
    return " ".join(w for w in words if w.lower() in ACQUISITION_WORDS).encode("ascii")


def _field(hdr, name: str) -> bytes:
    """A text field's bytes as stored (numpy gives a 0-d bytes array)."""
    return bytes(np.asarray(hdr[name]).item())


def _load(raw: bytes) -> nib.Nifti1Header | nib.Nifti2Header:
    """The header exactly as stored (vox_offset, extensions) of a single-file NIfTI-1 or -2."""
    if len(raw) < 352:
        raise ValueError("shorter than a NIfTI header")
    for cls in (nib.Nifti1Header, nib.Nifti2Header):
        try:
            hdr = cls.from_fileobj(io.BytesIO(raw))
        except Exception:  # noqa: BLE001 - try the other version, then give up
            continue
        if _field(hdr, "magic") in (b"n+1", b"n+2"):
            return hdr
        raise ValueError("header/image pairs (.hdr/.img) are not handled; single-file NIfTI only")
    raise ValueError("not a NIfTI-1 or NIfTI-2 file")


def _data_bytes(hdr: nib.Nifti1Header | nib.Nifti2Header) -> int:
    return int(np.prod(hdr.get_data_shape(), dtype=np.int64)) * hdr.get_data_dtype().itemsize


def _stripped_texts(hdr: nib.Nifti1Header | nib.Nifti2Header) -> list[bytes]:
    texts = [_field(hdr, f) for f in (*CLEANED_FIELDS, *EMPTIED_FIELDS) if f in hdr]
    texts += [ext.get_content() if isinstance(ext.get_content(), bytes) else str(ext.get_content()).encode()
              for ext in hdr.extensions]
    return texts


def deidentify_nifti(data: bytes, source_names: Iterable[str] = ()) -> ImageResult:
    """De-identify one NIfTI file (bytes, gzip-compressed or not). ``source_names``: the file's
    name(s) at the source, used only as identifying values to search for (never written)."""
    res = ImageResult("written", hashlib.sha256(data).hexdigest())
    try:
        raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        hdr = _load(raw)
        offset = int(hdr["vox_offset"])
        n = _data_bytes(hdr)
        if offset < hdr.sizeof_hdr + 4 or offset + n > len(raw):
            raise ValueError("voxel data offset or size outside the file")
    except (OSError, EOFError, ValueError, gzip.BadGzipFile) as exc:
        return res.quarantine("unreadable", f"NIfTI cannot be read ({type(exc).__name__}: {exc})"[:200])
    stripped = _stripped_texts(hdr)
    removed = [t for t in stripped if t.strip(b"\x00 ")]
    terms = terms_of([*stripped, *name_hints(source_names)]) - ACQUISITION_WORDS  # kept on purpose
    clean = hdr.copy()
    for f in CLEANED_FIELDS:
        if f in clean:
            clean[f] = clean_text(_field(hdr, f))
    for f in EMPTIED_FIELDS:
        if f in clean:
            clean[f] = b""
    clean.extensions.clear()
    clean["vox_offset"] = clean.sizeof_hdr + 4
    out = clean.binaryblock + b"\x00\x00\x00\x00" + raw[offset:offset + n]
    res.counts["volumes"] += 1
    res.counts["header_fields_cleaned"] = len(removed)
    res.counts["extensions_dropped"] = len(hdr.extensions)
    findings = verify_nifti(out, hdr, raw[offset:offset + n], terms)
    if findings:
        return res.quarantine("phi_leak", "verification found identifying data: "
                              + ", ".join(sorted({f"{f.kind}:{f.where}" for f in findings}))[:300], findings)
    res.data = gzip.compress(out, compresslevel=1, mtime=0)  # level 6 costs ~4x the time for ~5% smaller volumes
    res.name = pseudonymous_name(res.data, ".nii.gz")
    return res


def verify_nifti(out: bytes, source: nib.Nifti1Header | nib.Nifti2Header, voxels: bytes, terms: set[str]) -> list[Finding]:
    """Reload the output: geometry and voxels unchanged, nothing but allow-listed words in the
    header, no extension, no stripped word in the header bytes (8+ characters: anywhere)."""
    findings: list[Finding] = []
    try:
        h = type(source).from_fileobj(io.BytesIO(out))
    except Exception:  # noqa: BLE001
        return [Finding("structure", "nifti", detail="output does not load as NIfTI")]
    if len(h.extensions):
        findings.append(Finding("structure", "nifti extensions", detail="extension left in the output"))
    for f in (*CLEANED_FIELDS, *EMPTIED_FIELDS):
        if f not in h:
            continue
        value = _field(h, f)
        if value != (clean_text(value) if f in CLEANED_FIELDS else b""):
            findings.append(Finding("structure", f"nifti {f}", detail="free text left in the header"))
    same = all(np.array_equal(np.asarray(h[k]), np.asarray(source[k]), equal_nan=True)
               for k in ("scl_slope", "scl_inter", "qform_code", "sform_code", "pixdim", "dim", "datatype",
                         "quatern_b", "quatern_c", "quatern_d", "qoffset_x", "qoffset_y", "qoffset_z",
                         "srow_x", "srow_y", "srow_z", "xyzt_units"))
    if not same or not np.allclose(h.get_best_affine(), source.get_best_affine(), rtol=0, atol=1e-6) \
            or out[int(h["vox_offset"]):] != voxels:
        findings.append(Finding("structure", "nifti data", detail="geometry, scaling or voxels changed"))
    header = out[:int(h["vox_offset"])]
    findings += byte_findings(header, terms, 4, "nifti header")
    findings += byte_findings(out, terms, PIXEL_TERM_MIN, "nifti voxels")
    return findings
