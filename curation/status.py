"""Where the catalog stands, per site: what `curate status` prints and the operator's page shows.

Every figure is one aggregate query (GROUP BY in the database, no loop over rows), so a site of tens
of thousands of instances answers in milliseconds. Nothing here returns PHI: sites, counts, stage
words, content hashes, catalog ids, pseudonyms and the source each file came from. A quarantined
file's path inside its source is never returned (hospital exports name folders after patients);
the content hash and the source identify it, and re-admitting it goes by its catalog id.

Counting rules, stated once:
- a series, instance or quarantined file belongs to the site of the source its bytes came from
  (a de-identification quarantine, which names no source, to the site of the instance whose
  content hash it carries); patients and studies to their patient's site;
- `stages` counts each subject once per stage, by its newest record (a rerun with a new config
  replaces, not adds): series for the per-series stages, studies for registration; `ingest` counts
  instances (`ok`) and files quarantined at ingest (`quarantined`);
- `quarantine` counts the files still quarantined (no resolution recorded), by reason code.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Select, and_, distinct, exists, func, select
from sqlalchemy.orm import aliased

from curation.catalog import Catalog, Instance, LineageEvent, Patient, QuarantineRecord, Source, StageRecord, Study
from curation.catalog.models import AnnotationItem, AnnotationRound, QualityReview, Reading, Series
from curation.vocabulary import StageStatus

#: The stages of `curate_source` in the order a file goes through them (the page's columns).
INGEST_STAGE = "ingest"
PIPELINE_STAGES: tuple[str, ...] = (INGEST_STAGE, "deid", "classify", "quality", "register")
#: What one count of a stage counts.
STAGE_UNITS: dict[str, str] = {INGEST_STAGE: "files", "register": "studies"}
#: The ledger's stage for release events (curation.release.build.STAGE; not imported: that module
#: loads the whole release builder).
RELEASE_STAGE = "release"
#: A release's steps in the order they happen; the furthest one reached is its state.
RELEASE_STEPS: tuple[str, ...] = ("select", "build", "verify", "approval", "publish")
#: A round in one of these states is over on the pipeline's side (curation.pipeline.dispatch.RoundState).
ROUND_DONE_STATES: tuple[str, ...] = ("analysed",)


@dataclass
class SiteStatus:
    """One site's figures (the JSON of `curate status --json`, one object per site)."""

    site: str
    patients: int = 0
    studies: int = 0
    series: int = 0
    instances: int = 0
    stages: dict[str, dict[str, int]] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    quarantine: dict[str, int] = field(default_factory=dict)
    awaiting_review: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class QuarantinedFile:
    """A file still in quarantine: its catalog id (what re-admission names), where it came from (the
    source, never the path inside it), its content hash, the stage that refused it and why."""

    id: int
    site: str | None
    source_id: int | None
    source_kind: str | None
    source_uri: str | None
    sha256: str
    stage: str
    reason_code: str
    reason: str
    created_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["created_at"] = _iso(self.created_at)
        return out


@dataclass(frozen=True)
class ReviewWait:
    """A series the quality model sent to human review that nobody has decided yet."""

    series_id: int
    site: str | None
    modality: str | None
    kind: str | None
    reason: str | None
    since: datetime | None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["since"] = _iso(self.since)
        return out


@dataclass(frozen=True)
class RoundProgress:
    """An annotation round not yet analysed: its readers, how far reading got, and its deadline.
    `completion` is readings collected over readings required (None before anything was collected:
    the service, not the catalog, counts readings while the round is open)."""

    id: int
    project: str
    name: str
    kind: str
    state: str
    items: int
    readers_per_item: int | None
    readers: int
    readings: int
    completion: float | None
    dispatched_at: datetime | None
    deadline: datetime | None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["dispatched_at"], out["deadline"] = _iso(self.dispatched_at), _iso(self.deadline)
        return out


@dataclass(frozen=True)
class ReleaseState:
    """A release version as the ledger tells it: the furthest step reached, when, and its files."""

    name: str
    version: str
    state: str
    at: datetime | None
    files: int | None
    steps: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["at"], out["steps"] = _iso(self.at), list(self.steps)
        return out


def _iso(at: datetime | None) -> str | None:
    """UTC ISO time (SQLite gives naive datetimes that are UTC, PostgreSQL aware ones)."""
    if at is None:
        return None
    if at.tzinfo is not None:
        at = at.astimezone(timezone.utc).replace(tzinfo=None)
    return at.isoformat(timespec="seconds") + "Z"


