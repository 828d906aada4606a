"""ORM models of the service's own database (SQLAlchemy 2, typed mappings).

Times are stored as naive UTC so SQLite and PostgreSQL behave the same.
"""
from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from annotation.db import Base


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Role(str, enum.Enum):
    """Per-project roles (MarkIt's owner/manager/data owner/annotator, plus reviewer)."""

    OWNER = "owner"
    MANAGER = "manager"
    DATA_OWNER = "data_owner"
    ANNOTATOR = "annotator"
    REVIEWER = "reviewer"
    PIPELINE = "pipeline"  # service accounts: register items, run rounds, read completion, export


class ProjectKind(str, enum.Enum):
    """What readers do in a project: answer a label schema, or decide on a series' quality."""

    LABELS = "labels"
    QUALITY_REVIEW = "quality_review"
    VALIDATION = "validation"  # readers rate a model's outputs (accept / reject / correct, with a reason)


class QualityDecision(str, enum.Enum):
    """PRIMAGE's three outcomes of a human quality review of a series."""

    APPROVE = "approve"
    EXCLUDE = "exclude"
    QUARANTINE = "quarantine"


class RoundState(str, enum.Enum):
    OPEN = "open"  # readers work on it
    COMPLETE = "complete"  # every non-gold item has its readings; still accepts none it does not need
    CLOSED = "closed"  # no reading accepted any more (by hand, or by the pipeline at the deadline)


class Level(str, enum.Enum):
    """Reader privilege: a verifier must rank above the reader whose work it checks."""

    JUNIOR = "junior"
    SENIOR = "senior"


class TaskKind(str, enum.Enum):
    ANNOTATE = "annotate"
    VERIFY = "verify"


class TaskStatus(str, enum.Enum):
    OPEN = "open"  # waiting for a reader
    ASSIGNED = "assigned"  # in a reader's hands (leased)
    SUBMITTED = "submitted"
    SKIPPED = "skipped"
    CLOSED = "closed"  # its round was closed before it was read: never submitted


class User(Base):
    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128), default="")
    password_hash: Mapped[str] = mapped_column(String(256))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # A service account (the pipeline): no password, acts only through its API token.
    is_service: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    memberships: Mapped[list["Membership"]] = relationship(back_populates="user", cascade="all, delete-orphan")


class LoginSession(Base):
    """A login: only the SHA-256 of the bearer token is stored, so a DB leak gives no live session."""

    __tablename__ = "login_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)

    user: Mapped[User] = relationship()


class ServiceToken(Base):
    """The API token of a service account; stored as SHA-256 like session tokens, shown once.

    Its scope is the account's memberships (project x role), so every endpoint checks it through
    the same permissions matrix as a person."""

    __tablename__ = "service_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    user: Mapped[User] = relationship()


