"""Human-readable summaries of classification results against a ground truth (tests, demo)."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from curation.vocabulary import ALL_KINDS, QualityDecision, SeriesKind


def truth_kind(kind: str) -> str:
    """A ground-truth kind in the classification vocabulary (the synthetic site tags post-contrast
    T1 as T1W_POST; its kind is T1W, with contrast recorded as an attribute)."""
    if kind.endswith("_POST"):
        kind = kind[: -len("_POST")]
    return kind if kind in ALL_KINDS else SeriesKind.OTHER


def confusion(pairs: Iterable[tuple[str, str]]) -> dict[str, Counter]:
    """{true kind: Counter(predicted kind)} from (true, predicted) pairs."""
    out: dict[str, Counter] = {}
    for t, p in pairs:
        out.setdefault(t, Counter())[p] += 1
    return out


def accuracy(pairs: Sequence[tuple[str, str]]) -> float:
    return sum(t == p for t, p in pairs) / len(pairs) if pairs else float("nan")


def format_confusion(pairs: Sequence[tuple[str, str]], title: str = "series kinds", *,
                     matrix_when_all_correct: bool = True) -> str:
    """A confusion matrix (rows: truth, columns: prediction) plus accuracy, as fixed-width text.

    With `matrix_when_all_correct=False` an all-correct result is one line with the count per kind
    (a diagonal matrix tells a reader nothing more, and the demo's terminal budget is small)."""
    conf = confusion(pairs)
    if not matrix_when_all_correct and pairs and all(t == p for t, p in pairs):
        per_kind = ", ".join(f"{k} {sum(conf[k].values())}" for k in ALL_KINDS if k in conf)
        per_kind += "".join(f", {k} {sum(conf[k].values())}" for k in sorted(set(conf) - set(ALL_KINDS)))
        return f"{title}: {len(pairs)}/{len(pairs)} correct (100.0%): {per_kind}"
    order = [k for k in ALL_KINDS if k in conf or any(k in c for c in conf.values())]
    order += sorted({p for c in conf.values() for p in c} - set(order))
    w = 6  # column width: kinds abbreviated to 6 characters in the header row
    lines = [f"{title}: {sum(t == p for t, p in pairs)}/{len(pairs)} correct ({100 * accuracy(pairs):.1f}%)",
             "truth/pred".ljust(13) + " ".join(f"{k[:w]:>{w}}" for k in order)]
    for t in order:
        if t not in conf:
            continue
        lines.append(f"{t:<13}" + " ".join(f"{conf[t].get(p, 0) or '.':>{w}}" for p in order))
    return "\n".join(lines)


def confusion_from_results(results: Sequence[dict[str, Any]], truths: Sequence[dict[str, Any]], *,
                           matrix_when_all_correct: bool = True) -> str:
    """The same matrix from classification results and ground-truth series records (same order)."""
    return format_confusion([(truth_kind(t["kind"]), r["kind"]) for r, t in zip(results, truths)],
                            matrix_when_all_correct=matrix_when_all_correct)


def format_decisions(rows: Sequence[dict[str, Any]]) -> str:
    """Quality decisions as a table: series, kind, decision, p(degraded), reason; review first.

    Each row: {"series": str, "kind": str, "decision": {...from curation.quality.decide...},
    optional "truth": {"type": .., "severity": ..}}.
    """
    order = {QualityDecision.REVIEW: 0, QualityDecision.EXCLUDE: 1, QualityDecision.APPROVE: 2}
    rows = sorted(rows, key=lambda r: (order.get(r["decision"]["decision"], 3), str(r.get("series"))))
    counts = Counter(r["decision"]["decision"] for r in rows)
    lines = ["quality decisions: " + ", ".join(f"{k} {counts.get(k, 0)}" for k in QualityDecision)]
    for r in rows:
        d = r["decision"]
        p = d.get("p_degraded")
        truth = r.get("truth")
        t = ""
        if truth is not None:
            t = f" [truth: {truth.get('type') or 'clean'}{' ' + str(truth.get('severity')) if truth.get('type') else ''}]"
        ptxt = f"{p:.2f}" if isinstance(p, float) else "  - "
        lines.append(f"  {d['decision']:<7} {r.get('kind', ''):<10} p={ptxt} {str(r.get('series', ''))[:48]:<48} "
                     f"{d.get('reason', '')}{t}")
    return "\n".join(lines)