# --- the building blocks: which site each subject belongs to -----------------------------------------

def _series_site() -> Any:
    """(series_id, site) for every series, from the sources of its instances."""
    return (select(Instance.series_id.label("series_id"), Source.site.label("site"))
            .join(Source, Source.id == Instance.source_id).distinct().subquery("series_site"))


def _study_site() -> Any:
    return select(Study.id.label("study_id"), Patient.site.label("site")).join(
        Patient, Patient.id == Study.patient_id).subquery("study_site")


def _newest() -> Any:
    """True for a stage record that no later record of the same stage and subject replaced. A
    correlated NOT EXISTS on the (subject_type, subject_id) index: the plan stays an index lookup per
    record even where PostgreSQL has no statistics yet (a freshly loaded catalog), where a join on
    `max(id) ... GROUP BY` was planned as a nested loop over both sides (seconds at 10,000 instances)."""
    newer = aliased(StageRecord)
    return ~exists().where(newer.subject_type == StageRecord.subject_type, newer.subject_id == StageRecord.subject_id,
                           newer.stage == StageRecord.stage, newer.id > StageRecord.id)


def _quarantine_site() -> tuple[Any, Any]:
    """Each unresolved quarantine record with its source: its own, or (a de-identification quarantine
    names no source) the source of the first instance with the same content hash. Returns (site
    expression, query of (record, site, source kind, source URI, source id))."""
    by_hash = (select(func.min(Instance.source_id)).where(Instance.sha256 == QuarantineRecord.sha256)
               .correlate(QuarantineRecord).scalar_subquery())  # an index lookup, only where no source is named
    query = (select(QuarantineRecord, Source.site, Source.kind, Source.uri, Source.id)
             .outerjoin(Source, Source.id == func.coalesce(QuarantineRecord.source_id, by_hash))
             .where(QuarantineRecord.resolved_at.is_(None)))
    return Source.site, query


def _awaiting_review_query() -> Select:
    """Series whose newest quality record says review and that no person has decided."""
    decided = select(QualityReview.series_id)
    return (select(StageRecord.subject_id.label("series_id"), StageRecord.reason, StageRecord.created_at)
            .where(StageRecord.stage == "quality", StageRecord.subject_type == "series",
                   StageRecord.status == StageStatus.REVIEW, _newest(), StageRecord.subject_id.not_in(decided)))


# --- what `curate status` and the page show --------------------------------------------------------

def site_status(catalog: Catalog, site: str | None = None) -> list[SiteStatus]:
    """Per site (or only `site`): patients, studies, series, instances; per stage the subjects by
    outcome and the stage's work time; the quarantine by reason code; the series awaiting review."""
    sites: dict[str, SiteStatus] = {}

    def at(name: str | None) -> SiteStatus | None:
        name = name or ""
        if site is not None and name != site:
            return None
        return sites.setdefault(name, SiteStatus(site=name))

    series_site, study_site = _series_site(), _study_site()
    seconds = StageRecord.metrics["seconds"].as_float()
    with catalog.session() as s:
        for name in s.scalars(select(Source.site).distinct()):
            at(name)
        for name, n in s.execute(select(Patient.site, func.count()).group_by(Patient.site)):
            if (row := at(name)) is not None:
                row.patients = n
        for name, n in s.execute(select(Patient.site, func.count(Study.id)).join(Study, Study.patient_id == Patient.id)
                                 .group_by(Patient.site)):
            if (row := at(name)) is not None:
                row.studies = n
        for name, n_series, n_instances in s.execute(
                select(Source.site, func.count(distinct(Instance.series_id)), func.count(Instance.id))
                .join(Source, Source.id == Instance.source_id).group_by(Source.site)):
            if (row := at(name)) is not None:
                row.series, row.instances = n_series, n_instances
                row.stages.setdefault(INGEST_STAGE, {})[StageStatus.OK] = n_instances

        per_subject = [
            (series_site, series_site.c.series_id, "series"),
            (study_site, study_site.c.study_id, "study"),
        ]
        for table, key, subject_type in per_subject:
            query = (select(table.c.site, StageRecord.stage, StageRecord.status, func.count(),
                            func.sum(seconds), func.count(seconds))
                     .join(table, and_(StageRecord.subject_type == subject_type, key == StageRecord.subject_id))
                     .where(_newest())
                     .group_by(table.c.site, StageRecord.stage, StageRecord.status))
            for name, stage, status, n, total, timed in s.execute(query):
                if (row := at(name)) is not None:
                    row.stages.setdefault(stage, {})[status] = row.stages.get(stage, {}).get(status, 0) + n
                    if timed:
                        row.stage_seconds[stage] = round(row.stage_seconds.get(stage, 0.0) + float(total or 0), 3)

        q_site, q_query = _quarantine_site()
        counts = q_query.with_only_columns(q_site, QuarantineRecord.stage, QuarantineRecord.reason_code, func.count())
        for name, stage, code, n in s.execute(counts.group_by(q_site, QuarantineRecord.stage,
                                                              QuarantineRecord.reason_code)):
            if (row := at(name)) is not None:
                row.quarantine[code] = row.quarantine.get(code, 0) + n
                if stage == INGEST_STAGE:
                    row.stages.setdefault(INGEST_STAGE, {})[StageStatus.QUARANTINED] = (
                        row.stages[INGEST_STAGE].get(StageStatus.QUARANTINED, 0) + n)

        waiting = _awaiting_review_query().subquery("waiting")
        for name, n in s.execute(select(series_site.c.site, func.count())
                                 .join(waiting, waiting.c.series_id == series_site.c.series_id)
                                 .group_by(series_site.c.site)):
            if (row := at(name)) is not None:
                row.awaiting_review = n
    if site is not None and site not in sites:
        sites[site] = SiteStatus(site=site)
    return [sites[name] for name in sorted(sites)]


