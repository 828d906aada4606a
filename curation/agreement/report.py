"""The agreement and reward reports: one JSON-ready dict each, and their text tables.

Assembled here, not in the command, so the `curate agreement` / `curate reward` commands and the
annotation round's DAG print and store the same figures. The order is the issue's: QC first, then
agreement, consensus and rewards on the readers QC kept; the same statistics on every reader are
reported alongside, so a reader excluded by QC is visible in both the decision and its effect.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tabulate import tabulate

from curation.agreement.consensus import TieRule, dawid_skene, majority_vote
from curation.agreement.feedback import ALL, feedback
from curation.agreement.qc import QcConfig, QcReport, check, kept
from curation.agreement.reward import RewardMode, split_rewards
from curation.agreement.statistics import agreement
from curation.agreement.table import Readings

Progress = Callable[[str], None]
STATISTICS = ("fleiss_kappa", "krippendorff_alpha", "gwet_ac1")
BASIS = ("overall, per_label and pairwise are computed on the readers QC kept (readers_kept), as consensus and "
         "rewards are; all_readers holds the same statistics on every reader")


def _quiet(_: str) -> None:
    pass


def _statistics(readings: Readings, n_boot: int, seed: int, what: str, progress: Progress) -> dict[str, Any]:
    progress(f"agreement on {what}: {len(readings.annotators)} readers, {n_boot} bootstrap resamples")
    result = agreement(readings, n_boot=n_boot, seed=seed)
    return {k: result[k] for k in ("overall", "per_label", "pairwise")}


def _per_annotator(readings: Readings, qc: QcReport, tie_rule: TieRule) -> dict[str, dict[str, Any]]:
    """QC results and feedback of every reader, excluded ones included."""
    notes = feedback(readings, qc, tie_rule)
    out = {}
    for annotator in readings.annotators:
        entry: dict[str, Any] = {"excluded": qc.excluded.get(annotator), "qc_flags": qc.rules_of(annotator),
                                 "passes_ai_filter": qc.passes_ai_filter.get(annotator),
                                 "gold_accuracy": qc.gold_accuracy.get(annotator)}
        if qc.ai_kappa:
            entry["ai_kappa"] = qc.ai_kappa.get(annotator, {})
        reader = notes.reader(annotator)
        entry["feedback"] = {k: v for k, v in reader.items() if k != "excluded"}
        out[annotator] = entry
    return out


def agreement_report(readings: Readings, config: QcConfig = QcConfig(), n_boot: int = 1000, seed: int = 0,
                     tie_rule: TieRule | str = TieRule.NEGATIVE, progress: Progress = _quiet,
                     qc: QcReport | None = None) -> dict[str, Any]:
    """QC, agreement (on the kept readers and on all), consensus and per-reader feedback as one dict.
    `qc`: a QC report already made for these readings (e.g. by an earlier task), instead of `config`."""
    rule = TieRule(tie_rule)
    qc_made = qc is None
    if qc is None:
        progress("quality control of readers and readings")
        qc = check(readings, config)
    voters = kept(readings, qc)
    kept_names = voters.annotators if not voters.frame.empty else []
    everyone = _statistics(readings, n_boot, seed, "all readers", progress)
    if not kept_names:
        on_kept: dict[str, Any] = {"overall": None, "per_label": {}, "pairwise": {}}
        consensus: dict[str, Any] | None = None
    else:
        on_kept = everyone if kept_names == readings.annotators and len(voters.frame) == len(readings.frame) \
            else _statistics(voters, n_boot, seed, "the readers QC kept", progress)
        progress("consensus: majority vote and Dawid-Skene")
        consensus = {"majority": majority_vote(voters, rule).summary(), "dawid_skene": dawid_skene(voters).summary()}
    return {"n_readings": len(readings.frame), "labels": readings.labels, "annotators": readings.annotators,
            "readers_kept": kept_names, "readers_excluded": dict(sorted(qc.excluded.items())), "basis": BASIS,
            "n_boot": n_boot, "seed": seed, **on_kept, "all_readers": everyone, "consensus": consensus,
            "per_annotator": _per_annotator(readings, qc, rule), "qc": qc.to_json(),
            "qc_config": {"ai_threshold": config.ai_threshold, "kappa_min": config.kappa_min} if qc_made else None}


def reward_report(readings: Readings, budget: float, mode: RewardMode | str = RewardMode.GENERAL,
                  times: Mapping[str, float] | None = None, config: QcConfig = QcConfig(),
                  qc: QcReport | None = None) -> dict[str, Any]:
    """`{"mode", "rewards", "excluded"}`: QC first (or `qc`, a report already made for these
    readings); excluded readers neither vote nor earn (0 tokens)."""
    qc = check(readings, config) if qc is None else qc
    voters = kept(readings, qc)
    if voters.frame.empty:
        raise ValueError("every reader is excluded by QC: nobody to pay ("
                         + "; ".join(f"{a}: {why}" for a, why in sorted(qc.excluded.items())) + ")")
    split = split_rewards(voters, budget, mode, times=times)
    rewards = {a: split.rewards.get(a, 0.0) for a in readings.annotators}
    return {"mode": str(split.mode), "rewards": rewards, "excluded": dict(sorted(qc.excluded.items()))}


def _number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _with_ci(block: Mapping[str, Any], name: str) -> str:
    ci = block.get(f"{name}_ci95")
    text = _number(block.get(name))
    return f"{text} [{_number(ci[0])}, {_number(ci[1])}]" if ci else text


def _table(rows: list[list[Any]], headers: list[str]) -> str:
    return tabulate(rows, headers, disable_numparse=True)


_AGREEMENT_HEADERS = ["label", "items", "readers", "all yes", "all no", "disagree", "unanimous",
                      "Fleiss kappa [95% CI]", "Krippendorff alpha [95% CI]", "Gwet AC1 [95% CI]"]


def _agreement_section(title: str, overall: Mapping[str, Any] | None, per_label: Mapping[str, Any]) -> list[str]:
    if overall is None:
        return ["", f"{title}: none (QC kept no reader)"]
    blocks = [("overall", overall), *sorted(per_label.items())]
    rows = [[name, b["n_items"], b["n_readers"], b["unanimous_positive"], b["unanimous_negative"],
             b["disagreements"], _number(b["unanimous_share"]), *(_with_ci(b, s) for s in STATISTICS)]
            for name, b in blocks]
    return ["", title, _table(rows, _AGREEMENT_HEADERS)]


def _pairwise_section(pairwise: Mapping[str, Any]) -> list[str]:
    rows = [[*pair.split("|"), p["n_items"], _with_ci(p, "cohen_kappa"), _number(p["percent_agreement"])]
            for pair, p in pairwise.items()]
    if not rows:
        return []
    return ["", "Cohen's kappa per reader pair (readers kept, labels pooled)",
            _table(rows, ["reader", "reader", "items", "kappa [95% CI]", "agreement"])]


def _readers_section(per_annotator: Mapping[str, Any]) -> list[str]:
    rows = []
    for annotator, a in per_annotator.items():
        overall = a["feedback"]["overall"]
        kappas = [k for k in (a.get("ai_kappa") or {}).values() if k is not None]
        rows.append([annotator, "excluded" if a["excluded"] else "kept", _number(min(kappas) if kappas else None),
                     _number(a["passes_ai_filter"]), _number(a["gold_accuracy"]), overall["n_read"],
                     _number(overall["agreement"]), _number(overall["sensitivity"]),
                     _number(overall["specificity"]), _number(overall["median_seconds"], 1),
                     ", ".join(a["qc_flags"]) or "-"])
    return ["", "Readers (agreement, sensitivity, specificity against the kept readers' majority vote)",
            _table(rows, ["reader", "QC", "min AI kappa", "AI filter", "gold acc.", "read", "agreement", "sens.",
                          "spec.", "median s", "QC flags"])]


def _group_keys(notes: Mapping[str, Any]) -> list[str]:
    """The modality / body part keys a reader's feedback is grouped by (none without those columns)."""
    first = (notes.get("per_group") or [{}])[0]
    return [k for k in ("modality", "body_part") if k in first]


