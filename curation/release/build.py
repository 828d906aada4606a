"""Build a release into its staging prefix: select series from the catalog, copy their de-identified
DICOM, write the tables, provenance and CHANGES.md, and last the manifest.

Everything written is a function of the catalog, the store and the spec: no build time, no host, no
random order (rows and paths sorted), so building the same selection twice gives byte-identical
files and the same manifest hash. The ledger head recorded in provenance is the newest event that is
not a release event, so a build's own event does not change the next build of the same data.
"""
from __future__ import annotations

import hashlib
import io
import subprocess
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import pydicom
from sqlalchemy import select

from curation.catalog import Catalog, Instance, Source, append_event
from curation.catalog.lineage import GENESIS
from curation.catalog.models import (
    AnnotationItem,
    AnnotationRound,
    ConsensusLabel,
    LineageEvent,
    ReaderReport,
    Reading,
)
from curation.confighash import canonical_json
from curation.pipeline.analyse import strict_json
from curation.pipeline.select import candidates, final_decisions, model_decision, newest_records
from curation.release import diff as release_diff
from curation.release import splits as release_splits
from curation.release.labelling import RoundConsensus, Skipped, consensus_of_rounds, series_labels
from curation.release.labels import ReleaseIdentity
from curation.release.layout import (
    MANIFEST_JSON,
    StoreTree,
    bulk_writes,
    published_versions,
    release_prefix,
    staging_prefix,
)
from curation.release.croissant import CROISSANT_JSON, LICENSE_PLACEHOLDER, DatasetCard, croissant_json
from curation.release.datasheet import DATASHEET_MD, datasheet_markdown, gather
from curation.release.manifest import MANIFEST_PARQUET, NIFTI_ROLE, ROLES, Manifest, ManifestEntry
from curation.release.nifti import NotAVolume, is_volume_row, nifti_path, series_nifti
from curation.release.tables import (
    AGREEMENT_TABLE,
    CONSENSUS_COLUMNS,
    CONSENSUS_SCHEMA,
    CONSENSUS_TABLE,
    READING_COLUMNS,
    READING_SCHEMA,
    READINGS_TABLE,
    SERIES_SCHEMA,
    SERIES_TABLE,
    to_parquet,
)
from curation.release.version import Version, check_name, next_version
from curation.store import Store
from curation.vocabulary import QualityDecision, Zone

#: The ledger's stage name for release events (build, publish).
STAGE = "release"
#: The platform's distribution (pyproject's project name) whose version provenance records.
DISTRIBUTION = "curate"
#: Stages whose versions and configuration hashes a release's provenance lists.
PROVENANCE_STAGES = ("deid", "classify", "quality")
#: Round kind whose readings and consensus a release carries (quality reviews are the final decisions).
LABELS_ROUND = "labels"
#: Image formats a release can hold: the de-identified DICOM (always: labels reference its instances and
#: verify checks it for PHI) and, asked for, NIfTI conversions of volume series.
FORMAT_DICOM = "dicom"
FORMAT_NIFTI = "nifti"
FORMATS = (FORMAT_DICOM, FORMAT_NIFTI)


class ReleaseError(ValueError):
    """A release cannot be built or published as asked (the message says why)."""


@dataclass(frozen=True)
class ReleaseSpec:
    """What to release: name and version (an explicit one, or a bump of the newest published), the
    selection (series kinds, final quality decisions, annotation rounds, sources' sites; empty kinds,
    rounds or sites: any), the split plan and the image formats (`FORMATS`; DICOM always)."""

    name: str
    bump: str = "minor"
    version: str | None = None
    kinds: tuple[str, ...] = ()
    decisions: tuple[str, ...] = (QualityDecision.APPROVE,)
    rounds: tuple[int, ...] = ()
    splits: release_splits.SplitPlan = release_splits.SplitPlan()
    #: Sites (`Source.site`, the ingest's `site`) whose series are released; empty: every site.
    sites: tuple[str, ...] = ()
    formats: tuple[str, ...] = (FORMAT_DICOM,)
    #: What croissant.json and DATASHEET.md state as the license (a SPDX id or URL) and the purpose.
    license: str = LICENSE_PLACEHOLDER
    description: str = ""
    #: The release date label objects carry (never the clock: a rebuild must be byte-identical);
    #: None: the date of the ledger head the build records.
    released_on: date | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.formats) - set(FORMATS))
        if unknown:
            raise ReleaseError(f"unknown release formats {unknown}; known: {', '.join(FORMATS)}")
        if FORMAT_DICOM not in self.formats:
            raise ReleaseError(f"formats {list(self.formats)} lack {FORMAT_DICOM!r}: a release always holds the "
                               "de-identified DICOM (labels reference its instances; verify checks it for PHI)")

    def selection_json(self) -> dict[str, Any]:
        return {"kinds": sorted(self.kinds), "decisions": sorted(self.decisions), "rounds": sorted(self.rounds),
                "sites": sorted(self.sites), "formats": sorted(self.formats)}