def _quarantined(row: Any) -> QuarantinedFile:
    q, site, kind, uri, source_id = row
    return QuarantinedFile(id=q.id, site=site, source_id=source_id, source_kind=kind, source_uri=uri, sha256=q.sha256,
                           stage=q.stage, reason_code=q.reason_code, reason=q.reason, created_at=q.created_at)


def quarantined_files(catalog: Catalog, site: str | None = None, reason_code: str | None = None,
                      limit: int = 500) -> list[QuarantinedFile]:
    """Files still in quarantine, newest first (at most `limit`), with their source and content hash."""
    q_site, query = _quarantine_site()
    if site is not None:
        query = query.where(q_site == site)
    if reason_code is not None:
        query = query.where(QuarantineRecord.reason_code == reason_code)
    with catalog.session() as s:
        return [_quarantined(row) for row in s.execute(query.order_by(QuarantineRecord.id.desc()).limit(limit))]


def quarantined_file(catalog: Catalog, quarantine_id: int) -> QuarantinedFile | None:
    """One quarantine record by id while it is unresolved, with its source (where a re-admitted file
    is read again)."""
    _, query = _quarantine_site()
    with catalog.session() as s:
        row = s.execute(query.where(QuarantineRecord.id == quarantine_id)).first()
    return None if row is None else _quarantined(row)


def awaiting_review(catalog: Catalog, site: str | None = None, limit: int = 500) -> list[ReviewWait]:
    """Series the quality model sent to review that no person has decided, oldest first."""
    waiting = _awaiting_review_query().subquery("waiting")
    series_site = _series_site()
    kind = (select(StageRecord.subject_id.label("series_id"), StageRecord.metrics["kind"].as_string().label("kind"))
            .where(StageRecord.stage == "classify", StageRecord.subject_type == "series", _newest())
            .subquery("kind"))
    query = (select(waiting.c.series_id, series_site.c.site, Series.modality, kind.c.kind, waiting.c.reason,
                    waiting.c.created_at)
             .join(Series, Series.id == waiting.c.series_id)
             .outerjoin(series_site, series_site.c.series_id == waiting.c.series_id)
             .outerjoin(kind, kind.c.series_id == waiting.c.series_id))
    if site is not None:
        query = query.where(series_site.c.site == site)
    with catalog.session() as s:
        rows = s.execute(query.order_by(waiting.c.created_at, waiting.c.series_id).limit(limit)).all()
    return [ReviewWait(series_id=sid, site=name, modality=modality, kind=k, reason=reason, since=since)
            for sid, name, modality, k, reason, since in rows]