def _feedback_section(per_annotator: Mapping[str, Any]) -> list[str]:
    """Every reader's per-label rows, then their modality / body part rows."""
    notes = {a: r["feedback"] for a, r in per_annotator.items()}
    groups = _group_keys(next(iter(notes.values()))) if notes else []
    rows = []
    for annotator, n in notes.items():
        keyed = [([ALL] * len(groups) + [label], m) for label, m in n["per_label"].items()]
        keyed += [([g[k] for k in groups] + [g["label"]], g) for g in n.get("per_group", [])]
        rows += [[annotator, *key, m["n_read"], _number(m["agreement"]), _number(m["sensitivity"]),
                  _number(m["specificity"]), _number(m["gold_accuracy"]), _number(m["median_seconds"], 1),
                  ", ".join(m["qc_flags"]) or "-"] for key, m in keyed]
    return ["", "Feedback per reader and label",
            _table(rows, ["reader", *groups, "label", "read", "agreement", "sens.", "spec.", "gold acc.", "median s",
                          "QC flags"])]


def _consensus_section(consensus: Mapping[str, Any] | None) -> list[str]:
    if not consensus:
        return []
    m, ds = consensus["majority"], consensus["dawid_skene"]
    return ["", "Consensus (readers kept)",
            f"majority vote: {m['positive']} positive, {m['negative']} negative, {m['ties']} ties "
            f"(resolved: {m['tie_rule']}), {m['undecided']} undecided, of {m['n_item_labels']} item-labels",
            f"Dawid-Skene: {ds['positive']} positive of {ds['n_item_labels']}, {ds['iterations']} iterations, "
            f"converged: {_number(ds['converged'])}",
            _table([[r["annotator"], _number(r["sensitivity"]), _number(r["specificity"]), r["n_readings"]]
                    for r in ds["readers"]], ["reader", "sensitivity", "specificity", "readings"])]


