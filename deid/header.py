"""One pass over a dataset (recursing into every sequence) applying the compiled profile: every
element gets exactly one action from a precomputed tag -> action lookup, so the cost per file is
one dictionary hit per element plus work only where values change."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from deid.dates import shift_da, shift_dt
from deid.phi import PhiValues, is_identifier_keyword
from deid.private import keep_private, private_creators
from deid.profile import Plan
from deid.pseudonym import Pseudonymizer
from deid.scrub import clean_comment, scrub_text
from deid.sequence import sequence_value

TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC", "PN", "AE", "CS", "UR", "AS"})
FREE_TEXT_VRS = frozenset({"ST", "LT", "UT"})
_PLAIN_TEXT_VRS = frozenset({"AE", "CS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"})
_CLEANED_TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC", "CS"})
_STANDARD_UID_ROOT = "1.2.840.10008."
_DUMMY = {
    "PN": "ANONYMOUS", "LO": "ANONYMIZED", "SH": "ANONYMIZED", "LT": "ANONYMIZED", "ST": "ANONYMIZED",
    "UT": "ANONYMIZED", "UC": "ANONYMIZED", "CS": "ANONYMIZED", "AE": "ANONYMOUS", "DA": "19000101",
    "DT": "19000101000000", "TM": "000000", "IS": "0", "DS": "0", "AS": "000Y", "UR": "",
}

_unlisted_cache: dict[tuple[int, str], str] = {}
#: date shifts are pure functions of (value, days[, seconds]): a series repeats the same dates
_shift_da = lru_cache(maxsize=65536)(shift_da)
_shift_dt = lru_cache(maxsize=65536)(shift_dt)
_kw_cache: dict[int, str] = {}


def _keyword(tag: int) -> str:
    kw = _kw_cache.get(tag)
    if kw is None:
        kw = _kw_cache[tag] = keyword_for_tag(tag) or f"{tag:08X}"
    return kw


#: the dictionary's VR of a tag (first of "US or SS"), "UN" when it has none: implicit VR files
#: ask for every element, and pydicom's lookup costs ~3 us
_dict_vr_cache: dict[int, str] = {}


def _vr_of(elem: Any) -> str:
    """The element's VR; the dictionary's where the file gave none (implicit VR) or UN (some
    writers store known attributes as UN: a UID written as UN is still remapped)."""
    vr = elem.VR
    if not vr or vr == "UN":
        tag = int(elem.tag)  # an int key: a BaseTag compares through a Python-level __eq__
        vr = _dict_vr_cache.get(tag)
        if vr is None:
            try:
                vr = dictionary_VR(tag)
            except KeyError:
                vr = "UN"
            vr = _dict_vr_cache[tag] = vr.split(" or ")[0] if " or " in vr else vr
        return vr
    return vr.split(" or ")[0] if " or " in vr else vr


def _texts(ds: Dataset, tag: int) -> list[str]:
    elem = ds.get_item(tag)
    return [] if elem is None else _texts_of(elem)


def texts_of(elem: Any) -> list[str]:
    """An element's values as text. Raw elements are decoded as latin-1 without pydicom's value
    conversion (the costly part of a pass); latin-1 round-trips every byte, so a cleaned value
    written back keeps any other character set intact."""
    if elem.is_raw:
        v = elem.value
        if not v:
            return []
        if b"\\" not in v:
            return [v.decode("latin-1").strip(" \x00")]
        return [x.strip(" \x00") for x in v.decode("latin-1").split("\\")]
    v = elem.value
    if v is None or v == "":
        return []
    if isinstance(v, (list, tuple)) or type(v).__name__ == "MultiValue":
        return [str(x) for x in v]
    return [str(v)]


_texts_of = texts_of


def _put(ds: Dataset, tag: int, vr: str, values: list[str], enc: tuple, key: BaseTag | None = None) -> None:
    """Store text values as a raw element in the dataset's own encoding (written as is).
    ``key``: the dataset's own key object for ``tag`` (an int or a new BaseTag costs a Python-level
    ``BaseTag.__eq__`` call in the dict lookup)."""
    text = "\\".join(values)
    try:
        b = text.encode("latin-1")
    except UnicodeEncodeError:
        ds[tag] = DataElement(tag, vr, values[0] if len(values) == 1 else values)
        return
    if len(b) % 2:
        b += b"\x00" if vr == "UI" else b" "
    if key is None:
        key = BaseTag(tag)
    ds._dict[key] = RawDataElement(key, vr, len(b), b, 0, enc[0], enc[1])


def _unlisted_action(tag: int, vr: str, shifting: bool) -> str:
    """Attributes Table E.1-1 does not list: names go, dates shift or go, non-standard UIDs are
    remapped (keeps references whatever attribute holds them), long free text is cleaned,
    short text is cleaned of known values ('c'), everything else is kept."""
    key = (tag, vr)
    a = _unlisted_cache.get(key)
    if a is None:
        if vr == "PN":
            a = "X"
        elif vr in ("DA", "DT"):
            a = "C" if shifting else "X"
        elif vr == "UI":
            a = "u"
        elif vr in FREE_TEXT_VRS:
            a = "C"
        elif vr in ("LO", "SH", "UC"):
            a = "c"
        else:
            a = "K"
        _unlisted_cache[key] = a
    return a


def text_value(ds: Dataset, tag: int) -> str:
    """``str(ds.get(tag, "") or "")`` without pydicom's value conversion (~20 us an element) for
    the common case, a single ASCII value; anything else goes through pydicom unchanged."""
    elem = ds._dict.get(tag)
    if elem is None:
        return ""
    if elem.is_raw and _vr_of(elem) in _PLAIN_TEXT_VRS:
        v = elem.value
        if isinstance(v, bytes) and v.isascii() and b"\\" not in v:
            return v.decode("ascii").strip(" \x00")
    return str(ds[tag].value or "")


def int_value(ds: Dataset, tag: int, vr: str) -> int | None:
    """``int(ds[tag].value)`` of a single-valued US or IS attribute (``vr``), None when it is
    absent or empty, without pydicom's keyword lookup and value conversion (~20-50 us each, and
    the pixel step reads about ten per file) in the common case: a raw little-endian value of
    that VR. Anything else goes through pydicom unchanged."""
    elem = ds._dict.get(tag)
    if elem is None:
        return None
    if elem.is_raw and elem.VR in (None, vr):
        v = elem.value
        if vr == "US" and isinstance(v, bytes) and len(v) == 2 and ds.original_encoding[1] is True:
            return int.from_bytes(v, "little")
        if vr == "IS" and isinstance(v, bytes) and v.strip(b" \x00").isdigit():
            return int(v.strip(b" \x00"))
    value = ds[tag].value
    return None if value is None or value == "" else int(value)


def patient_key(ds: Dataset) -> str:
    """The identity a pseudonym is derived from: PatientID, else name + birth date, else the study."""
    pid = text_value(ds, 0x00100020).strip()
    if pid:
        return "id:" + pid
    name = str(ds.get("PatientName", "") or "").strip()
    if name:
        return f"name:{name}|{ds.get('PatientBirthDate', '')}"
    return "study:" + str(ds.get("StudyInstanceUID", "") or "")


@dataclass
class HeaderContext:
    plan: Plan
    pseudo: Pseudonymizer
    patient_key: str
    shift_days: int | None
    safe_private: frozenset
    phi: PhiValues = field(default_factory=PhiValues)
    counts: Counter = field(default_factory=Counter)
    terms: list = field(default_factory=list)
    seconds_shift: int = 0
    enc: tuple = (False, True)  # (implicit VR, little endian) of the source
    #: values this run writes itself (CID 7050 code values): never identifying, never searched
    constants: frozenset = frozenset()
    #: text elements to clean once every identifying value of the object is known
    deferred: list = field(default_factory=list)
    #: the keyed-hash UIDs written into this object (random digits: the leak scan masks them)
    new_uids: set = field(default_factory=set)


_NAME_DATE_UID_VRS = frozenset({"PN", "DA", "DT", "UI", "TM"})
_collect_cache: dict[tuple[int, str, str | None], bool] = {}


def _collects(tag: int, vr: str, action: str | None) -> bool:
    """Whether an element's value is an identifying value of the object: names, dates, times and
    UIDs wherever they are (unless kept), identifier-like attributes the profile changes."""
    key = (tag, vr, action)
    c = _collect_cache.get(key)
    if c is None:
        if action == "K":
            c = False
        elif vr in _NAME_DATE_UID_VRS:
            c = True
        else:
            c = action is not None and action != "C" and is_identifier_keyword(_keyword(tag))
        _collect_cache[key] = c
    return c


def collect_phi(ds: Dataset, plan: Plan, phi: PhiValues) -> None:
    """Gather the identifying values of ``ds`` (all levels) without changing it: for sequences
    the profile empties or replaces, whose values may still appear elsewhere in the object."""
    d = ds._dict
    for key in sorted(d, key=int):  # key=int: BaseTag's own comparisons are Python calls
        elem = d[key]
        tag = int(key)
        group = tag >> 16
        if group & 1 or group == 0x0002:
            continue
        vr = _vr_of(elem)
        action = plan.exact.get(tag)
        if vr == "SQ":
            if action != "X":
                for item in sequence_value(ds, key) or ():
                    collect_phi(item, plan, phi)
        elif _collects(tag, vr, action):
            phi.add_texts(_keyword(tag), vr, _texts_of(elem))


def apply_plan(ds: Dataset, ctx: HeaderContext) -> None:
    """Apply the profile to ``ds`` in place, recursing into sequences, in one walk: each
    element's identifying value is gathered before its action runs; kept free text is cleaned
    after the walk, when the values of the whole object (later tags included) are known."""
    _walk(ds, ctx)
    for code in ctx.constants:
        ctx.phi.strings.pop(code, None)
    ctx.terms = ctx.phi.terms()
    for item, tag, vr, patterns, key, elem in ctx.deferred:
        _clean_text(item, tag, vr, ctx, patterns, key, elem)
    ctx.deferred.clear()


def _dispatch(plan: Plan, tag: int, vr: str, shifting: bool) -> tuple[str | None, bool, str, str]:
    """What the walk does with an element, decided once per (tag, VR) and profile: (the table's
    action or None, whether its value is an identifying value to gather, the action to run ("O":
    curve/overlay group, removed whole), the counter naming the deciding column)."""
    group = tag >> 16
    table_action = plan.exact.get(tag)
    collect = vr != "SQ" and group != 0x0002 and _collects(tag, vr, table_action)
    if (group & 0xFF00) in (0x5000, 0x6000):
        return table_action, collect, "O", "X"
    if table_action is None:
        return table_action, collect, _unlisted_action(tag, vr, shifting), "by:unlisted"
    return table_action, collect, table_action, "by:" + plan.source[tag]


def _walk(ds: Dataset, ctx: HeaderContext) -> None:
    plan = ctx.plan
    dispatch = plan.dispatch
    phi = ctx.phi
    counts = ctx.counts
    shifting = ctx.shift_days is not None
    d = ds._dict
    creators = None
    kept_private_blocks: set[tuple[int, int]] = set()
    private_creator_tags: list[int] = []
    for key in sorted(d, key=int):  # key=int: BaseTag's own comparisons are Python calls
        elem = d[key]
        tag = int(key)  # int keys: a BaseTag looked up in an int-keyed dict calls BaseTag.__eq__
        group = tag >> 16
        if group & 1:
            e = tag & 0xFFFF
            if 0x0010 <= e <= 0x00FF:
                private_creator_tags.append(tag)
                continue
            if plan.private == "C":
                if creators is None:
                    creators = private_creators(ds)
                if keep_private(tag, creators, ctx.safe_private):
                    kept_private_blocks.add((group, e >> 8))
                    counts["private_kept"] += 1
                    continue
            del d[key]
            counts["private_removed"] += 1
            continue
        vr = elem.VR
        if not vr or vr == "UN" or len(vr) != 2:
            vr = _vr_of(elem)
        disp = dispatch.get((tag, vr, shifting))
        if disp is None:
            disp = dispatch[(tag, vr, shifting)] = _dispatch(plan, tag, vr, shifting)
        table_action, collect, action, by = disp
        if vr == "SQ":
            if table_action in ("Z", "D", "P"):
                # emptied or replaced: its values may appear elsewhere, gather them first
                for item in sequence_value(ds, key) or ():
                    collect_phi(item, plan, phi)
        elif collect:
            phi.add_texts(_keyword(tag), vr, _texts_of(elem))
        if action == "O":
            # Curves and overlays, the whole repeating group (Overlay Description included,
            # which Table E.1-1 does not list).
            del d[key]
            counts["X"] += 1
            continue
        counts[by] += 1
        if action == "K":
            if vr == "SQ":
                for item in sequence_value(ds, key) or ():
                    _walk(item, ctx)
            counts["K"] += 1
        elif action == "X":
            del d[key]
            counts["X"] += 1
        elif action == "Z":
            _set_empty(ds, tag, vr, ctx.enc, key)
            counts["Z"] += 1
        elif action == "U" or action == "u":
            if vr == "UI":
                values = _texts_of(elem)
                if values:
                    _put(ds, tag, vr, _remap_uids(values, ctx), ctx.enc, key)
                counts["U"] += 1
            elif vr == "SQ":
                for item in sequence_value(ds, key) or ():
                    _walk(item, ctx)
                counts["K"] += 1
            else:
                _set_empty(ds, tag, vr, ctx.enc, key)
                counts["Z"] += 1
        elif action == "D":
            _dummy(ds, tag, vr, ctx)
            counts["D"] += 1
        elif action == "P":
            _pseudonymise(ds, tag, vr, ctx)
            counts["P"] += 1
        elif action in ("C", "c"):
            _clean(ds, tag, vr, ctx, action == "C", key, elem)
        else:  # pragma: no cover - table codes are validated at compile time
            raise ValueError(f"unknown action {action!r} for attribute {tag:08X}")
    for tag in private_creator_tags:
        g, e = tag >> 16, tag & 0xFFFF
        if (g, e) not in kept_private_blocks:
            del d[tag]
            counts["private_removed"] += 1


def _set_empty(ds: Dataset, tag: int, vr: str, enc: tuple = (False, True), key: BaseTag | None = None) -> None:
    if vr == "SQ":
        ds[tag] = DataElement(tag, "SQ", Sequence())
    else:
        if key is None:
            key = BaseTag(tag)
        ds._dict[key] = RawDataElement(key, vr, 0, b"", 0, enc[0], enc[1])


def _remap_uids(values: list[str], ctx: HeaderContext) -> list[str]:
    """New UIDs for every non-standard UID; each one made is remembered in ``ctx.new_uids``."""
    out = []
    for u in values:
        u = str(u).strip("\x00 ")
        if u and not u.startswith(_STANDARD_UID_ROOT):
            u = ctx.pseudo.uid(u)
            ctx.new_uids.add(u)
        out.append(u)
    return out


def _dummy(ds: Dataset, tag: int, vr: str, ctx: HeaderContext) -> None:
    if vr == "UI":
        _put(ds, tag, vr, _remap_uids(_texts(ds, tag), ctx), ctx.enc)
    elif vr == "SQ":
        ds[tag] = DataElement(tag, "SQ", Sequence())
    elif vr in ("DA", "DT") and ctx.shift_days is not None:
        _clean(ds, tag, vr, ctx, patterns=True)
    elif vr in _DUMMY:
        _put(ds, tag, vr, [_DUMMY[vr]], ctx.enc)
    else:
        _set_empty(ds, tag, vr, ctx.enc)


def _pseudonymise(ds: Dataset, tag: int, vr: str, ctx: HeaderContext) -> None:
    kw = _keyword(tag)
    if kw == "PatientName":
        _put(ds, tag, "PN", [ctx.pseudo.patient_name(ctx.patient_key)], ctx.enc)
    elif kw == "PatientID":
        _put(ds, tag, vr, [ctx.pseudo.patient_id(ctx.patient_key)], ctx.enc)
    elif vr == "UI":
        _dummy(ds, tag, vr, ctx)
    elif vr in ("LO", "SH", "CS", "AE", "LT", "ST", "UT", "UC", "PN"):
        v = "\\".join(_texts(ds, tag))
        _put(ds, tag, vr, [ctx.pseudo.token(kw or str(tag), v)] if v else [], ctx.enc)
    else:
        _set_empty(ds, tag, vr, ctx.enc)


def _clean(ds: Dataset, tag: int, vr: str, ctx: HeaderContext, patterns: bool,
           key: BaseTag | None = None, elem: Any = None) -> None:
    """``key``/``elem``: the dataset's key and element for ``tag`` when the walk has them."""
    counts = ctx.counts
    if vr == "SQ":
        for item in sequence_value(ds, key if key is not None else BaseTag(tag)) or ():
            _walk(item, ctx)
        counts["C"] += 1
        return
    if vr in ("DA", "DT"):
        if ctx.shift_days is None:
            _set_empty(ds, tag, vr, ctx.enc, key)
            counts["Z"] += 1
            return
        out = []
        for v in _texts_of(elem) if elem is not None else _texts(ds, tag):
            s = _shift_da(v, ctx.shift_days) if vr == "DA" else _shift_dt(v, ctx.shift_days, ctx.seconds_shift)
            if s is None:
                out = None
                break
            out.append(s)
        if out is None:
            _set_empty(ds, tag, vr, ctx.enc, key)
            counts["Z"] += 1
        else:
            _put(ds, tag, vr, out, ctx.enc, key)
            counts["shifted"] += 1
        return
    if vr == "TM":
        # Times of day are emptied: a shifted time would collide with other real times of the
        # same patient (series are acquired second by second), and intervals inside a series are
        # kept by TriggerTime and by the shifted DT attributes.
        _set_empty(ds, tag, vr, ctx.enc, key)
        counts["Z"] += 1
        return
    if vr == "PN":
        _set_empty(ds, tag, vr, ctx.enc, key)
        counts["Z"] += 1
        return
    if vr in _CLEANED_TEXT_VRS:
        ctx.deferred.append((ds, tag, vr, patterns, key, elem))
        return
    counts["K"] += 1