def rounds_in_progress(catalog: Catalog) -> list[RoundProgress]:
    """Annotation rounds not yet analysed, newest first, with their readers, completion and deadline."""
    items = (select(AnnotationItem.round_id, func.count().label("n_items"))
             .group_by(AnnotationItem.round_id).subquery("round_items"))
    readings = (select(Reading.round_id, func.count(distinct(Reading.reader)).label("readers"),
                       func.count(distinct(Reading.task_id)).label("readings"))
                .group_by(Reading.round_id).subquery("readings"))
    query = (select(AnnotationRound, func.coalesce(items.c.n_items, 0), func.coalesce(readings.c.readers, 0),
                    func.coalesce(readings.c.readings, 0))
             .outerjoin(items, items.c.round_id == AnnotationRound.id)
             .outerjoin(readings, readings.c.round_id == AnnotationRound.id)
             .where(AnnotationRound.state.not_in(ROUND_DONE_STATES))
             .order_by(AnnotationRound.id.desc()))
    out = []
    with catalog.session() as s:
        for rnd, n_items, n_readers, n_readings in s.execute(query):
            params = rnd.params or {}
            per_item = params.get("readers_per_item")
            per_item = int(per_item) if per_item else None
            required = n_items * per_item if per_item else 0
            hours = params.get("deadline_hours")
            deadline = rnd.dispatched_at + timedelta(hours=float(hours)) if rnd.dispatched_at and hours else None
            out.append(RoundProgress(id=rnd.id, project=rnd.project, name=rnd.name, kind=rnd.kind, state=rnd.state,
                                     items=n_items, readers_per_item=per_item, readers=n_readers, readings=n_readings,
                                     completion=round(min(n_readings / required, 1.0), 3) if required and n_readings
                                     else None, dispatched_at=rnd.dispatched_at, deadline=deadline))
    return out


def releases(catalog: Catalog, limit: int = 100) -> list[ReleaseState]:
    """Release versions from the ledger's release events, most recently active first: the furthest
    step each reached (select, build, verify, approval, publish; `rejected` where the data owner
    rejected it and it was not published) and the published file count."""
    query = (select(LineageEvent.subject, LineageEvent.action, func.max(LineageEvent.at), func.max(LineageEvent.id))
             .where(LineageEvent.stage == RELEASE_STAGE).group_by(LineageEvent.subject, LineageEvent.action))
    found: dict[str, dict[str, tuple[datetime, int]]] = {}
    with catalog.session() as s:
        for subject, action, at, newest in s.execute(query):
            found.setdefault(subject, {})[action] = (at, newest)
        wanted = [steps[a][1] for steps in found.values() for a in ("approval", "publish") if a in steps]
        details = dict(s.execute(select(LineageEvent.id, LineageEvent.details).where(LineageEvent.id.in_(wanted))).all())
    out = []
    for subject, steps in found.items():
        name, _, version = subject.removeprefix("release:").partition("@")
        order = sorted(steps, key=lambda a: RELEASE_STEPS.index(a) if a in RELEASE_STEPS else -1)
        state = order[-1]
        approval = details.get(steps["approval"][1], {}) if "approval" in steps else {}
        if state == "approval" and "Reject" in (approval.get("chosen") or []):
            state = "rejected"
        published = details.get(steps["publish"][1], {}) if "publish" in steps else {}
        out.append(ReleaseState(name=name, version=version, state=state, at=max(at for at, _ in steps.values()),
                                files=published.get("files"), steps=tuple(order)))
    out.sort(key=lambda r: (r.at, r.name, r.version), reverse=True)
    return out[:limit]


def status(catalog: Catalog, site: str | None = None) -> dict[str, Any]:
    """Everything `curate status --json` prints: `sites` (a list of per-site objects with `patients`,
    `studies`, `series`, `instances`, `stages` {stage: {status: count}}, `quarantine` {reason: count}),
    the series awaiting review, rounds in progress and releases."""
    return {
        "sites": [row.to_json() for row in site_status(catalog, site)],
        "awaiting_review": [row.to_json() for row in awaiting_review(catalog, site)],
        "rounds": [row.to_json() for row in rounds_in_progress(catalog)],
        "releases": [row.to_json() for row in releases(catalog)],
    }


def ordered_stages(stages: Iterable[str]) -> list[str]:
    """The pipeline's stages first, in their order, then any other stage recorded (alphabetically)."""
    names = set(stages)
    return [s for s in PIPELINE_STAGES if s in names] + sorted(names - set(PIPELINE_STAGES))


__all__ = ["INGEST_STAGE", "PIPELINE_STAGES", "QuarantinedFile", "ReleaseState", "ReviewWait", "RoundProgress",
           "STAGE_UNITS", "SiteStatus", "awaiting_review", "ordered_stages", "quarantined_file",
           "quarantined_files", "releases", "rounds_in_progress", "site_status", "status"]