class LoginAttempt(Base):
    """Failed logins, kept in the DB so the rate limit holds across worker processes."""

    __tablename__ = "login_attempt"
    __table_args__ = (Index("ix_login_attempt_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(160))
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Project(Base):
    __tablename__ = "project"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    readers_per_item: Mapped[int] = mapped_column(Integer, default=1)
    gold_rate: Mapped[float] = mapped_column(Float, default=0.0)
    verification_levels: Mapped[int] = mapped_column(Integer, default=0)
    current_round: Mapped[int] = mapped_column(Integer, default=1)
    webhook_url: Mapped[str | None] = mapped_column(String(512), nullable=True)
    schema_version: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[str] = mapped_column(String(16), default=ProjectKind.LABELS.value, server_default=ProjectKind.LABELS.value)
    # Model suggestions stay hidden until the reader has answered every label once (measures anchoring).
    blind_first: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"), nullable=True)


class Round(Base):
    """A reading round of a project: its items are the project's items with this round number."""

    __tablename__ = "reading_round"
    __table_args__ = (UniqueConstraint("project_id", "number"), UniqueConstraint("project_id", "name"))

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    # The caller's key (e.g. the DAG run id): creating a round with a known name returns that round.
    name: Mapped[str] = mapped_column(String(128))
    readers_per_item: Mapped[int] = mapped_column(Integer)
    # Share of the round's items that are gold (known answer); never shown to readers.
    gold_share: Mapped[float] = mapped_column(Float, default=0.0)
    deadline: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    state: Mapped[str] = mapped_column(String(16), default=RoundState.OPEN.value)
    webhook_url: Mapped[str | None] = mapped_column(String(512), nullable=True)
    airflow_asset_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"), nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class SchemaVersion(Base):
    """An immutable label schema; editing the schema adds a version so older annotations stay readable."""

    __tablename__ = "schema_version"
    __table_args__ = (UniqueConstraint("project_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"), nullable=True)


class Membership(Base):
    """One role of one user in one project; a user may hold several roles there."""

    __tablename__ = "membership"
    __table_args__ = (UniqueConstraint("project_id", "user_id", "role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    level: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # [{"modality": "CT", "body_part": "CHEST"}]; empty means every item.
    competences: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    user: Mapped[User] = relationship(back_populates="memberships")


class Invite(Base):
    """Single-use, expiring link that lets an external expert join one project without onboarding."""

    __tablename__ = "invite"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    level: Mapped[str | None] = mapped_column(String(16), nullable=True)
    competences: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    note: Mapped[str] = mapped_column(String(256), default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    used_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"), nullable=True)


class Item(Base):
    """A unit of reading: one image, one series or one multi-frame object, from the deid/derived zone."""

    __tablename__ = "item"
    __table_args__ = (UniqueConstraint("project_id", "external_id", "round"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), index=True)
    external_id: Mapped[str] = mapped_column(String(128))
    round: Mapped[int] = mapped_column(Integer, default=1)
    modality: Mapped[str] = mapped_column(String(16), default="")
    body_part: Mapped[str] = mapped_column(String(64), default="")
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    is_gold: Mapped[bool] = mapped_column(Boolean, default=False)
    gold_answer: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    # Readers this item needs when its round says so; None: the project's readers_per_item.
    readers_required: Mapped[int | None] = mapped_column(Integer, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    instances: Mapped[list["Instance"]] = relationship(
        back_populates="item", order_by="Instance.position", cascade="all, delete-orphan"
    )


class Instance(Base):
    """One DICOM instance of an item, referenced by URI; the UIDs let SR/SEG exports reference it."""

    __tablename__ = "instance"
    __table_args__ = (UniqueConstraint("item_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("item.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    uri: Mapped[str] = mapped_column(Text)
    sop_class_uid: Mapped[str] = mapped_column(String(64), default="")
    sop_instance_uid: Mapped[str] = mapped_column(String(64), default="")
    series_instance_uid: Mapped[str] = mapped_column(String(64), default="")
    study_instance_uid: Mapped[str] = mapped_column(String(64), default="")
    frames: Mapped[int] = mapped_column(Integer, default=1)
    rows: Mapped[int] = mapped_column(Integer, default=0)
    columns: Mapped[int] = mapped_column(Integer, default=0)

    item: Mapped[Item] = relationship(back_populates="instances")


class Task(Base):
    """One reading (or one verification of a reading) of one item by one reader."""

    __tablename__ = "task"
    __table_args__ = (
        Index("ix_task_queue", "project_id", "kind", "status", "assignee_id"),
        # The queue's pick order: an index walk finds the next open slot without sorting them all.
        Index("ix_task_pick", "project_id", "kind", "status", "queue_rank", "id"),
        Index("ix_task_item_round", "item_id", "round"),
        UniqueConstraint("dedupe_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"))
    item_id: Mapped[int] = mapped_column(ForeignKey("item.id", ondelete="CASCADE"))
    round: Mapped[int] = mapped_column(Integer, default=1)
    kind: Mapped[str] = mapped_column(String(16), default=TaskKind.ANNOTATE.value)
    status: Mapped[str] = mapped_column(String(16), default=TaskStatus.OPEN.value)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"), nullable=True, index=True)
    # Gold and verification tasks carry a key that stops the same reader getting them twice.
    dedupe_key: Mapped[str | None] = mapped_column(String(96), nullable=True)
    parent_task_id: Mapped[int | None] = mapped_column(ForeignKey("task.id", ondelete="CASCADE"), nullable=True, index=True)
    verify_level: Mapped[int] = mapped_column(Integer, default=0)
    queue_rank: Mapped[int] = mapped_column(Integer, default=0)  # minus the item's priority: lower is read first
    # A verification task goes only to readers ranked above min_rank and not in excluded_users.
    min_rank: Mapped[int] = mapped_column(Integer, default=0)
    excluded_users: Mapped[list[int]] = mapped_column(JSON, default=list)
    is_gold: Mapped[bool] = mapped_column(Boolean, default=False)
    gold_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    schema_version_id: Mapped[int | None] = mapped_column(ForeignKey("schema_version.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    assigned_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    loaded_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    wall_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    active_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    idle_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    label_ms: Mapped[dict[str, int] | None] = mapped_column(JSON, nullable=True)
    skip_reason: Mapped[str | None] = mapped_column(String(512), nullable=True)
    # Verify tasks: "accept" | "reject" | "correct"; annotate tasks: "verified" | "rejected" once checked.
    decision: Mapped[str | None] = mapped_column(String(16), nullable=True)

    item: Mapped[Item] = relationship()
    assignee: Mapped[User | None] = relationship()
    annotation: Mapped["Annotation | None"] = relationship(back_populates="task", uselist=False, cascade="all, delete-orphan")


class Annotation(Base):
    """What a reader submitted: labels with confidence and ROIs in image pixel coordinates."""

    __tablename__ = "annotation"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("task.id", ondelete="CASCADE"), unique=True)
    schema_version_id: Mapped[int | None] = mapped_column(ForeignKey("schema_version.id", ondelete="SET NULL"), nullable=True)
    labels: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    rois: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    comment: Mapped[str] = mapped_column(Text, default="")
    # Quality-review projects: approve / exclude / quarantine, with the reader's reason.
    quality_decision: Mapped[str | None] = mapped_column(String(16), nullable=True)
    quality_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # What the model showed this reader and what the reader did with it (annotation.assist).
    assist: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    task: Mapped[Task] = relationship(back_populates="annotation")


class Prediction(Base):
    """A model's suggestions for one item (one row per item: a new PUT replaces it)."""

    __tablename__ = "prediction"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("item.id", ondelete="CASCADE"), unique=True)
    model_name: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(64))
    probabilities: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    boxes: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"), nullable=True)

    heatmaps: Mapped[list["PredictionHeatmap"]] = relationship(
        back_populates="prediction", order_by="PredictionHeatmap.id", cascade="all, delete-orphan")


class PredictionHeatmap(Base):
    """One label's heatmap on one frame: an 8-bit greyscale PNG (value = round(255 * heat))."""

    __tablename__ = "prediction_heatmap"

    id: Mapped[int] = mapped_column(primary_key=True)
    prediction_id: Mapped[int] = mapped_column(ForeignKey("prediction.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(64))
    instance_position: Mapped[int] = mapped_column(Integer, default=0)
    frame: Mapped[int] = mapped_column(Integer, default=0)
    rows: Mapped[int] = mapped_column(Integer)
    cols: Mapped[int] = mapped_column(Integer)
    png: Mapped[bytes] = mapped_column(LargeBinary)

    prediction: Mapped[Prediction] = relationship(back_populates="heatmaps")


class AssistReveal(Base):
    """A reader's unaided answer on a blind-first project, recorded before the suggestions were shown."""

    __tablename__ = "assist_reveal"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("task.id", ondelete="CASCADE"), unique=True)
    unaided: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    revealed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AnnotationRevision(Base):
    """A submission its reader replaced after reopening the case (issue 17, point 7).

    Kept so a changed reading stays auditable: managers see what was read first and when it was
    replaced; exports and agreement read only the task's current Annotation."""

    __tablename__ = "annotation_revision"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("task.id", ondelete="CASCADE"), index=True)
    schema_version_id: Mapped[int | None] = mapped_column(ForeignKey("schema_version.id", ondelete="SET NULL"), nullable=True)
    labels: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    rois: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    comment: Mapped[str] = mapped_column(Text, default="")
    quality_decision: Mapped[str | None] = mapped_column(String(16), nullable=True)
    quality_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    replaced_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # The replaced reading's assist record (Annotation.assist): what the model showed it stays auditable.
    assist: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
