"""The identifying values of one source object: what scrubbing removes from kept free text and
what the leak scanner searches for in every output byte.

An identifying value is a name (PN), a date (DA, DT), a source UID, or the value of an
identifier-like attribute (IDs, numbers, addresses, phones, institution, station, AE titles)
that the profile does not keep. Values are kept lowercased; short values need word boundaries
so that a 5-digit ID does not "match" inside an unrelated number."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

#: Whole values shorter than this are matched only as whole words (both sides non-alphanumeric).
SUBSTRING_MIN = 8
#: Shorter tokens are never searched: too many chance hits (e.g. "LI", "MR").
WORD_MIN = 3
_SPLIT = re.compile(r"[\^\s,.;:/\\_()\[\]\"'-]+")
_STANDARD_UID_ROOT = "1.2.840.10008."

# Words of institution names and addresses that identify nobody on their own: institution
# words, and street designators (USPS Publication 28 suffixes, full and abbreviated). "Row" as
# in "Old Mill Row" is also the MR defined term InPlanePhaseEncodingDirection ROW, so searching
# it alone quarantined whole sagittal series (synthetic site, seed 7). The full address and its
# other words are still searched.
STOPWORDS = frozenset(
    """the and for of des der die und van von hospital hospitals clinic clinics centre center
    medical medicine university universitat universite department dept radiology imaging
    institute health healthcare general street road avenue lane drive suite floor building
    saint city county state north south east west new old mri scanner room unit
    str ave rd dr ln blvd boulevard way row court crt crescent cres terrace ter place plz plaza
    square sq close circle cir loop trail trl parkway pkwy highway hwy alley aly walk mews
    apt apartment box""".split()
)
# Name particles: the only words of a person name too common to search alone (a patient called
# Lane or West is still searched by that word).
NAME_PARTICLES = frozenset("van von der den des die del della dos das ter ten".split())

_IDENTIFIER_KEYWORD = re.compile(
    r"(ID|IDs|Identifier|Number|Numbers|Address|Telephone|Telecom|Institution|InstitutionName|"
    r"StationName|Title|Email|Location|Name|Names|Locator|Coordinates)$"
)
_NOT_IDENTIFIER = frozenset(
    {
        "SeriesNumber", "InstanceNumber", "AcquisitionNumber", "ProtocolName", "SequenceName",
        "CodeMeaning", "CodeValue", "ConceptNameCodeSequence", "ReferencedFrameNumber",
        "TemporalPositionIdentifier", "StackID", "InStackPositionNumber", "EchoNumbers",
        "TemporalPositionIndex", "ImagesInAcquisition", "NumberOfFrames", "ReferencedSegmentNumber",
        "SegmentNumber", "DimensionIndexPointer", "RescaleType", "ContentLabel", "TransferSyntaxUID",
        "ImplementationVersionName", "SOPClassUID", "MediaStorageSOPClassUID", "ManufacturerModelName",
        "Manufacturer", "SoftwareVersions", "StudyID", "LUTLabel", "SeriesInstanceUID",
    }
)


def is_identifier_keyword(keyword: str) -> bool:
    return bool(keyword) and keyword not in _NOT_IDENTIFIER and bool(_IDENTIFIER_KEYWORD.search(keyword))


_NOT_ALNUM = re.compile(r"[^0-9a-z]")
_SKIPPED_VRS = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "IS", "DS", "AS", "CS", "SQ"})


@lru_cache(maxsize=4096)
def date_variants(da: str) -> tuple[str, ...]:
    """A DA value in the formats people type into free text and burn into pixels (cached: a
    series repeats the same few dates in every object)."""
    d = da.strip().replace(".", "")
    if len(d) != 8 or not d.isdigit():
        return ()
    y, m, dd = d[:4], d[4:6], d[6:]
    return (d, f"{y}-{m}-{dd}", f"{y}/{m}/{dd}", f"{y}.{m}.{dd}", f"{m}/{dd}/{y}", f"{dd}/{m}/{y}",
            f"{dd}.{m}.{y}", f"{dd}-{m}-{y}", f"{m}-{dd}-{y}")


@dataclass
class PhiValues:
    """Identifying values of one object (and its patient), lowercased, with where they came from."""

    strings: dict[str, str] = field(default_factory=dict)  # value -> attribute keyword
    words: dict[str, str] = field(default_factory=dict)

    def add(self, keyword: str, vr: str, value: object) -> None:
        if value is None or value == "":
            return
        if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            self.add_texts(keyword, vr, [v for v in value if v is not None and v != ""])  # type: ignore[union-attr]
            return
        self.add_texts(keyword, vr, [value])

    def add_texts(self, keyword: str, vr: str, values: list) -> None:
        """``add`` for the values of one element at once (the header walk's call: one dispatch
        on the VR per element, not per value)."""
        if vr in _SKIPPED_VRS:
            return
        strings, words = self.strings, self.words
        for value in values:
            if isinstance(value, (bytes, bytearray)):
                continue
            if type(value) is not str:
                value = str(value)
            key = (keyword, vr, value)
            derived = _derived.get(key)
            if derived is None:
                derived = _derive(keyword, vr, value)
                if len(_derived) >= _DERIVED_MAX:
                    _derived.clear()
                _derived[key] = derived
            for x in derived[0]:
                strings.setdefault(x, keyword)
            for w in derived[1]:
                words.setdefault(w, keyword)

    def update(self, other: "PhiValues") -> None:
        for k, v in other.strings.items():
            self.strings.setdefault(k, v)
        for k, v in other.words.items():
            self.words.setdefault(k, v)

    def terms(self) -> list[tuple[str, str, bool]]:
        """(term, attribute, whole_word) sorted longest first (scrubbing removes long ones first)."""
        out = [(s, k, len(s) < SUBSTRING_MIN) for s, k in self.strings.items()]
        out += [(w, k, True) for w, k in self.words.items() if w not in self.strings]
        out.sort(key=lambda t: -len(t[0]))
        return out


#: what one value of one attribute adds, by (keyword, VR, value): the values of a series repeat
#: in every object (names, dates, institution), and deriving them costs ~2 us a value
_derived: dict[tuple[str, str, str], tuple[tuple[str, ...], tuple[str, ...]]] = {}
_DERIVED_MAX = 65536  # cleared when full: a site's UIDs are unique to their object


def _derive(keyword: str, vr: str, value: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The strings (searched as they are) and words (searched alone) one value of ``keyword``
    (VR ``vr``) adds, in the order they are added."""
    s = value.strip(" \x00")
    strings: list[str] = []
    words: list[str] = []
    if not s:
        return (), ()
    if vr == "PN":
        low = s.lower()
        strings.append(low)
        words += _words(low, NAME_PARTICLES)
    elif vr == "DA":
        strings += date_variants(s)
    elif vr == "DT":
        strings += date_variants(s[:8])
    elif vr == "UI":
        if len(s) >= 10 and not s.startswith(_STANDARD_UID_ROOT):
            strings.append(s.lower())
    elif vr == "TM":
        if len(s) >= 6 and s[:6].isdigit():
            strings.append(s[:6])
            if len(s) > 6:
                strings.append(s.lower())
    else:
        low = s.lower()
        if len(low) >= 4 or (len(low) >= WORD_MIN and any(c.isdigit() for c in low)):
            strings.append(low)
        if not (low.isascii() and low.isalnum()):
            compact = _NOT_ALNUM.sub("", low)
            if compact != low and len(compact) >= 6:
                strings.append(compact)
        if "Address" in keyword or keyword in ("InstitutionName", "InstitutionalDepartmentName"):
            words += _words(low, STOPWORDS)
    return tuple(strings), tuple(words)


def _words(low: str, common: frozenset[str]) -> list[str]:
    """The tokens of ``low`` searched alone: >= WORD_MIN characters, not all digits, not ``common``."""
    return [tok for tok in _SPLIT.split(low) if len(tok) >= WORD_MIN and tok not in common and not tok.isdigit()]


def _is_boundary(text: str | bytes, i: int) -> bool:
    if i < 0 or i >= len(text):
        return True
    c = text[i]
    if isinstance(c, int):
        return not (48 <= c <= 57 or 97 <= c <= 122 or 65 <= c <= 90)
    return not c.isalnum()


def find_term(hay: str | bytes, term: str | bytes, whole_word: bool, start: int = 0, end: int | None = None) -> int:
    """Index of ``term`` in lowercased ``hay`` (respecting word boundaries when asked), or -1."""
    end = len(hay) if end is None else end
    i = hay.find(term, start, end)  # type: ignore[arg-type]
    while i != -1:
        if not whole_word or (_is_boundary(hay, i - 1) and _is_boundary(hay, i + len(term))):
            return i
        i = hay.find(term, i + 1, end)  # type: ignore[arg-type]
    return -1
