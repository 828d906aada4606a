"""`DATASHEET.md`: the release's answers to the Datasheets-for-Datasets questions (Gebru et al.,
2021: motivation, composition, collection, preprocessing and labelling, uses, distribution,
maintenance), written from catalog facts at build time rather than by hand, so they cannot drift
from what the release holds.

`gather` reads the facts (counts, de-identification configuration, rounds, exclusions) and
`datasheet_markdown` renders them. Nothing here is identifying: pseudonymous keys are counted, not
listed; sources are named by site and kind, never by path or URI; no clock is read (same catalog,
same bytes).
"""
from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import select

from curation.catalog import Catalog, Instance, Source
from curation.catalog.models import AnnotationRound
from curation.confighash import config_hash
from curation.pipeline.select import candidates, final_decisions, newest_records

DATASHEET_MD = "DATASHEET.md"
#: The longest exclusion reason quoted (reasons are machine sentences or a reviewer's short note).
REASON_CHARS = 160
#: Rows of the exclusion table before the rest are summed as "other reasons".
MAX_REASONS = 20


@dataclass
class DatasheetFacts:
    """Everything the datasheet states, as plain values (see `gather`)."""

    name: str
    version: str
    previous: str | None
    released_on: str
    license: str
    description: str
    selection: dict[str, Any]
    series: list[dict[str, Any]]
    readings: list[dict[str, Any]]
    rounds: list[dict[str, Any]]
    source_kinds: dict[str, int]
    deid_methods: dict[str, int]
    deid_configs: list[dict[str, Any]]
    stages: dict[str, Any]
    excluded: list[tuple[str, str, str, int]]  # (decision, source, reason, series)
    not_selected: int
    nifti: int = 0
    labels_skipped: int = 0
    label_files: int = 0
    split_plan: dict[str, Any] = field(default_factory=dict)


@lru_cache(maxsize=1)
def _profile_hashes() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Configuration hash -> (profile, its options) of every de-identification profile as written now."""
    from curation.pipeline.deid import resolved_config
    from deid.profile import available_profiles, load_profile

    return {config_hash(resolved_config(name)): (name, load_profile(name).options) for name in available_profiles()}


def deid_configs(config_hashes: Counter[str]) -> list[dict[str, Any]]:
    """Each de-identification configuration of the released series (by the deid records' config
    hash) with its series count and, where it is a current profile as written, its name and options."""
    known = _profile_hashes()
    return [{"config_hash": h, "series": n, "profile": known[h][0] if h in known else None,
             "options": list(known[h][1]) if h in known else None} for h, n in sorted(config_hashes.items())]


def _source_kinds(catalog: Catalog, series_ids: Sequence[int]) -> dict[str, int]:
    """Series per kind of source (folder, archive, s3, dicomweb, ...) they were ingested from."""
    with catalog.session() as s:
        pairs = set(s.execute(select(Instance.series_id, Source.kind).join(Source, Source.id == Instance.source_id)
                              .where(Instance.series_id.in_(list(series_ids)))))
    return dict(sorted(Counter(kind for _, kind in pairs).items()))


def why_excluded(source: str | None, reason: str | None, quality: Mapping[str, Any] | None) -> str:
    """A short, groupable 'why' of a final decision: a person's note, else the quality stage's
    structured decision (the limits hit, by metric and meaning, or the metric the learned model
    found furthest from clean series), else its sentence. Numbers are left out so series group."""
    if source == "human" or not quality:
        text = (reason or "no reason recorded").strip()
        return text if len(text) <= REASON_CHARS else text[:REASON_CHARS - 3] + "..."
    limits = [str(hit) for hit in quality.get("limits_hit") or []]
    if limits:
        return "; ".join(f"{h.split(' ', 1)[0]}: {h.split(': ', 1)[1]}" if ": " in h else h.split(" ", 1)[0]
                         for h in limits)
    if quality.get("worst_metric"):
        return f"quality model: {quality['worst_metric']} far from clean series of the kind"
    return why_excluded("human", reason, None)


def _exclusions(catalog: Catalog, released: set[int],
                decisions: Sequence[str]) -> tuple[list[tuple[str, str, str, int]], int]:
    """Series de-identified and classified but not released: those left out by their final quality
    decision, counted by (decision, who decided, why), and how many with a selected decision the
    selection's other filters (kinds, rounds, sites) left out."""
    ids = [r.series_id for r in candidates(catalog)]
    finals = final_decisions(catalog, ids)
    left = [sid for sid in ids if sid not in released and finals[sid].decision not in decisions]
    quality = newest_records(catalog, "quality", left)
    by_reason: Counter[tuple[str, str, str]] = Counter()
    for sid in left:
        final = finals[sid]
        structured = ((quality[sid].metrics or {}).get("decision") or {}) if sid in quality else None
        by_reason[(str(final.decision or "undecided"), str(final.source or "none"),
                   why_excluded(final.source, final.reason, structured))] += 1
    rows = sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
    out = [(d, s, r, n) for (d, s, r), n in rows[:MAX_REASONS]]
    rest = rows[MAX_REASONS:]
    if rest:
        out.append(("various", "various", f"{len(rest)} other reasons", sum(n for _, n in rest)))
    not_selected = sum(1 for sid in ids if sid not in released and finals[sid].decision in decisions)
    return out, not_selected


