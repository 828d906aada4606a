"""What PNG/JPEG/NIfTI de-identification shares: the result of one file, the identifying values
found in what it strips (metadata text, file names), and the checks of the output against them.

Why: a PNG/JPEG/NIfTI has no patient header saying which values identify the patient. The text
the de-identifier removes (PNG text chunks, EXIF/XMP/IPTC, comments, NIfTI free-text fields and
extensions, the file name) is the best evidence there is: every word of it is searched for in the
output bytes and in any text OCR reads in the pixels, as DICOM outputs are searched for the
values of their header."""
from __future__ import annotations

import gzip
import hashlib
import io
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from deid.verify import Finding

#: Words of this length or more from stripped metadata are searched for in the output.
TERM_MIN = 4
#: Inside encoded pixel data (compressed PNG, NIfTI voxels) only terms this long are searched: an
#: 8-bit image holds short letter-like byte runs by chance (the DICOM rule, deid/verify.py).
PIXEL_TERM_MIN = 8
_TOKEN = re.compile(r"[0-9A-Za-z\u00c0-\u024f]+")
# Words that every image tool writes into its metadata and that identify nobody: searching for
# them would only quarantine clean outputs by chance matches.
_TOOL_WORDS = frozenset(
    """adobe photoshop gimp exif exiftool xmp iptc icc srgb profile color colour image images picture
    software version description comment comments title creator author copyright rights camera model
    make date time orientation resolution unit inch inches pixel pixels width height none true false
    http https www org com xml xmlns rdf meta nifti analyze descrip intent name file
    """.split()
)


@dataclass
class ImageResult:
    """Outcome for one non-DICOM input. ``status``: written | quarantined. ``reason`` names the
    check, never a value. ``name``: the output's pseudonymous file name (content hash + suffix)."""

    status: str
    sha256: str
    reason: str = ""
    reason_code: str = ""
    data: bytes | None = None
    name: str = ""
    findings: list[Finding] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    pixels: dict[str, Any] = field(default_factory=dict)

    def quarantine(self, code: str, reason: str, findings: Iterable[Finding] = ()) -> "ImageResult":
        self.status, self.reason_code, self.reason = "quarantined", code, reason
        self.findings = list(findings)
        self.data = None
        return self


def terms_of(texts: Iterable[str | bytes]) -> set[str]:
    """Lowercased words (>= TERM_MIN characters, tool vocabulary excluded) and digit runs of the
    stripped metadata and file names: what must not appear in the output."""
    out: set[str] = set()
    for t in texts:
        if isinstance(t, (bytes, bytearray)):
            t = bytes(t).decode("utf-8", "replace")
        for tok in _TOKEN.findall(str(t)):
            low = tok.lower()
            if len(low) >= TERM_MIN and low not in _TOOL_WORDS:
                out.add(low)
            digits = re.sub(r"\D", "", low)
            if len(digits) >= 5 and digits != low:
                out.add(digits)  # "MRN12345678" also as the number alone
    return out


def name_hints(names: Iterable[str]) -> list[str]:
    """The source file names as text (the folders too: exports file images under the patient's name)."""
    return [re.sub(r"\.(nii\.gz|nii|png|jpe?g)$", "", str(n), flags=re.IGNORECASE) for n in names if n]


def byte_findings(data: bytes, terms: Iterable[str], min_len: int, where: str) -> list[Finding]:
    """Terms (>= ``min_len``) found case-insensitively anywhere in ``data``; the finding never holds the value."""
    low = data.lower()
    return [Finding("value", where, "metadata", f"a stripped metadata or file-name word ({len(t)} characters)")
            for t in sorted(terms) if len(t) >= min_len and t.encode("utf-8") in low]


def fragment_hits(text: str, terms: Iterable[str], run: int = 4) -> int:
    """How many terms have a run of ``run``+ characters readable in ``text`` (OCR output)."""
    flat = re.sub(r"[^0-9a-z]", "", text.lower())
    if len(flat) < run:
        return 0
    return sum(1 for t in terms if any(t[i:i + run] in flat for i in range(len(t) - run + 1)))


def image_format(name: str, head: bytes) -> str | None:
    """"png", "jpeg" or "nifti" from a file's first bytes (and the NIfTI suffix); None otherwise
    (a DICOM file's 128-byte preamble is free: the DICM marker after it wins)."""
    if head[128:132] == b"DICM":
        return None
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    low = name.lower()
    if (low.endswith(".nii.gz") and head.startswith(b"\x1f\x8b")) or (low.endswith(".nii") and head[344:347] == b"n+1"):
        return "nifti"
    return None


def deidentify_file(data: bytes, fmt: str, source_names: Iterable[str] = ()) -> ImageResult:
    """A PNG/JPEG (``deid.raster``) or NIfTI (``deid.nifti``) file, by its ``image_format``."""
    if fmt == "nifti":
        from deid.nifti import deidentify_nifti

        return deidentify_nifti(data, source_names)
    if fmt in ("png", "jpeg"):
        from deid.raster import deidentify_raster

        return deidentify_raster(data, source_names)
    raise ValueError(f"no de-identifier for format {fmt!r}")


def pseudonymous_name(data: bytes, suffix: str) -> str:
    """The output's file name: derived from the de-identified content only (never from the source's
    name, which often holds a patient's name or MRN)."""
    return f"{hashlib.sha256(data).hexdigest()[:32]}{suffix}"


def image_reid_entry(pseudonym: str, data: bytes, fmt: str, sha256: str, source_names: Iterable[str],
                     raw_key: str | None = None) -> dict[str, Any]:
    """The re-identification entry of one PNG/JPEG/NIfTI output (pseudonym: its name stem), in the
    engine's ``reid`` shape: the file has no PatientID, so what leads back to the patient is where
    it came from (its names at the source, often the patient's name or MRN; in the pipeline its
    raw-zone key) and the free text the de-identifier removed. One "study" per input (its hash):
    the same output reached from two inputs keeps both."""
    origin: dict[str, Any] = {"source_names": list(source_names), "removed_text": removed_text(data, fmt)}
    if raw_key is not None:
        origin["raw_key"] = raw_key
    return {pseudonym: {"format": fmt, "studies": {sha256: origin}}}


def removed_text(data: bytes, fmt: str) -> list[str]:
    """The free text of a raw PNG/JPEG (text chunks, EXIF, XMP, IPTC, comments: ``deid.raster``)
    or NIfTI file (descrip, aux_file, intent_name, db_name, extensions: ``deid.nifti``) that the
    de-identifier does not carry over: it often names the patient. At most 50 texts of 500 characters."""
    try:
        if fmt == "nifti":
            from deid.nifti import _load, _stripped_texts  # noqa: PLC0415 - deid.nifti imports this module

            texts: list[str | bytes] = list(_stripped_texts(_load(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)))
        else:
            from PIL import Image

            from deid.raster import metadata_texts

            texts = metadata_texts(Image.open(io.BytesIO(data)))
    except Exception:  # noqa: BLE001 - a file the de-identifier could read but this cannot: its origin still leads back
        return []
    out = (t.split(b"\x00", 1)[0].decode("latin-1") if isinstance(t, bytes) else str(t) for t in texts)
    return [t.strip()[:500] for t in out if t.strip()][:50]
