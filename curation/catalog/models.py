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
    DateTime,
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
