"""Residual-PHI verification (the leak scanner): before anything is written, every element of
the output (file meta, sequences, private) and its raw bytes are searched for every identifying
value of the source object and patient; structure checks catch private and overlay groups.

Raw bytes are lowercased and searched with ``bytes.find`` (C speed). Inside the Pixel Data value
only the patient's own identifiers (PIXEL_SPAN_ATTRIBUTES) of >= SUBSTRING_MIN characters are
searched, all in one Hyperscan pass: 8-bit pixel data holds letter-like byte runs by chance, and
pixel text is verified by OCR instead."""
from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from pydicom.dataset import Dataset

from deid.header import _vr_of, text_value
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


def scan_bytes(data: bytes, phi: PhiValues, terms: list | None = None, own_uids: Iterable[str] = (),
               span: tuple[int, int] | None = None) -> list[Finding]:
    """Search the serialized object for every identifying value (case-insensitive).

    Outside Pixel Data the bytes are lowercased once and every value is searched with
    ``bytes.find``, a short (whole-word) value only between non-alphanumeric bytes (one find per
    value over the few kilobytes of header: splitting the header into its words with a regular
    expression for set lookups cost five times as much). ``own_uids`` are the keyed-hash UIDs
    this run wrote (random decimal digits, no source data in them): their bytes are blanked
    first, so an 8-digit ID that occurs inside one by chance is not a finding. Inside Pixel Data
    the patient's identifiers are searched, all at once (``_pixel_hits``). ``span``: where the
    Pixel Data value is, when the writer knows it (else found by ``pixel_value_span``: a search of
    the whole object for its tag)."""
    p0, p1 = span if span is not None else pixel_value_span(data)
    head, tail = data[:p0].lower(), data[p1:].lower()
    for uid in own_uids:
        u = uid.encode("ascii")
        if u in head:
            head = head.replace(u, b"\x00" * len(u))
        if u in tail:
            tail = tail.replace(u, b"\x00" * len(u))
    out = []
    in_pixels = []
    for term, kw, whole in terms if terms is not None else phi.terms():
        t = term.encode("latin-1", "ignore")
        if not t:
            continue
        if whole:
            i = find_term(head, t, True)
            if i == -1 and tail:
                i = find_term(tail, t, True)
                i = i if i == -1 else p1 + i
        else:
            i = head.find(t)
            if i == -1 and tail:
                i = tail.find(t)
                i = i if i == -1 else p1 + i
        if i != -1:
            out.append(Finding("value", f"byte {i}", kw, "identifying value of the source found in output bytes"))
        elif len(t) >= SUBSTRING_MIN and p0 < p1 and kw in PIXEL_SPAN_ATTRIBUTES:
            in_pixels.append((t, kw))
    if in_pixels:
        out += [Finding("value", f"byte {i}", kw, "identifying value of the source found in output bytes")
                for i, kw in _pixel_hits(data, p0, p1, in_pixels)]
    return out


def _pixel_hits(data: bytes, p0: int, p1: int, terms: list[tuple[bytes, str]]) -> list[tuple[int, str]]:
    """(byte offset, attribute) of each value found in data[p0:p1], case-insensitively: one pass
    of Hyperscan over the pixel bytes for all values at once (a colour cine is megabytes; one
    ``bytes.find`` per value and date format cost ~7 ms per image); lowercased ``bytes.find``
    where Hyperscan is not installed."""
    found: dict[str, int] = {}
    matcher = _pixel_matcher(tuple(t for t, _ in terms), threading.get_ident())
    if matcher is not None:
        def on_match(idx: int, _start: int, end: int, _flags: int, _ctx: object) -> None:
            kw = terms[idx][1]
            if kw not in found:
                found[kw] = p0 + end - len(terms[idx][0])
        matcher.scan(memoryview(data)[p0:p1], match_event_handler=on_match)
    else:
        low = data[p0:p1].lower()
        for t, kw in terms:
            k = low.find(t)
            if k != -1 and kw not in found:
                found[kw] = p0 + k
    return sorted(((i, kw) for kw, i in found.items()), key=lambda h: h[0])


@lru_cache(maxsize=64)
def _pixel_matcher(values: tuple[bytes, ...], _thread: int):
    """A compiled Hyperscan block-mode database of ``values`` as caseless literals (compiled once
    per patient's value set: ~0.7 ms), or None without Hyperscan. One per thread: a database
    scans with its own scratch space, which two threads must not share."""
    try:
        import hyperscan
    except ImportError:
        return None
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    flags = hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_SINGLEMATCH
    db.compile(expressions=list(values), ids=list(range(len(values))), elements=len(values),
               flags=[flags] * len(values), literal=True)
    return db


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
    elif meta_sop_uid != text_value(ds, 0x00080018):
        out.append(Finding("structure", "(0002,0003)", detail="MediaStorageSOPInstanceUID differs from SOPInstanceUID"))
    return out


def scan_text(text: str, phi: PhiValues, terms: list | None = None) -> list[str]:
    """Attributes whose identifying values occur in ``text`` (e.g. what OCR read)."""
    low = text.lower()
    return [kw for term, kw, whole in (terms if terms is not None else phi.terms()) if find_term(low, term, whole) != -1]


#: runs of this many characters of a known identifier, read in pixels, are a finding
FRAGMENT_MIN = 4
_ALNUM = re.compile(r"[^0-9a-z]+")


def scan_fragments(text: str, terms: list, n: int = FRAGMENT_MIN) -> list[str]:
    """Attributes of the patient (PIXEL_SPAN_ATTRIBUTES) one of whose identifying values has a run
    of ``n`` consecutive characters in ``text`` (e.g. what OCR read around a masked line),
    compared on letters and digits only, case-insensitively: a surname masked in pieces leaves
    "ALLI" of "McAllister" readable, which the whole-value search does not see. OCR reads spaces
    into a word and punctuation between its letters, so both sides are compared without them."""
    hay = _ALNUM.sub("", text.lower())
    if len(hay) < n:
        return []
    out: list[str] = []
    for term, kw, _whole in terms:
        if kw not in PIXEL_SPAN_ATTRIBUTES or kw in out:
            continue
        t = _ALNUM.sub("", term.lower())
        if len(t) >= n and any(t[i:i + n] in hay for i in range(len(t) - n + 1)):
            out.append(kw)
    return out
