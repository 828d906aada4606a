"""One pass over a dataset (recursing into every sequence) applying the compiled profile: every
element gets exactly one action from a precomputed tag -> action lookup, so the cost per file is
one dictionary hit per element plus work only where values change."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from deid.dates import shift_da, shift_dt
from deid.phi import PhiValues, is_identifier_keyword
from deid.private import keep_private, private_creators
from deid.profile import Plan
from deid.pseudonym import Pseudonymizer
from deid.scrub import scrub_text

TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC", "PN", "AE", "CS", "UR", "AS"})
FREE_TEXT_VRS = frozenset({"ST", "LT", "UT"})
_STANDARD_UID_ROOT = "1.2.840.10008."
_DUMMY = {
    "PN": "ANONYMOUS", "LO": "ANONYMIZED", "SH": "ANONYMIZED", "LT": "ANONYMIZED", "ST": "ANONYMIZED",
    "UT": "ANONYMIZED", "UC": "ANONYMIZED", "CS": "ANONYMIZED", "AE": "ANONYMOUS", "DA": "19000101",
    "DT": "19000101000000", "TM": "000000", "IS": "0", "DS": "0", "AS": "000Y", "UR": "",
}

_unlisted_cache: dict[tuple[int, str], str] = {}
_kw_cache: dict[int, str] = {}


def _keyword(tag: int) -> str:
    kw = _kw_cache.get(tag)
    if kw is None:
        kw = _kw_cache[tag] = keyword_for_tag(tag) or f"{tag:08X}"
    return kw


def _vr_of(elem: Any) -> str:
    vr = elem.VR
    if not vr:
        try:
            vr = dictionary_VR(elem.tag)
        except KeyError:
            vr = "UN"
    return vr.split(" or ")[0] if " or " in vr else vr


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


def patient_key(ds: Dataset) -> str:
    """The identity a pseudonym is derived from: PatientID, else name + birth date, else the study."""
    pid = str(ds.get("PatientID", "") or "").strip()
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


def collect_phi(ds: Dataset, plan: Plan, phi: PhiValues, shifting: bool) -> None:
    """Gather the identifying values of ``ds`` (all levels) before anything changes, so free text
    anywhere in the object is scrubbed of values that appear later in tag order."""
    for elem in ds.elements():
        tag = int(elem.tag)
        group = tag >> 16
        if group & 1 or group == 0x0002:
            continue
        vr = _vr_of(elem)
        action = plan.exact.get(tag)
        if vr == "SQ":
            if action != "X":
                for item in ds[tag].value or ():
                    collect_phi(item, plan, phi, shifting)
            continue
        if action == "K":
            continue
        if action is None and vr not in ("PN", "DA", "DT", "UI", "TM"):
            continue
        if vr in ("PN", "DA", "DT", "UI", "TM"):
            phi.add(_keyword(tag), vr, ds[tag].value)
        else:
            kw = _keyword(tag)
            if action != "C" and is_identifier_keyword(kw):
                phi.add(kw, vr, ds[tag].value)


def apply_plan(ds: Dataset, ctx: HeaderContext) -> None:
    """Apply the profile to ``ds`` in place, recursing into sequences."""
    plan = ctx.plan
    counts = ctx.counts
    shifting = ctx.shift_days is not None
    creators = None
    kept_private_blocks: set[tuple[int, int]] = set()
    private_creator_tags: list[int] = []
    for elem in list(ds.elements()):
        tag = int(elem.tag)
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
            del ds[tag]
            counts["private_removed"] += 1
            continue
        if (group & 0xFF00) in (0x5000, 0x6000):
            # Curves and overlays, the whole repeating group (Overlay Description included,
            # which Table E.1-1 does not list).
            del ds[tag]
            counts["X"] += 1
            continue
        vr = _vr_of(elem)
        action = plan.exact.get(tag)
        if action is None:
            action = _unlisted_action(tag, vr, shifting)
        if action == "K":
            if vr == "SQ":
                for item in ds[tag].value or ():
                    apply_plan(item, ctx)
            counts["K"] += 1
        elif action == "X":
            del ds[tag]
            counts["X"] += 1
        elif action == "Z":
            _set_empty(ds, tag, vr)
            counts["Z"] += 1
        elif action == "U" or action == "u":
            if vr == "UI":
                value = ds[tag].value
                if value:
                    ds[tag].value = _remap_uids(value, ctx.pseudo, standard_kept=(action == "u"))
                counts["U"] += 1
            elif vr == "SQ":
                for item in ds[tag].value or ():
                    apply_plan(item, ctx)
                counts["K"] += 1
            else:
                _set_empty(ds, tag, vr)
                counts["Z"] += 1
        elif action == "D":
            _dummy(ds, tag, vr, ctx)
            counts["D"] += 1
        elif action == "P":
            _pseudonymise(ds, tag, vr, ctx)
            counts["P"] += 1
        elif action in ("C", "c"):
            _clean(ds, tag, vr, ctx, patterns=(action == "C"))
        else:  # pragma: no cover - table codes are validated at compile time
            raise ValueError(f"unknown action {action!r} for attribute {tag:08X}")
    for tag in private_creator_tags:
        g, e = tag >> 16, tag & 0xFFFF
        if (g, e) not in kept_private_blocks:
            del ds[tag]
            counts["private_removed"] += 1


def _set_empty(ds: Dataset, tag: int, vr: str) -> None:
    if vr == "SQ":
        ds[tag] = DataElement(tag, "SQ", Sequence())
    elif vr in TEXT_VRS or vr in ("DA", "DT", "TM", "UI", "IS", "DS"):
        ds[tag] = DataElement(tag, vr, "")
    else:
        ds[tag] = DataElement(tag, vr, None)


def _remap_uids(value: Any, pseudo: Pseudonymizer, standard_kept: bool) -> Any:
    def one(u: str) -> str:
        u = str(u).strip("\x00 ")
        if not u or (u.startswith(_STANDARD_UID_ROOT)):
            return u
        return pseudo.uid(u)

    if isinstance(value, str):
        return one(value)
    return [one(v) for v in value]


def _dummy(ds: Dataset, tag: int, vr: str, ctx: HeaderContext) -> None:
    if vr == "UI":
        v = ds[tag].value
        ds[tag].value = _remap_uids(v, ctx.pseudo, False) if v else ""
    elif vr == "SQ":
        ds[tag] = DataElement(tag, "SQ", Sequence())
    elif vr in ("DA", "DT") and ctx.shift_days is not None:
        _clean(ds, tag, vr, ctx, patterns=True)
    elif vr in _DUMMY:
        ds[tag] = DataElement(tag, vr, _DUMMY[vr])
    else:
        _set_empty(ds, tag, vr)


def _pseudonymise(ds: Dataset, tag: int, vr: str, ctx: HeaderContext) -> None:
    kw = _keyword(tag)
    if kw == "PatientName":
        ds[tag] = DataElement(tag, "PN", ctx.pseudo.patient_name(ctx.patient_key))
    elif kw == "PatientID":
        ds[tag] = DataElement(tag, vr, ctx.pseudo.patient_id(ctx.patient_key))
    elif vr == "UI":
        _dummy(ds, tag, vr, ctx)
    elif vr in ("LO", "SH", "CS", "AE", "LT", "ST", "UT", "UC", "PN"):
        v = str(ds[tag].value or "")
        ds[tag] = DataElement(tag, vr, ctx.pseudo.token(kw or str(tag), v) if v else "")
    else:
        _set_empty(ds, tag, vr)


def _clean(ds: Dataset, tag: int, vr: str, ctx: HeaderContext, patterns: bool) -> None:
    counts = ctx.counts
    if vr == "SQ":
        for item in ds[tag].value or ():
            apply_plan(item, ctx)
        counts["C"] += 1
        return
    if vr in ("DA", "DT"):
        if ctx.shift_days is None:
            _set_empty(ds, tag, vr)
            counts["Z"] += 1
            return
        elem = ds[tag]
        values = elem.value if not isinstance(elem.value, str) else [elem.value]
        out = []
        for v in values or ():
            s = shift_da(str(v), ctx.shift_days) if vr == "DA" else shift_dt(str(v), ctx.shift_days, ctx.seconds_shift)
            if s is None:
                out = None
                break
            out.append(s)
        if out is None:
            _set_empty(ds, tag, vr)
            counts["Z"] += 1
        else:
            ds[tag] = DataElement(tag, vr, out[0] if len(out) == 1 else (out or ""))
            counts["shifted"] += 1
        return
    if vr == "TM":
        # Times of day are emptied: a shifted time would collide with other real times of the
        # same patient (series are acquired second by second), and intervals inside a series are
        # kept by TriggerTime and by the shifted DT attributes.
        _set_empty(ds, tag, vr)
        counts["Z"] += 1
        return
    if vr == "PN":
        _set_empty(ds, tag, vr)
        counts["Z"] += 1
        return
    if vr in ("LO", "SH", "ST", "LT", "UT", "UC", "CS"):
        elem = ds[tag]
        value = elem.value
        if not value:
            counts["K"] += 1
            return
        values = [value] if isinstance(value, str) else list(value)
        changed = 0
        cleaned = []
        for v in values:
            if patterns:
                s, k = scrub_text(str(v), ctx.phi, ctx.terms)
            else:
                s, k = _scrub_known(str(v), ctx)
            cleaned.append(s)
            changed += k
        if changed:
            elem.value = cleaned[0] if len(cleaned) == 1 else cleaned
            counts["C_scrubbed"] += 1
        counts["C"] += 1
        return
    counts["K"] += 1


def _scrub_known(value: str, ctx: HeaderContext) -> tuple[str, int]:
    low = value.lower()
    for term, _kw, _whole in ctx.terms:
        if term in low:  # plain substring: a superset of the boundary-aware match
            return scrub_text(value, ctx.phi, ctx.terms)
    return value, 0
