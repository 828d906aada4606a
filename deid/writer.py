"""A lean Part 10 dataset writer for the de-identifier's output.

pydicom's ``write_dataset`` spends ~10 us per element on buffers and checks even when the element
is still raw (its bytes unchanged or rewritten raw by ``deid.header``). Here raw elements of
defined length are copied with a struct-packed header; sequences are written with undefined
lengths (always valid); every other element goes through pydicom's own ``write_data_element``."""
from __future__ import annotations

import struct

from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element

_LONG = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
_ITEM = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
_ITEM_END = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
_SEQ_END = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)


def write_le(fp: DicomBytesIO, ds: Dataset, implicit: bool, encodings) -> None:
    """Write ``ds`` (little endian, explicit or implicit VR) to ``fp``."""
    pack = struct.pack
    write = fp.write
    charset = getattr(ds, "_character_set", None) or encodings
    for elem in ds.elements():
        tag = int(elem.tag)
        if elem.is_raw and elem.length != 0xFFFFFFFF and (implicit or elem.VR not in (None, "SQ")):
            value = elem.value or b""
            vr = elem.VR
            if implicit:
                write(pack("<HHI", tag >> 16, tag & 0xFFFF, len(value)))
            elif vr in _LONG:
                write(pack("<HH2sHI", tag >> 16, tag & 0xFFFF, vr.encode(), 0, len(value)))
            elif len(value) > 0xFFFF:
                write(pack("<HH2sHI", tag >> 16, tag & 0xFFFF, b"UN", 0, len(value)))
            else:
                write(pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), len(value)))
            write(value)
            continue
        if not elem.is_raw and elem.VR == "SQ":
            if implicit:
                write(pack("<HHI", tag >> 16, tag & 0xFFFF, 0xFFFFFFFF))
            else:
                write(pack("<HH2sHI", tag >> 16, tag & 0xFFFF, b"SQ", 0, 0xFFFFFFFF))
            for item in elem.value:
                write(_ITEM)
                write_le(fp, item, implicit, charset)
                write(_ITEM_END)
            write(_SEQ_END)
            continue
        write_data_element(fp, ds[tag] if elem.is_raw else elem, charset)