def _clean_text(ds: Dataset, tag: int, vr: str, ctx: HeaderContext, patterns: bool,
                key: BaseTag | None = None, elem: Any = None) -> None:
    """Scrub a kept text value of the object's identifying values (and, with ``patterns``, of
    date-, phone- and ID-shaped tokens). Kept comments (option ``clean_comments``) and free text
    the table does not list may name people known nowhere else: they also lose unknown names,
    addresses and long numbers (:func:`deid.scrub.clean_comment`)."""
    counts = ctx.counts
    values = _texts_of(elem) if elem is not None else _texts(ds, tag)
    if not values:
        counts["K"] += 1
        return
    if vr in FREE_TEXT_VRS:
        values = ["\\".join(values)]  # backslash is text in ST/LT/UT, not a separator
    plan = ctx.plan
    scrub = clean_comment if tag in plan.comments or (vr in FREE_TEXT_VRS and tag not in plan.exact) else scrub_text
    changed = 0
    cleaned = []
    for v in values:
        if patterns:
            s, k = scrub(v, ctx.phi, ctx.terms)
        else:
            s, k = _scrub_known(v, ctx)
        cleaned.append(s)
        changed += k
    if changed:
        _put(ds, tag, vr, cleaned, ctx.enc, key)
        counts["C_scrubbed"] += 1
    counts["C"] += 1


def _scrub_known(value: str, ctx: HeaderContext) -> tuple[str, int]:
    low = value.lower()
    for term, _kw, _whole in ctx.terms:
        if term in low:  # plain substring: a superset of the boundary-aware match
            return scrub_text(value, ctx.phi, ctx.terms)
    return value, 0