def _round_facts(rounds: Sequence[AnnotationRound], readings: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for rnd in rounds:
        mine = [r for r in readings if r["round"] == rnd.id]
        per_item = Counter()
        for series, readers in _readers_per_series(mine).items():
            per_item[series] = len(readers)
        summary = rnd.summary or {}
        out.append({"id": rnd.id, "project": rnd.project, "name": rnd.name,
                    "schema": f"{rnd.schema_name} v{rnd.schema_version}", "state": rnd.state,
                    "series": len(per_item), "readings": len(mine), "readers": len({r["reader"] for r in mine}),
                    "readers_per_series": sorted(per_item.values()),
                    "labels": sorted({r["label"] for r in mine}),
                    "summary": {k: summary.get(k) for k in ("items", "gold_items", "readers", "readers_kept",
                                                             "readers_excluded", "fleiss_kappa", "fleiss_kappa_ci95",
                                                             "krippendorff_alpha", "krippendorff_alpha_ci95",
                                                             "consensus_boxes")}})
    return out


def _readers_per_series(readings: Iterable[Mapping[str, Any]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in readings:
        out.setdefault(r["series"], set()).add(r["reader"])
    return out


def gather(catalog: Catalog, *, name: str, version: str, previous: str | None, released_on: str, license: str,
           description: str, selection: dict[str, Any], split_plan: dict[str, Any], chosen_ids: Sequence[int],
           rows: Sequence[Mapping[str, Any]], readings: Sequence[Mapping[str, Any]],
           rounds: Sequence[AnnotationRound], deid_methods: Counter[str], decisions: Sequence[str],
           stages: dict[str, Any], nifti: int, label_files: int, labels_skipped: int) -> DatasheetFacts:
    """The facts of one build. `rows`: its series-table rows; `readings`: its readings-table rows;
    `deid_methods`: series per DeidentificationMethod value of their released DICOM."""
    deid = newest_records(catalog, "deid", list(chosen_ids))
    excluded, not_selected = _exclusions(catalog, set(chosen_ids), decisions)
    return DatasheetFacts(
        name=name, version=version, previous=previous, released_on=released_on, license=license,
        description=description, selection=selection, series=[dict(r) for r in rows],
        readings=[dict(r) for r in readings], rounds=_round_facts(rounds, readings),
        source_kinds=_source_kinds(catalog, chosen_ids), deid_methods=dict(sorted(deid_methods.items())),
        deid_configs=deid_configs(Counter(r.config_hash for r in deid.values())), stages=stages,
        excluded=excluded, not_selected=not_selected, nifti=nifti, labels_skipped=labels_skipped,
        label_files=label_files, split_plan=split_plan)


# rendering ---------------------------------------------------------------------------------------
def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join("" if v is None else str(v).replace("|", "\\|") for v in row) + " |" for row in rows]
    return lines


def _crosstab(series: Sequence[Mapping[str, Any]], column: str, splits: Sequence[str]) -> list[str]:
    counts = Counter((r.get(column) or "unknown", r["split"]) for r in series)
    values = sorted({v for v, _ in counts})
    rows = [[v, *(counts[(v, s)] for s in splits), sum(counts[(v, s)] for s in splits)] for v in values]
    return _table([column, *splits, "all"], rows)


def _words(values: Iterable[Any] | None) -> str:
    return ", ".join(str(v) for v in values or ()) or "any"


def _ci(value: Any, ci: Any) -> str:
    if value is None:
        return "n/a"
    text = f"{value:.3f}" if isinstance(value, (int, float)) else str(value)
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(isinstance(c, (int, float)) for c in ci):
        text += f" (95% CI {ci[0]:.3f} to {ci[1]:.3f})"
    return text


def _spread(values: Sequence[int]) -> str:
    if not values:
        return "n/a"
    return f"min {values[0]}, median {statistics.median(values):g}, max {values[-1]}"


def datasheet_markdown(f: DatasheetFacts) -> str:
    """DATASHEET.md of the facts: one section per Datasheets-for-Datasets question group."""
    series = f.series
    splits = sorted({r["split"] for r in series})
    patients = {r["patient"] for r in series}
    files = sum(r["n_files"] or 0 for r in series)
    sel = f.selection
    lines = [f"# Datasheet: {f.name}@{f.version}", "",
             "Answers to the questions of *Datasheets for Datasets* (Gebru et al., 2021), written by the "
             "platform from its catalog when this version was built. `tables/series.parquet` and "
             "`provenance.json` hold the per-series detail.", "",
             "## Motivation", "",
             f"- Purpose: {f.description or 'a curated, de-identified and quality-controlled set of medical images for machine-learning research.'}",
             "- Created by the curation platform's `release_dataset` step from series that passed ingest, "
             "de-identification, classification and quality control; a data owner approves each version "
             "before it is published.", "",
             "## Composition", "",
             f"- {len(series)} series of {len(patients)} pseudonymous patients, {files} image files "
             f"({f.nifti} NIfTI conversions besides), {f.label_files} label objects (DICOM SR/SEG).",
             "- One record is one series: a DICOM series, or a single image standing as its own series.",
             "- Patients are split by a seeded hash of their pseudonym: no patient is in two splits. "
             f"Plan: {', '.join(f'{k} {v}' for k, v in f.split_plan.get('ratios') or []) or 'default'}, "
             f"seed {f.split_plan.get('seed', 0)}.", ""]
    lines += ["Series per kind and split:", ""] + _crosstab(series, "kind", splits) + [""]
    lines += ["Series per modality and split:", ""] + _crosstab(series, "modality", splits) + [""]
    patient_split = Counter({r["patient"]: r["split"] for r in series}.values())
    lines += ["Patients per split:", ""] + _table(["split", "patients"], [[s, patient_split[s]] for s in splits]) + [""]
    lines += [f"- Selection: kinds {_words(sel.get('kinds'))}, final quality decisions {_words(sel.get('decisions'))}, "
              f"rounds {_words(sel.get('rounds'))}, sites {_words(sel.get('sites'))}, formats {_words(sel.get('formats'))}.",
              "- Confidential data: none intended. Every released DICOM passed the platform's de-identification "
              "verifier at the build's verify step; identities are replaced by pseudonyms.", "",
              "## Collection process", "",
              "Series per site:", ""]
    lines += _table(["site", "series"], sorted(Counter(r.get("site") or "unknown" for r in series).items())) + [""]
    lines += ["Series per kind of source:", ""] + _table(["source", "series"], f.source_kinds.items()) + [""]
    lines += ["- Acquired at the sites above and ingested unchanged into the platform's restricted raw zone; "
              "what was removed, replaced or kept is the de-identification configuration below.", "",
              "## Preprocessing, cleaning and labelling", "",
              "### De-identification", "",
              "DeidentificationMethod written into the released DICOM (series per value):", ""]
    lines += _table(["method", "series"], f.deid_methods.items() or [["none recorded (non-DICOM images)", 0]]) + [""]
    lines += ["De-identification configurations (the deid records' configuration hashes):", ""]
    lines += _table(["configuration", "series", "profile", "options"],
                    [[c["config_hash"][:16], c["series"], c["profile"] or "not a current profile as written",
                      ", ".join(c["options"]) if c["options"] else ("none" if c["profile"] else "unknown")]
                     for c in f.deid_configs]) + [""]
    lines += ["- Stage versions: " + "; ".join(f"{k} {', '.join(v['versions'])}" for k, v in f.stages.items()), "",
              "### Quality exclusions", "",
              "Series de-identified and classified but not released because of their final quality decision "
              "(a person's review where there is one, else the model's):", ""]
    lines += _table(["decision", "decided by", "why", "series"],
                    [list(row) for row in f.excluded] or [["none", "", "", 0]]) + [""]
    lines += [f"- {f.not_selected} further series passed quality control but fall outside this version's "
              "selection (kinds, rounds or sites).", "",
              "### Labelling", ""]
    if not f.rounds:
        lines += ["No annotation round labelled these series: the release carries no labels.", ""]
    for rnd in f.rounds:
        s = rnd["summary"]
        lines += [f"Round {rnd['id']} `{rnd['project']}/{rnd['name']}` (schema {rnd['schema']}, {rnd['state']}):", "",
                  f"- {rnd['series']} released series read, {rnd['readings']} readings by {rnd['readers']} "
                  f"pseudonymous readers; readers per series: {_spread(rnd['readers_per_series'])}.",
                  f"- Labels: {', '.join(rnd['labels']) or 'none'}; gold items in the round: {s.get('gold_items')}.",
                  f"- Readers kept by QC: {len(s.get('readers_kept') or [])}, excluded: "
                  f"{len(s.get('readers_excluded') or [])} (excluded readers' readings stay in readings.parquet, "
                  "flagged in reader_passes_qc / reader_qc_flags).",
                  f"- Agreement (whole round): Fleiss' kappa {_ci(s.get('fleiss_kappa'), s.get('fleiss_kappa_ci95'))}; "
                  f"Krippendorff's alpha {_ci(s.get('krippendorff_alpha'), s.get('krippendorff_alpha_ci95'))}.", ""]
    if f.rounds:
        lines += ["- Consensus (majority, Dawid-Skene, boxes) is in `tables/consensus.parquet` and as DICOM SR TID 1500 "
                  f"/ SEG under `labels/`; {f.labels_skipped} series-round pairs got no DICOM labels "
                  "(`provenance.json` says why).", ""]
    lines += ["## Uses", "",
              "- Intended: research and development of image-analysis models (classification, detection, "
              "segmentation, quality assessment) on the kinds and modalities above, and method comparisons "
              "that cite this exact version.",
              "- Out of scope: clinical diagnosis or treatment decisions; any attempt to re-identify patients or "
              "to link them with other data; conclusions about populations, sites, scanners or kinds absent "
              "from the composition tables; use against the license.",
              "- Known limits: labels come from the readers and rounds above (see agreement); quality decisions "
              "are partly automatic; splits are by patient, not by site or time.", "",
              "## Distribution", "",
              f"- License: {f.license}.",
              f"- Cite as `{f.name}@{f.version}` with the SHA-256 of its `manifest.json` (the release's identity).",
              f"- Get it with `curate release pull {f.name}@{f.version} DEST` and check it with "
              f"`curate release verify DEST`; metadata for ML tools in `croissant.json`.", "",
              "## Maintenance", "",
              f"- Versions are semantic and immutable once published; this is {f.version}, "
              f"{'following ' + f.previous if f.previous else 'the first version'} "
              "(`CHANGES.md`: series added, removed, revised; labels changed; counts with deltas).",
              "- A patient keeps its split in later versions. Corrections come as a new version, never by "
              "changing this one.",
              f"- Release date: {f.released_on}. Provenance (code, stage versions and configurations, rounds, "
              "lineage head) is in `provenance.json`."]
    return "\n".join(lines) + "\n"


__all__ = ["DATASHEET_MD", "DatasheetFacts", "datasheet_markdown", "deid_configs", "gather", "why_excluded"]
