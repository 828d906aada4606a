"""Free-text scrubbing for attributes kept under Clean Descriptors: remove every identifying
value known from the same object and patient, then date-, phone- and ID-shaped tokens."""
from __future__ import annotations

import re

from deid.phi import PhiValues, find_term

_DATE_SHAPED = re.compile(
    r"(?<![0-9])(?:(?:19|20)\d{2}[-/.]?(?:0[1-9]|1[0-2])[-/.]?(?:0[1-9]|[12]\d|3[01])"
    r"|(?:0?[1-9]|[12]\d|3[01])[-/.](?:0?[1-9]|1[0-2])[-/.](?:19|20)?\d{2}"
    r"|(?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\d|3[01])[-/.](?:19|20)?\d{2}"
    r"|\d{1,2}[ -]?(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*[ -]?(?:19|20)?\d{2})(?![0-9])",
    re.IGNORECASE,
)
_PHONE_SHAPED = re.compile(r"(?<![\w.])\+?\(?\d{2,4}\)?[\s.-]\d{2,4}[\s.-]\d{3,5}(?![\w.])")
_ID_SHAPED = re.compile(r"(?<![\w.])(?=[A-Za-z\-]*\d)(?:[A-Za-z]{0,4}[-#]?\d{5,}[A-Za-z0-9]*)(?![\w.])")
_SPACES = re.compile(r"\s{2,}")


def scrub_text(value: str, phi: PhiValues, terms: list[tuple[str, str, bool]] | None = None) -> tuple[str, int]:
    """Return (scrubbed value, number of removals). Removed spans are cut out, not starred, so a
    cleaned SeriesDescription stays readable for series classification."""
    if not value:
        return value, 0
    n = 0
    out = value
    low = out.lower()
    for term, _kw, whole in terms if terms is not None else phi.terms():
        if term not in low:
            continue
        i = find_term(low, term, whole)
        while i != -1:
            out = out[:i] + out[i + len(term):]
            low = low[:i] + low[i + len(term):]
            n += 1
            i = find_term(low, term, whole, i)
    for pattern in (_DATE_SHAPED, _PHONE_SHAPED, _ID_SHAPED):
        out, k = pattern.subn("", out)
        n += k
    if n:
        out = _SPACES.sub(" ", out).strip(" ,;:-_^/")
    return out, n