@dataclass
class BuildResult:
    name: str
    version: str
    previous: str | None
    prefix: str
    manifest_sha256: str
    counts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "previous": self.previous, "prefix": self.prefix,
                "manifest_sha256": self.manifest_sha256, "counts": self.counts}


@dataclass(frozen=True)
class Chosen:
    """One selected series with what the release says of it."""

    series_id: int
    key: str
    patient: str
    study: str
    row: dict[str, Any]
    files: tuple[tuple[str, str], ...]  # (deid-zone key, release path)


@lru_cache(maxsize=1)
def code_version() -> dict[str, str | None]:
    """The package version and, in a git checkout, the commit (read once per process)."""
    try:
        version = metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        version = None
    root = Path(__file__).resolve().parents[2]
    commit = None
    if (root / ".git").exists():
        try:
            commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                    timeout=10, check=True).stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            commit = None
    return {"package": version, "commit": commit}


def release_path(deid_key: str) -> tuple[str, str, str]:
    """(release path, patient, study) of a deid-zone key: DICOM keep their pseudonymous
    `<patient>/<study>/<series>/<sop>.dcm`; an image or volume (`images/<hash>/<name>`) has no patient,
    so it stands as its own pseudonymous patient `img-<hash prefix>` with study `none`."""
    parts = deid_key.split("/")
    if len(parts) == 4:
        return "images/" + deid_key, parts[0], parts[1]
    if len(parts) == 3:
        patient = f"img-{parts[1][:16]}"
        return f"images/{patient}/none/{parts[1]}/{parts[2]}", patient, "none"
    raise ReleaseError(f"deid-zone key {deid_key!r} is neither <patient>/<study>/<series>/<file> nor <folder>/<hash>/<file>")


def _round_series(catalog: Catalog, rounds: Sequence[int]) -> set[int]:
    with catalog.session() as s:
        return set(s.scalars(select(AnnotationItem.series_id).where(AnnotationItem.round_id.in_(list(rounds)))))


def series_sites(catalog: Catalog, series_ids: Sequence[int]) -> dict[int, str]:
    """Each series' site: the `site` of the sources its instances were ingested from (sorted and
    comma-joined in the rare case one series came from sources of several sites)."""
    sites: dict[int, set[str]] = {}
    with catalog.session() as s:
        for sid, site in s.execute(select(Instance.series_id, Source.site).join(Source, Source.id == Instance.source_id)
                                   .where(Instance.series_id.in_(list(series_ids))).distinct()):
            sites.setdefault(sid, set()).add(site)
    return {sid: ",".join(sorted(names)) for sid, names in sites.items()}


def choose(catalog: Catalog, spec: ReleaseSpec) -> list[Chosen]:
    """The series the spec selects, sorted by their release paths, with their series-table rows."""
    refs = candidates(catalog)
    finals = final_decisions(catalog, [r.series_id for r in refs])
    in_rounds = _round_series(catalog, spec.rounds) if spec.rounds else None
    sites = series_sites(catalog, [r.series_id for r in refs])
    refs = [r for r in refs if (not spec.kinds or r.kind in spec.kinds)
            and finals[r.series_id].decision in spec.decisions
            and (in_rounds is None or r.series_id in in_rounds)
            and (not spec.sites or set(sites.get(r.series_id, "").split(",")) & set(spec.sites))]
    ids = [r.series_id for r in refs]
    deid, classify, quality = (newest_records(catalog, stage, ids) for stage in ("deid", "classify", "quality"))
    chosen = []
    for ref in refs:
        keys = sorted((deid[ref.series_id].metrics or {}).get("outputs") or [])
        files = tuple((k, release_path(k)[0]) for k in keys)
        _, patient, study = release_path(keys[0])
        final, q = finals[ref.series_id], quality.get(ref.series_id)
        row = {"series": ref.item_key, "patient": patient, "study": study, "site": sites.get(ref.series_id),
               "format": ref.format,
               "modality": ref.modality, "kind": ref.kind, "body_part": ref.body_part, "n_files": len(files),
               "final_decision": final.decision, "decision_source": final.source,
               "decision_reason": final.reason, "reviewers": list(final.reviewers),
               "model_decision": model_decision(q),
               "quality_metrics": strict_json(((q.metrics or {}).get("metrics") if q else None) or {}),
               "attributes": strict_json(classify[ref.series_id].metrics if ref.series_id in classify else {})}
        chosen.append(Chosen(ref.series_id, ref.item_key, patient, study, row, files))
    return sorted(chosen, key=lambda c: (c.patient, c.study, c.key))