def _exclusion_section(report: Mapping[str, Any]) -> list[str]:
    if not report["readers_excluded"]:
        return []
    out = ["", "Why QC excluded readers"]
    for annotator in report["readers_excluded"]:
        out += [annotator, *(f"  {f['rule']}: {f['reason']}" for f in report["qc"]["flags"]
                             if f["annotator"] == annotator and f["excludes"])]
    return out


def agreement_tables(report: Mapping[str, Any]) -> str:
    """The agreement report as aligned text tables (what `curate agreement` prints without --json)."""
    out = [f"{report['n_readings']} readings, {len(report['annotators'])} readers, {len(report['labels'])} labels; "
           f"{report['n_boot']} bootstrap resamples (seed {report['seed']})",
           f"readers kept by QC: {', '.join(report['readers_kept']) or 'none'}",
           f"readers excluded by QC: {', '.join(report['readers_excluded']) or 'none'}"]
    out += _agreement_section("Agreement, readers kept by QC", report["overall"], report["per_label"])
    if report["readers_excluded"]:
        everyone = report["all_readers"]
        out += _agreement_section("Agreement, all readers", everyone["overall"], everyone["per_label"])
    out += _pairwise_section(report["pairwise"])
    out += _readers_section(report["per_annotator"])
    out += _feedback_section(report["per_annotator"])
    out += _consensus_section(report["consensus"])
    out += _exclusion_section(report)
    return "\n".join(out)


def reward_table(report: Mapping[str, Any], budget: float) -> str:
    """The reward split as an aligned table, excluded readers last, then why QC excluded them."""
    excluded = report["excluded"]
    order = sorted(report["rewards"], key=lambda a: (a in excluded, a))
    rows = [[a, f"{report['rewards'][a]:.2f}", "excluded" if a in excluded else "kept"] for a in order]
    out = [f"mode {report['mode']}, budget {budget:g}", _table(rows, ["reader", "tokens", "QC"])]
    if excluded:
        out += ["", "Why QC excluded readers"]
        for annotator, why in excluded.items():
            out += [annotator, *(f"  {reason}" for reason in why.split("; "))]
    return "\n".join(out)
