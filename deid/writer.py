"""A lean Part 10 writer for the de-identifier's output.

pydicom's ``write_file_meta_info`` and ``write_dataset`` spend ~10 us per element on buffers,
validation and value conversion. Here the file meta group is packed directly; raw elements of
defined length (unchanged, or rewritten raw by ``deid.header``) are copied with a struct-packed
header; converted elements of the common VRs (numbers, ASCII text, byte values) are encoded
here; sequences are written with undefined lengths (always valid); anything else goes through
pydicom's own ``write_data_element``.

The writer visits every element it writes, so it also reports the tags the structure check
forbids (private, curves, overlays) at any depth: the verification needs no second walk."""
from __future__ import annotations

import struct
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.multival import MultiValue

_LONG = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
_ITEM = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
_ITEM_END = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
_SEQ_END = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
_NUMERIC = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d"}
#: Text VRs whose value is written as is (DS, IS and PN have their own formatting: pydicom's)
_PLAIN_TEXT = frozenset({"AE", "AS", "CS", "DA", "DT", "LO", "LT", "SH", "ST", "TM", "UC", "UI", "UR", "UT"})
_BYTES = frozenset({"OB", "OW", "UN"})
_implicit_sq: dict[int, bool] = {}


def file_meta_bytes(sop_class: str, sop_instance: str, transfer_syntax: str, impl_uid: str, impl_version: str) -> bytes:
    """Group 0002 (Explicit VR Little Endian) with its group length: the complete meta this
    de-identifier writes (nothing of the source's meta beyond these values is kept)."""
    body = _explicit(0x00020001, "OB", b"\x00\x01")
    for tag, vr, value in ((0x00020002, "UI", sop_class), (0x00020003, "UI", sop_instance),
                           (0x00020010, "UI", transfer_syntax), (0x00020012, "UI", impl_uid),
                           (0x00020013, "SH", impl_version)):
        if value:
            body += _explicit(tag, vr, _pad(value.encode("ascii"), vr))
    return _explicit(0x00020000, "UL", struct.pack("<I", len(body))) + body


def _pad(b: bytes, vr: str) -> bytes:
    return b + (b"\x00" if vr in ("UI", "OB", "OW", "UN") else b" ") if len(b) & 1 else b


def _explicit(tag: int, vr: str, value: bytes) -> bytes:
    if vr in _LONG:
        return struct.pack("<HH2sHI", tag >> 16, tag & 0xFFFF, vr.encode(), 0, len(value)) + value
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), len(value)) + value


def _value_bytes(vr: str, value: Any) -> bytes | None:
    """The encoded value of a converted element of a common VR, or None (pydicom encodes it)."""
    try:
        if vr in _NUMERIC:
            if value is None or value == "":
                return b""
            if isinstance(value, (list, tuple, MultiValue)):
                return struct.pack(f"<{len(value)}{_NUMERIC[vr]}", *value)
            return struct.pack("<" + _NUMERIC[vr], value)
        if vr in _PLAIN_TEXT:
            if value is None:
                return b""
            if isinstance(value, str):
                text = value
            elif isinstance(value, (list, tuple, MultiValue)) and all(isinstance(v, str) for v in value):
                text = "\\".join(value)
            else:
                return None
            if not text.isascii():  # other characters: pydicom applies the character set
                return None
            return _pad(text.encode("ascii"), vr)
        if vr in _BYTES and isinstance(value, bytes):
            return _pad(value, vr)
    except (struct.error, TypeError):
        return None
    return None


def _is_sq(elem: Any, implicit: bool) -> bool:
    vr = elem.VR
    if vr == "SQ":
        return True
    if vr is None and implicit:
        tag = int(elem.tag)
        known = _implicit_sq.get(tag)
        if known is None:
            try:
                known = dictionary_VR(tag) == "SQ"
            except KeyError:
                known = False
            _implicit_sq[tag] = known
        return known
    return False


def pixel_value_start(data: bytes, at: int, implicit: bool) -> int:
    """Where the value of the element written at ``at`` begins: after its 8-byte header, 12 for
    the explicit VRs with a 4-byte length (as this module and pydicom write them)."""
    return at + (8 if implicit or data[at + 4:at + 6].decode("latin-1") not in _LONG else 12)


def write_le(fp: DicomBytesIO, ds: Dataset, implicit: bool, encodings: Any, flagged: list[str] | None = None,
             path: str = "", pixel_at: list[int] | None = None) -> None:
    """Write ``ds`` (little endian, explicit or implicit VR) to ``fp``; the paths of private,
    curve and overlay elements written (any depth) are appended to ``flagged``. ``pixel_at``:
    the offset in ``fp`` of the dataset's Pixel Data (7FE0,0010) element is appended to it
    (``pixel_value_start`` then says where its value begins: the verification need not search
    the whole object for the tag)."""
    pack = struct.pack
    write = fp.write
    charset = None  # resolved when first needed: pydicom's _character_set reads the dataset
    d = ds._dict
    for key in sorted(d, key=int):  # key=int: BaseTag's own comparisons are Python calls
        elem = d[key]
        tag = int(key)
        g = tag >> 16
        if flagged is not None and (g & 1 or (g & 0xFF00) in (0x5000, 0x6000)):
            flagged.append(f"{path}({g:04X},{tag & 0xFFFF:04X})")
        if tag == 0x7FE00010 and pixel_at is not None:
            pixel_at.append(fp.tell())
        if elem.is_raw:
            if elem.length == 0xFFFFFFFF or _is_sq(elem, implicit) or (elem.VR is None and not implicit):
                # undefined length, a sequence, or no VR to write (read as implicit VR from a file
                # that declares explicit): pydicom converts it
                elem = ds[key]
                value = None
            else:
                value = elem.value or b""
        else:
            value = None
        if value is None and elem.VR != "SQ" and not getattr(elem, "is_undefined_length", False):
            value = _value_bytes(elem.VR, elem.value)
        if value is not None:
            vr = elem.VR
            if implicit:
                write(pack("<HHI", g, tag & 0xFFFF, len(value)))
            elif vr in _LONG:
                write(pack("<HH2sHI", g, tag & 0xFFFF, vr.encode(), 0, len(value)))
            elif len(value) > 0xFFFF:
                write(pack("<HH2sHI", g, tag & 0xFFFF, b"UN", 0, len(value)))
            else:
                write(pack("<HH2sH", g, tag & 0xFFFF, vr.encode(), len(value)))
            write(value)
            continue
        if elem.VR == "SQ":
            if implicit:
                write(pack("<HHI", g, tag & 0xFFFF, 0xFFFFFFFF))
            else:
                write(pack("<HH2sHI", g, tag & 0xFFFF, b"SQ", 0, 0xFFFFFFFF))
            if charset is None:
                charset = getattr(ds, "_character_set", None) or encodings
            for i, item in enumerate(elem.value):
                write(_ITEM)
                write_le(fp, item, implicit, charset, flagged, f"{path}({g:04X},{tag & 0xFFFF:04X})[{i}].")
                write(_ITEM_END)
            write(_SEQ_END)
            continue
        if charset is None:
            charset = getattr(ds, "_character_set", None) or encodings
        write_data_element(fp, elem, charset)