def lineage_head(catalog: Catalog) -> str:
    """The newest ledger event that is not a release's own (GENESIS on an empty ledger)."""
    with catalog.session() as s:
        head = s.scalar(select(LineageEvent.hash).where(LineageEvent.stage != STAGE)
                        .order_by(LineageEvent.id.desc()).limit(1))
    return head or GENESIS


def release_date(catalog: Catalog, spec: ReleaseSpec) -> date:
    """The spec's release date, else the date of the newest non-release ledger event (1970-01-01
    on an empty ledger): a function of the catalog, so building again gives the same labels."""
    if spec.released_on is not None:
        return spec.released_on
    with catalog.session() as s:
        at = s.scalar(select(LineageEvent.at).where(LineageEvent.stage != STAGE).order_by(LineageEvent.id.desc())
                      .limit(1))
    return at.date() if at is not None else date(1970, 1, 1)


def _rounds(catalog: Catalog, spec: ReleaseSpec, series_ids: set[int]) -> list[AnnotationRound]:
    """Labels rounds that read a selected series (only those of the spec when it names rounds)."""
    with catalog.session() as s:
        query = (select(AnnotationRound).join(AnnotationItem, AnnotationItem.round_id == AnnotationRound.id)
                 .where(AnnotationRound.kind == LABELS_ROUND, AnnotationItem.series_id.in_(list(series_ids)))
                 .distinct().order_by(AnnotationRound.id))
        if spec.rounds:
            query = query.where(AnnotationRound.id.in_(list(spec.rounds)))
        rounds = list(s.scalars(query))
        s.expunge_all()
    return rounds


