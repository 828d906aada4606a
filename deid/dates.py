"""Date shifting for the Modified Dates option: one shift per patient keeps every interval."""
from __future__ import annotations

import datetime as _dt


def shift_da(value: str, days: int) -> str | None:
    """Shift a DA value (YYYYMMDD, also the legacy YYYY.MM.DD); ranges ``A-B`` shift both ends.
    Returns None when the value is not a date (the caller removes it)."""
    v = value.strip()
    if not v:
        return ""
    if "-" in v:
        parts = [shift_da(p, days) if p else "" for p in v.split("-", 1)]
        return None if None in parts else "-".join(parts)  # type: ignore[arg-type]
    v = v.replace(".", "")
    if len(v) != 8 or not v.isdigit():
        return None
    try:
        d = _dt.date(int(v[:4]), int(v[4:6]), int(v[6:8]))
    except ValueError:
        return None
    return (d + _dt.timedelta(days=days)).strftime("%Y%m%d")


def shift_dt(value: str, days: int, seconds: int = 0) -> str | None:
    """Shift a DT value (YYYYMMDDHHMMSS.FFFFFF&ZZXX) by days and seconds; the UTC offset is kept,
    the fraction of a second is dropped: a shifted "HHMMSS.FFFFFF" can spell another real time
    of the same patient (the benchmark's secret moved one acquisition's 07:21:09.5 onto another
    series' real AcquisitionTime; TM values are emptied for the same reason). Without a
    fraction the shifted time of day lies inside one digit run with the shifted date, which no
    time value matches. Values without seconds precision shift by whole days only."""
    v = value.strip()
    if not v:
        return ""
    if "-" in v[1:] and not v[14:].startswith("-"):
        # a DT range
        a, b = v.split("-", 1)
        sa, sb = (shift_dt(a, days, seconds) if a else ""), (shift_dt(b, days, seconds) if b else "")
        return None if sa is None or sb is None else f"{sa}-{sb}"
    if len(v) < 4 or not v[:4].isdigit():
        return None
    if len(v) >= 14 and v[:14].isdigit():
        try:
            t = _dt.datetime.strptime(v[:14], "%Y%m%d%H%M%S")
        except ValueError:
            return None
        rest = v[14:]
        if rest.startswith("."):
            rest = rest[1:].lstrip("0123456789")
        return (t + _dt.timedelta(days=days, seconds=seconds)).strftime("%Y%m%d%H%M%S") + rest
    head = (v[:8] + "0101"[max(0, len(v[:8]) - 4):])[:8] if len(v) < 8 else v[:8]
    shifted = shift_da(head, days)
    if shifted is None:
        return None
    return shifted[: min(len(v), 8)] + v[8:]
