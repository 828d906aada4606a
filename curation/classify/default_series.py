"""The default static series of a study (ProCancer-I's choice for co-registration): 3D, T2-weighted,
axial, not derived -- falling back in a fixed, explained order when no series has all four."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from curation.vocabulary import SeriesKind

#: Preference of kinds for the static reference (T2W first, then the other structural weightings).
KIND_PREFERENCE = (SeriesKind.T2W, SeriesKind.T1W, SeriesKind.FLAIR, SeriesKind.PDW, SeriesKind.SWI,
                   SeriesKind.OTHER_MR, SeriesKind.CT, SeriesKind.DCE, SeriesKind.DWI, SeriesKind.ADC)
_NOT_CANDIDATES = {SeriesKind.LOCALIZER, SeriesKind.CT_LOCALIZER, SeriesKind.SC, SeriesKind.OTHER}


def _score(r: Mapping[str, Any]) -> tuple:
    kind = r.get("kind")
    kind_rank = KIND_PREFERENCE.index(kind) if kind in KIND_PREFERENCE else len(KIND_PREFERENCE)
    return (
        kind_rank,
        0 if not r.get("derived") else 1,
        0 if r.get("dimensions") == "3D" else (1 if r.get("dimensions") == "2D" else 2),
        0 if r.get("plane") == "axial" else 1,
        0 if not r.get("contrast") else 1,
        -int(r.get("n_files") or 0),
    )


def choose_default_series(results: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Pick among one study's classification results (each may carry an `id`/`series` key).

    Returns {"index", "id", "kind", "reason", "fallback": bool} or None when no series qualifies.
    """
    cands = [(i, r) for i, r in enumerate(results) if r.get("kind") not in _NOT_CANDIDATES]
    if not cands:
        return None
    i, best = min(cands, key=lambda ir: (_score(ir[1]), ir[0]))
    ideal = (best.get("kind") == SeriesKind.T2W and best.get("dimensions") == "3D" and best.get("plane") == "axial"
             and not best.get("derived"))
    missing = []
    if best.get("kind") != SeriesKind.T2W:
        missing.append(f"no T2W (took {best.get('kind')})")
    if best.get("dimensions") != "3D":
        missing.append(f"not 3D ({best.get('dimensions')})")
    if best.get("plane") != "axial":
        missing.append(f"not axial ({best.get('plane')})")
    if best.get("derived"):
        missing.append("derived")
    reason = "3D axial T2W, not derived" if ideal else "fallback: " + ", ".join(missing)
    return {"index": i, "id": best.get("id", best.get("series")), "kind": best.get("kind"), "reason": reason,
            "fallback": not ideal}