def _round_tables(catalog: Catalog, rounds: list[AnnotationRound],
                  keys: dict[int, str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bytes]:
    """The rows of readings.parquet and consensus.parquet (sorted) and agreement.json of the rounds,
    limited to the selected series."""
    ids = [r.id for r in rounds]
    with catalog.session() as s:
        items = {i.id: i for i in s.scalars(select(AnnotationItem).where(AnnotationItem.round_id.in_(ids)))}
        reports = {(r.round_id, r.reader): r for r in s.scalars(select(ReaderReport).where(ReaderReport.round_id.in_(ids)))}
        readings = []
        for r in s.scalars(select(Reading).where(Reading.round_id.in_(ids))):
            if items[r.item_id].series_id not in keys:
                continue
            report = reports.get((r.round_id, r.reader))
            readings.append({**{c: getattr(r, c) for c in READING_COLUMNS if hasattr(r, c)}, "round": r.round_id,
                             "series": keys[items[r.item_id].series_id],
                             "reader_passes_qc": report.passes_qc if report else None,
                             "reader_qc_flags": sorted(map(str, report.qc_flags or [])) if report else None,
                             "is_gold": items[r.item_id].is_gold})
        consensus = [{**{c: getattr(r, c) for c in CONSENSUS_COLUMNS if hasattr(r, c)}, "round": r.round_id,
                      "series": keys[items[r.item_id].series_id]}
                     for r in s.scalars(select(ConsensusLabel).where(ConsensusLabel.round_id.in_(ids)))
                     if items[r.item_id].series_id in keys]
    readings.sort(key=lambda r: (r["round"], r["series"], r["label"], r["reader"], r["record"], r["ordinal"]))
    consensus.sort(key=lambda r: (r["round"], r["series"], r["label"], r["method"], r["ordinal"]))
    agreement = {str(r.id): {"project": r.project, "name": r.name, "schema": f"{r.schema_name}_v{r.schema_version}",
                             "state": r.state,
                             "summary": strict_json({k: v for k, v in (r.summary or {}).items() if k != "rewards"})}
                 for r in rounds}
    return readings, consensus, (canonical_json(agreement) + "\n").encode()


def _series_labels(c: Chosen, rounds: list[AnnotationRound], labelled: dict[tuple[int, int], RoundConsensus],
                   dicom: list[bytes], identity: ReleaseIdentity,
                   skipped: list[Skipped]) -> list[tuple[str, bytes]]:
    """SR and SEG of one released series in each round that labelled it (curation.release.labelling),
    `dicom`: its released instances in release order. A series whose labels cannot be DICOM (not
    DICOM, unreadable, refused by highdicom) gets none; `skipped` records it with the reason, and
    provenance lists it."""
    found = [(rnd.id, labelled[(rnd.id, c.series_id)]) for rnd in rounds if (rnd.id, c.series_id) in labelled]
    if not found:
        return []
    try:
        sources = [pydicom.dcmread(io.BytesIO(d)) for d in dicom]
    except Exception as exc:  # noqa: BLE001 - a file the release holds but pydicom cannot read
        sources, why = [], f"released instances are not readable DICOM ({type(exc).__name__})"
    else:
        why = "no released DICOM instance to reference"
    out: list[tuple[str, bytes]] = []
    folder = "labels/" + c.files[0][1].split("/", 1)[1].rsplit("/", 1)[0] + "/"
    for round_id, consensus in found:
        if not sources:
            skipped.append(Skipped(c.key, round_id, why))
            continue
        try:
            out += series_labels(identity, folder, c.key, round_id, sources, consensus)
        except ValueError as exc:
            skipped.append(Skipped(c.key, round_id, str(exc)))
    return out


def _stage_provenance(catalog: Catalog, ids: list[int]) -> dict[str, Any]:
    out = {}
    for stage in PROVENANCE_STAGES:
        records = newest_records(catalog, stage, ids).values()
        out[stage] = {"versions": sorted({r.stage_version for r in records}),
                      "config_hashes": sorted({r.config_hash for r in records})}
    return out


def _clear(store: Store, prefix: str) -> None:
    for key in list(store.list(Zone.RELEASES, prefix)):
        store.delete(Zone.RELEASES, key, missing_ok=True)


def _deid_method(data: bytes) -> str | None:
    """The DeidentificationMethod (0012,0063) a released DICOM carries, its values joined: the
    de-identifier's own statement of the profile and options applied."""
    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, specific_tags=["DeidentificationMethod"])
    except Exception:  # noqa: BLE001 - a file the release holds but pydicom cannot read: no statement
        return None
    value = ds.get("DeidentificationMethod")
    if value is None:
        return None
    return "; ".join(str(v) for v in (value if isinstance(value, pydicom.multival.MultiValue) else [value]))


