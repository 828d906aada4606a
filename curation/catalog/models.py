"""Catalog tables: what was ingested, from where, what each stage concluded, what was quarantined.

The catalog is restricted like the raw zone (it holds source UIDs and source paths), so nothing
from it goes to logs or XCom except integer ids, content hashes and counts. Patients are keyed by a
SHA-256 of (site, PatientID), never by the PatientID itself.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from curation.settings import DEFAULT_SITE


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Source(Base):
    """Where files came from: a folder, an archive, an S3 prefix or a DICOMweb server."""

    __tablename__ = "source"
    __table_args__ = (UniqueConstraint("kind", "uri", name="uq_source_kind_uri"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    uri: Mapped[str] = mapped_column(String(2048))
    site: Mapped[str] = mapped_column(String(128), default=DEFAULT_SITE)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Patient(Base):
    __tablename__ = "patient"
    __table_args__ = (UniqueConstraint("site", "patient_key", name="uq_patient_site_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site: Mapped[str] = mapped_column(String(128))
    #: SHA-256 hex of "site\0PatientID": groups a patient's studies without storing the ID.
    patient_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    studies: Mapped[list[Study]] = relationship(back_populates="patient")


class Study(Base):
    __tablename__ = "study"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    study_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    patient: Mapped[Patient] = relationship(back_populates="studies")
    series: Mapped[list[Series]] = relationship(back_populates="study")


class Series(Base):
    """A DICOM series, or one non-DICOM image file (PNG/JPEG/NIfTI) standing as its own series."""

    __tablename__ = "series"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int | None] = mapped_column(ForeignKey("study.id"), index=True, nullable=True)
    #: NULL for non-DICOM images, which have no UID.
    series_instance_uid: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    format: Mapped[str] = mapped_column(String(16), default="dicom")
    modality: Mapped[str | None] = mapped_column(String(16), nullable=True)
    sop_class_uid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    study: Mapped[Study | None] = relationship(back_populates="series")
    instances: Mapped[list[Instance]] = relationship(back_populates="series")


class Instance(Base):
    """One stored object of the raw zone, by its content hash."""

    __tablename__ = "instance"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    #: NULL for non-DICOM images.
    sop_instance_uid: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    raw_key: Mapped[str] = mapped_column(String(256))
    format: Mapped[str] = mapped_column(String(16), default="dicom")
    transfer_syntax_uid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    rows: Mapped[int | None] = mapped_column(Integer, nullable=True)
    columns: Mapped[int | None] = mapped_column(Integer, nullable=True)
    number_of_frames: Mapped[int | None] = mapped_column(Integer, nullable=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("source.id"), index=True)
    #: Path of the file inside its source (restricted: hospital exports put names in folders).
    source_path: Mapped[str] = mapped_column(String(2048))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    series: Mapped[Series] = relationship(back_populates="instances")


class StageRecord(Base):
    """The outcome of one stage on one subject, keyed for idempotency (table stage_result; the
    in-process value is `curation.pipeline.StageResult`).

    A rerun with the same (stage, version, subject, input hash, config hash) finds this row and skips.
    """

    __tablename__ = "stage_result"
    __table_args__ = (
        UniqueConstraint(
            "stage", "stage_version", "subject_type", "subject_id", "input_hash", "config_hash",
            name="uq_stage_result_key",
        ),
        Index("ix_stage_result_subject", "subject_type", "subject_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stage: Mapped[str] = mapped_column(String(32))
    stage_version: Mapped[str] = mapped_column(String(32))
    subject_type: Mapped[str] = mapped_column(String(16))  # "series" | "instance" | "study"
    subject_id: Mapped[int] = mapped_column(Integer)
    input_hash: Mapped[str] = mapped_column(String(64))
    config_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # ok | failed | review | excluded | skipped
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    output_uri: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class QuarantineRecord(Base):
    """A file a stage refused, with a specific machine-readable reason and a human sentence."""

    __tablename__ = "quarantine_record"
    __table_args__ = (
        UniqueConstraint("source_id", "file", "stage", "reason_code", "sha256", name="uq_quarantine_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int | None] = mapped_column(ForeignKey("source.id"), index=True, nullable=True)
    file: Mapped[str] = mapped_column(String(2048))
    #: Content hash when bytes could be read; the bytes are then kept in the raw zone under raw_key.
    sha256: Mapped[str] = mapped_column(String(64), default="")
    raw_key: Mapped[str | None] = mapped_column(String(256), nullable=True)
    stage: Mapped[str] = mapped_column(String(32))
    reason_code: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    resolution: Mapped[str | None] = mapped_column(Text, nullable=True)


class LineageEvent(Base):
    """One entry of the append-only, hash-chained audit ledger (see curation.catalog.lineage)."""

    __tablename__ = "lineage_event"
    #: A unique predecessor keeps the chain linear even with concurrent writers: a fork fails to insert.
    __table_args__ = (UniqueConstraint("prev_hash", name="uq_lineage_prev_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(String(128))
    stage: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(256))
    inputs: Mapped[list[Any]] = mapped_column(JSON, default=list)
    outputs: Mapped[list[Any]] = mapped_column(JSON, default=list)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


# --- the annotation round: what was sent to readers, what they read, what was concluded ----------
# Readers appear only as pseudonyms (a keyed hash of their service username, see
# curation.pipeline.collect.reader_pseudonym): no name, username or e-mail enters the catalog.


class AnnotationRound(Base):
    """One round of reading: the series sent to an annotation-service project under one label
    schema version, its state, the service's round, and the round's summary (counts, agreement)."""

    __tablename__ = "annotation_round"
    #: `name` is the caller's key (an Airflow run id): planning the same round again finds this row.
    __table_args__ = (UniqueConstraint("project", "name", name="uq_annotation_round_project_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(128))
    #: labels | quality_review (the service's project kinds)
    kind: Mapped[str] = mapped_column(String(32))
    schema_name: Mapped[str] = mapped_column(String(64))
    schema_version: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: planned | dispatched | collected | analysed (curation.pipeline.dispatch.RoundState)
    state: Mapped[str] = mapped_column(String(16))
    service_round_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    service_round_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    n_items: Mapped[int] = mapped_column(Integer, default=0)
    n_readings: Mapped[int] = mapped_column(Integer, default=0)
    n_readers: Mapped[int] = mapped_column(Integer, default=0)
    #: the analysis' figures: counts, Fleiss' kappa and Krippendorff's alpha with CIs, QC, rewards
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    items: Mapped[list[AnnotationItem]] = relationship(back_populates="round")


class AnnotationItem(Base):
    """One series of a round as the service knows it: `item_key` is the de-identified series'
    key (its de-identified SeriesInstanceUID, or the content hash of a de-identified image)."""

    __tablename__ = "annotation_item"
    __table_args__ = (UniqueConstraint("round_id", "item_key", name="uq_annotation_item_round_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("annotation_round.id"), index=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    item_key: Mapped[str] = mapped_column(String(128), index=True)
    service_item_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    is_gold: Mapped[bool] = mapped_column(Boolean, default=False)
    #: label -> 0/1, the known answer of a gold item (QC's gold accuracy reads it)
    gold_answer: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    #: image size in pixels where boxes are drawn on the stored grid (QC's box geometry reads it)
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    round: Mapped[AnnotationRound] = relationship(back_populates="items")


class Reading(Base):
    """One answer of one reader: a yes/no label (record `label`) or one region (record `roi`: a
    box, a freehand outline or a mask). Unique on the service's task and the record's place in it,
    so collecting the same export twice writes nothing twice."""

    __tablename__ = "reading"
    __table_args__ = (
        UniqueConstraint("round_id", "task_id", "record", "label", "ordinal", name="uq_reading_task_record"),
        Index("ix_reading_round_label", "round_id", "label"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("annotation_round.id"))
    item_id: Mapped[int] = mapped_column(ForeignKey("annotation_item.id"), index=True)
    task_id: Mapped[int] = mapped_column(Integer)
    record: Mapped[str] = mapped_column(String(8))  # label | roi
    ordinal: Mapped[int] = mapped_column(Integer, default=0)  # the n-th region of this task and label
    label: Mapped[str] = mapped_column(String(64))
    reader: Mapped[str] = mapped_column(String(64), index=True)  # pseudonym
    value: Mapped[int | None] = mapped_column(Integer, nullable=True)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    roi_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)  # box | freehand | mask
    instance: Mapped[int | None] = mapped_column(Integer, nullable=True)
    frame: Mapped[int | None] = mapped_column(Integer, nullable=True)
    x0: Mapped[float | None] = mapped_column(Float, nullable=True)
    y0: Mapped[float | None] = mapped_column(Float, nullable=True)
    x1: Mapped[float | None] = mapped_column(Float, nullable=True)
    y1: Mapped[float | None] = mapped_column(Float, nullable=True)
    points: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    mask_uri: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ConsensusLabel(Base):
    """The round's conclusion on one item and label by one method: `majority` and `dawid_skene`
    (value, and the Dawid-Skene posterior P(yes)), `box` (one consensus region per row), `staple`
    (one painted slice per row: its instance and frame, the mask, its pixel count and bounding box)."""

    __tablename__ = "consensus_label"
    __table_args__ = (
        UniqueConstraint("round_id", "item_id", "label", "method", "ordinal", name="uq_consensus_label"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("annotation_round.id"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("annotation_item.id"), index=True)
    label: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(16))
    ordinal: Mapped[int] = mapped_column(Integer, default=0)
    value: Mapped[int | None] = mapped_column(Integer, nullable=True)  # NULL: undecided (a tie left open)
    posterior: Mapped[float | None] = mapped_column(Float, nullable=True)
    n_readers: Mapped[int] = mapped_column(Integer)
    n_positive: Mapped[int | None] = mapped_column(Integer, nullable=True)
    x0: Mapped[float | None] = mapped_column(Float, nullable=True)
    y0: Mapped[float | None] = mapped_column(Float, nullable=True)
    x1: Mapped[float | None] = mapped_column(Float, nullable=True)
    y1: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: a mask row's slice: the 0-based index of the item's instances (release order) and frame
    instance: Mapped[int | None] = mapped_column(Integer, nullable=True)
    frame: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: a mask row's pixels as the service encodes a mask: {rows, columns, rle} (annotation/masks.py)
    mask: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ReaderReport(Base):
    """What the round concluded about one reader (by pseudonym; no profile, no identity): QC flags
    with their reasons, whether QC kept them, their reward and their feedback figures."""

    __tablename__ = "reader_report"
    __table_args__ = (UniqueConstraint("round_id", "reader", name="uq_reader_report_round_reader"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("annotation_round.id"), index=True)
    reader: Mapped[str] = mapped_column(String(64))
    n_readings: Mapped[int] = mapped_column(Integer, default=0)
    qc_flags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    passes_qc: Mapped[bool] = mapped_column(Boolean)
    reward: Mapped[float] = mapped_column(Float, default=0.0)
    feedback: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class QualityReview(Base):
    """A person's quality decision on a series (approve / exclude / quarantine with a reason), from
    a quality-review round. A series' final decision is the human one where there is one, else the
    quality model's (curation.pipeline.select.final_quality_decision)."""

    __tablename__ = "quality_review"
    __table_args__ = (
        UniqueConstraint("round_id", "series_id", "reviewer", name="uq_quality_review_round_series_reviewer"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    series_key: Mapped[str] = mapped_column(String(128))  # the de-identified series' key (item key)
    round_id: Mapped[int | None] = mapped_column(ForeignKey("annotation_round.id"), index=True, nullable=True)
    decision: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    reviewer: Mapped[str] = mapped_column(String(64))  # pseudonym
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
