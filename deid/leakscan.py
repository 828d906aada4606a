"""Count identifying values left in DICOM files: the scanner the tests and the benchmark use on
any tool's output, given the list of values planted in (or read from) the source.

Same matching rules as verification: case-insensitive; values shorter than 8 characters must
stand as whole words; inside the Pixel Data value only values of >= 8 characters are searched.
Both the raw bytes and every decoded text value (file meta, sequences, private) are searched."""
from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass

import pydicom

from deid.phi import SUBSTRING_MIN, find_term
from deid.profile import CID_7050
from deid.verify import pixel_value_span


@dataclass(frozen=True)
class Leak:
    value_index: int  # index into the values given (the value itself is not repeated)
    where: str  # "bytes" or an attribute path


#: Public constants a de-identifier writes (CID 7050 code values such as 113100): a source value
#: that happens to equal one (a time of day 11:31:00) is not counted when found.
PUBLIC_CONSTANTS = frozenset(code for code, _ in CID_7050.values())


def _terms(values: Iterable[str]) -> list[tuple[int, str, bool]]:
    out = []
    for i, v in enumerate(values):
        t = str(v).strip().lower()
        if len(t) >= 3 and t not in PUBLIC_CONSTANTS:
            out.append((i, t, len(t) < SUBSTRING_MIN))
    return out


def _walk(ds, prefix: str = ""):
    for elem in ds:
        where = f"{prefix}({elem.tag.group:04X},{elem.tag.element:04X})"
        if elem.VR == "SQ":
            for j, item in enumerate(elem.value or ()):
                yield from _walk(item, f"{where}[{j}].")
        elif elem.VR in ("OB", "OW", "UN", "OF", "OD", "OL", "OV") or elem.tag == 0x7FE00010:
            continue
        else:
            v = elem.value
            if isinstance(v, bytes):
                v = v.decode("latin-1")
            yield where, str(v)


def scan_file(data: bytes, values: Iterable[str]) -> list[Leak]:
    """Every value of ``values`` found in one file (bytes and decoded elements)."""
    terms = _terms(values)
    low = data.lower()
    p0, p1 = pixel_value_span(low)
    found: dict[int, Leak] = {}
    for i, t, whole in terms:
        tb = t.encode("utf-8", "ignore")
        hit = find_term(low, tb, whole, 0, p0) != -1 or (p1 < len(low) and find_term(low, tb, whole, p1) != -1)
        if not hit and len(tb) >= SUBSTRING_MIN and p0 < p1:
            hit = find_term(low, tb, whole, p0, p1) != -1
        if hit:
            found[i] = Leak(i, "bytes")
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception:
        return list(found.values())
    texts = list(_walk(ds.file_meta, "meta")) if getattr(ds, "file_meta", None) is not None else []
    texts += list(_walk(ds))
    for where, text in texts:
        lt = text.lower()
        for i, t, whole in terms:
            if i not in found and find_term(lt, t, whole) != -1:
                found[i] = Leak(i, where)
    return list(found.values())
