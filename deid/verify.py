"""Residual-PHI verification (the leak scanner): before anything is written, every element of
the output (file meta, sequences, private) and its raw bytes are searched for every identifying
value of the source object and patient; structure checks catch private and overlay groups.

Raw bytes are lowercased and searched with ``bytes.find`` (C speed). Inside the Pixel Data value
only the patient's own identifiers (PIXEL_SPAN_ATTRIBUTES) of >= SUBSTRING_MIN characters are
searched: 8-bit pixel data holds letter-like byte runs by chance, and pixel text is verified by
OCR instead."""
from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset

from deid.header import _vr_of
from deid.phi import SUBSTRING_MIN, PhiValues, find_term

_PIXEL_TAGS_LE = (b"\xe0\x7f\x10\x00OB", b"\xe0\x7f\x10\x00OW", b"\xe0\x7f\x10\x00")
_PIXEL_TAGS_BE = (b"\x7f\xe0\x00\x10OB", b"\x7f\xe0\x00\x10OW")


#: Values also searched inside the Pixel Data bytes (a few MB per colour cine: searching every
#: UID and time there would cost more than the rest of the object); pixel text is OCR-checked.
PIXEL_SPAN_ATTRIBUTES = frozenset({"PatientName", "PatientID", "OtherPatientIDs", "OtherPatientNames",
                                   "PatientBirthDate", "AccessionNumber", "PatientAddress",
                                   "PatientTelephoneNumbers", "PatientBirthName", "PatientMotherBirthName"})


@dataclass(frozen=True)
class Finding:
    """A verification failure; ``detail`` never holds the identifying value itself."""

    kind: str  # value | private | overlay | structure | pixel_text | pixel
    where: str
    source_attribute: str = ""
    detail: str = ""

    def as_dict(self) -> dict:
        return {"kind": self.kind, "where": self.where, "source_attribute": self.source_attribute, "detail": self.detail}


def pixel_value_span(data: bytes) -> tuple[int, int]:
    """(start, end) of the Pixel Data value in a Part 10 byte string, or (len, len)."""
    for tag in _PIXEL_TAGS_LE + _PIXEL_TAGS_BE:
        i = data.find(tag)
        if i != -1:
            header = 12 if len(tag) == 6 else 8
            return i + header, len(data)
    return len(data), len(data)


def scan_bytes(data: bytes, phi: PhiValues, terms: list | None = None) -> list[Finding]:
    """Search the serialized object for every identifying value (case-insensitive). Only the
    bytes around Pixel Data are lowercased; inside it the patient's identifiers are searched as
    written, upper and title case."""
    p0, p1 = pixel_value_span(data)
    head, tail = data[:p0].lower(), data[p1:].lower()
    out = []
    for term, kw, whole in terms if terms is not None else phi.terms():
        t = term.encode("latin-1", "ignore")
        if not t:
            continue
        i = find_term(head, t, whole)
        if i == -1 and tail:
            i = find_term(tail, t, whole)
            i = -1 if i == -1 else p1 + i
        if i == -1 and len(t) >= SUBSTRING_MIN and p0 < p1 and kw in PIXEL_SPAN_ATTRIBUTES:
            for v in {t, t.upper(), t.title()}:
                i = find_term(data, v, whole, p0, p1)
                if i != -1:
                    break
        if i != -1:
            out.append(Finding("value", f"byte {i}", kw, "identifying value of the source found in output bytes"))
    return out


def scan_structure(ds: Dataset, allow_private: bool, path: str = "") -> list[Finding]:
    """Private groups (unless the safe-private option kept them), curves and overlays anywhere."""
    out = []
    for elem in ds.elements():
        tag = int(elem.tag)
        g = tag >> 16
        where = f"{path}({g:04X},{tag & 0xFFFF:04X})"
        if g & 1 and not allow_private:
            out.append(Finding("private", where, detail="private attribute left"))
        elif (g & 0xFF00) in (0x5000, 0x6000):
            out.append(Finding("overlay", where, detail="curve/overlay attribute left"))
        elif _vr_of(elem) == "SQ":
            for i, item in enumerate(ds[tag].value or ()):
                out += scan_structure(item, allow_private, f"{where}[{i}].")
    return out



def structure_findings(flagged: list[str], allow_private: bool) -> list[Finding]:
    """Findings for the private/curve/overlay element paths the writer reported (deid.writer)."""
    out = []
    for where in flagged:
        g = int(where[where.rindex("(") + 1:where.rindex("(") + 5], 16)
        if g & 1:
            if not allow_private:
                out.append(Finding("private", where, detail="private attribute left"))
        else:
            out.append(Finding("overlay", where, detail="curve/overlay attribute left"))
    return out


def check_identity_removed(ds: Dataset, meta_sop_uid: str) -> list[Finding]:
    """PatientIdentityRemoved YES, and the file meta's MediaStorageSOPInstanceUID (as written)
    equal to the SOPInstanceUID."""
    out = []
    if str(ds.get("PatientIdentityRemoved", "")) != "YES":
        out.append(Finding("structure", "(0012,0062)", detail="PatientIdentityRemoved is not YES"))
    if not meta_sop_uid:
        out.append(Finding("structure", "(0008,0018)", detail="SOPInstanceUID is empty"))
    elif meta_sop_uid != str(ds.get("SOPInstanceUID", "")):
        out.append(Finding("structure", "(0002,0003)", detail="MediaStorageSOPInstanceUID differs from SOPInstanceUID"))
    return out


def scan_text(text: str, phi: PhiValues, terms: list | None = None) -> list[str]:
    """Attributes whose identifying values occur in ``text`` (e.g. what OCR read)."""
    low = text.lower()
    return [kw for term, kw, whole in (terms if terms is not None else phi.terms()) if find_term(low, term, whole) != -1]