def build(catalog: Catalog, store: Store, spec: ReleaseSpec) -> BuildResult:
    """Build `spec` into `releases/<name>/.staging-<version>/` (replacing an earlier build of that
    version there) and return its manifest hash and counts; publish with `curation.release.publish`."""
    check_name(spec.name)
    published = published_versions(store, spec.name)
    previous = published[-1] if published else None
    version = Version.parse(spec.version) if spec.version else next_version(previous, spec.bump)
    if version in published:
        raise ReleaseError(f"release {spec.name}@{version} is already published; published releases are immutable")
    chosen = choose(catalog, spec)
    if not chosen:
        raise ReleaseError(f"the selection {spec.selection_json()} matches no de-identified series")
    prefix = staging_prefix(spec.name, version)
    _clear(store, prefix)
    entries: list[ManifestEntry] = []

    def put(path: str, data: bytes) -> None:
        store.put_bytes(Zone.RELEASES, prefix + path, data)
        entries.append(ManifestEntry.of(path, data))

    assignment = release_splits.assign_all((c.patient for c in chosen), spec.splits)
    keys = {c.series_id: c.key for c in chosen}
    rounds = _rounds(catalog, spec, set(keys))
    labelled = consensus_of_rounds(catalog, [r.id for r in rounds], set(keys))
    identity = ReleaseIdentity(spec.name, str(version), release_date(catalog, spec))
    skipped: list[Skipped] = []
    drawn_on = {sid for _, sid in labelled}
    methods: Counter[str] = Counter()
    not_volumes: list[dict[str, str]] = []
    with bulk_writes(store):
        for c in chosen:
            content = hashlib.sha256()
            as_nifti = FORMAT_NIFTI in spec.formats and is_volume_row(c.row)
            dicom: list[bytes] = []  # this series' released DICOM, while labels and NIfTI are made of them
            method = None
            for deid_key, path in c.files:
                data = store.get_bytes(Zone.DEID, deid_key)
                put(path, data)
                content.update(f"{path}\0{hashlib.sha256(data).hexdigest()}\n".encode())
                if path.endswith(".dcm"):
                    method = method or _deid_method(data)
                    if c.series_id in drawn_on or as_nifti:
                        dicom.append(data)
            if method:
                methods[method] += 1
            c.row.update(split=assignment[c.patient], content_sha256=content.hexdigest())
            if as_nifti:
                try:
                    put(nifti_path(c.files[0][1]), series_nifti(dicom))
                except NotAVolume as exc:
                    not_volumes.append({"series": c.key, "reason": str(exc)})
            for path, data in _series_labels(c, rounds, labelled, dicom, identity, skipped):
                put(path, data)
    put(SERIES_TABLE, to_parquet((c.row for c in chosen), SERIES_SCHEMA))
    readings, consensus, agreement = _round_tables(catalog, rounds, keys)
    put(READINGS_TABLE, to_parquet(readings, READING_SCHEMA))
    put(CONSENSUS_TABLE, to_parquet(consensus, CONSENSUS_SCHEMA))
    put(AGREEMENT_TABLE, agreement)
    stages = _stage_provenance(catalog, list(keys))
    provenance = {"name": spec.name, "version": str(version), "previous": str(previous) if previous else None,
                  "code": code_version(), "selection": spec.selection_json(), "splits": spec.splits.to_json(),
                  "license": spec.license, "stages": stages,
                  "rounds": [{"id": r.id, "project": r.project, "name": r.name,
                              "schema": f"{r.schema_name}_v{r.schema_version}"} for r in rounds],
                  "lineage_head": lineage_head(catalog), "released_on": identity.released_on.isoformat(),
                  "labels_skipped": [k.to_json() for k in skipped]}
    if FORMAT_NIFTI in spec.formats:
        provenance["nifti_skipped"] = not_volumes
    put("provenance.json", (canonical_json(provenance) + "\n").encode())
    old = StoreTree(store, release_prefix(spec.name, previous)) if previous else None
    changes = release_diff.diff_trees(old, StoreTree(store, prefix), f"{spec.name}@{previous}" if previous else None,
                                      f"{spec.name}@{version}")
    put("CHANGES.md", release_diff.changes_markdown(changes).encode())
    card = DatasetCard(spec.name, str(version), identity.released_on, spec.license, spec.description)
    put(CROISSANT_JSON, croissant_json(card, entries))
    roles = Counter(e.role for e in entries)
    facts = gather(catalog, name=spec.name, version=str(version), previous=str(previous) if previous else None,
                   released_on=identity.released_on.isoformat(), license=spec.license, description=spec.description,
                   selection=spec.selection_json(), split_plan=spec.splits.to_json(), chosen_ids=list(keys),
                   rows=[c.row for c in chosen], readings=readings, rounds=rounds, deid_methods=methods,
                   decisions=spec.decisions, stages=stages, nifti=roles[NIFTI_ROLE], label_files=roles[ROLES["labels"]],
                   labels_skipped=len(skipped))
    put(DATASHEET_MD, datasheet_markdown(facts).encode())
    put(MANIFEST_PARQUET, Manifest(spec.name, str(version), tuple(entries)).to_parquet())
    manifest = Manifest(spec.name, str(version), tuple(entries))
    store.put_bytes(Zone.RELEASES, prefix + MANIFEST_JSON, manifest.to_bytes())
    figures = {k: v["new"] for k, v in changes.counts.items()}
    append_event(catalog, stage=STAGE, action="build", subject=f"release:{spec.name}@{version}",
                 inputs=[f"series:{c.series_id}" for c in chosen], outputs=[f"sha256:{manifest.sha256}"],
                 details={"prefix": prefix, "counts": figures})
    return BuildResult(spec.name, str(version), str(previous) if previous else None, prefix, manifest.sha256, figures)


__all__ = ["BuildResult", "Chosen", "FORMATS", "FORMAT_DICOM", "FORMAT_NIFTI", "PROVENANCE_STAGES", "ReleaseError", "ReleaseSpec", "STAGE", "build", "choose",
           "code_version", "lineage_head", "release_date", "release_path", "series_sites"]
