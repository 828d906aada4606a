"""Pydantic request/response models of the REST API, kept apart from the ORM models.

Item context is a closed set of non-identifying fields (extra keys are refused), so an identifying
DICOM header field sent by mistake never enters the database.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from annotation.masks import MAX_RUNS
from annotation.models import Level, ProjectKind, QualityDecision, Role, RoundState

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_\-]{0,31}$")]
Username = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-@]{2,63}$")]
Password = Annotated[str, StringConstraints(min_length=10, max_length=256)]
ShortText = Annotated[str, StringConstraints(max_length=256)]
Confidence = Literal[0, 20, 40, 60, 80, 100]


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, (list, tuple)):
        return any(_has_nul(v) for v in value)
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    return False


class Closed(BaseModel):
    """Request bodies: unknown keys refused; NUL characters refused (PostgreSQL cannot store them)."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if _has_nul(value):
            raise ValueError("NUL characters are not allowed")
        return value


# --- auth and users -------------------------------------------------------------------------
class LoginIn(Closed):
    username: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    username: str
    display_name: str
    is_admin: bool
    is_active: bool
    is_service: bool = False  # a service account (API token, no password)


class SessionOut(BaseModel):
    token: str
    expires_at: datetime
    user: UserOut


class MembershipBrief(BaseModel):
    project_id: int
    project_name: str
    role: Role
    level: Level | None


class MeOut(UserOut):
    memberships: list[MembershipBrief]


class UserCreate(Closed):
    username: Username
    password: Password
    display_name: ShortText = ""
    is_admin: bool = False


class UserPatch(Closed):
    display_name: ShortText | None = None
    password: Password | None = None
    is_admin: bool | None = None
    is_active: bool | None = None


# --- projects and schemas -------------------------------------------------------------------
class LabelDef(Closed):
    id: Slug
    name: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    kind: Literal["boolean", "box", "freehand", "mask"]  # mask: brush/polygon segmentation (annotation/masks.py)
    instructions: Annotated[str, StringConstraints(max_length=4000)] = ""
    color: Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$")] = "#ffcc00"
    # true: every reading answers it (Yes/No and a confidence; a region label: at least one region)
    required: bool = False


class SchemaDef(Closed):
    labels: Annotated[list[LabelDef], Field(min_length=1, max_length=100)]
    instructions: Annotated[str, StringConstraints(max_length=8000)] = ""

    @field_validator("labels")
    @classmethod
    def _unique_ids(cls, labels: list[LabelDef]) -> list[LabelDef]:
        ids = [label.id for label in labels]
        if len(set(ids)) != len(ids):
            raise ValueError("label ids must be unique")
        return labels


class SchemaVersionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    version: int
    definition: SchemaDef
    created_at: datetime


class Competence(Closed):
    modality: Annotated[str, StringConstraints(max_length=16)] = ""
    body_part: Annotated[str, StringConstraints(max_length=64)] = ""


class ProjectSettings(Closed):
    description: Annotated[str, StringConstraints(max_length=4000)] | None = None
    blind_first: bool | None = None
    readers_per_item: Annotated[int, Field(ge=1, le=50)] | None = None
    gold_rate: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    verification_levels: Annotated[int, Field(ge=0, le=2)] | None = None
    current_round: Annotated[int, Field(ge=1, le=10_000)] | None = None
    webhook_url: Annotated[str, StringConstraints(pattern=r"^https?://", max_length=512)] | None = None


class ProjectCreate(Closed):
    name: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    description: Annotated[str, StringConstraints(max_length=4000)] = ""
    readers_per_item: Annotated[int, Field(ge=1, le=50)] = 1
    gold_rate: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    verification_levels: Annotated[int, Field(ge=0, le=2)] = 0
    webhook_url: Annotated[str, StringConstraints(pattern=r"^https?://", max_length=512)] | None = None
    kind: ProjectKind = ProjectKind.LABELS
    blind_first: bool = False
    schema_: SchemaDef | None = Field(default=None, alias="schema")


class ProjectOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    description: str
    readers_per_item: int
    gold_rate: float
    verification_levels: int
    current_round: int
    schema_version: int
    webhook_url: str | None = None
    kind: ProjectKind = ProjectKind.LABELS
    blind_first: bool = False
    my_roles: list[Role] = []


def _person_role(role: Role) -> Role:
    if role == Role.PIPELINE:
        raise ValueError("the pipeline role belongs to service accounts (curate annotation token create)")
    return role


class MemberIn(Closed):
    user_id: Annotated[int, Field(ge=1, le=2_147_483_647)]
    role: Role

    _role = field_validator("role")(_person_role)
    level: Level | None = None
    competences: Annotated[list[Competence], Field(max_length=50)] = []


class MemberPatch(Closed):
    level: Level | None = None
    competences: Annotated[list[Competence], Field(max_length=50)] | None = None


class MemberOut(BaseModel):
    id: int
    user_id: int
    username: str
    display_name: str
    role: Role
    level: Level | None
    competences: list[Competence]


class InviteIn(Closed):
    role: Role = Role.ANNOTATOR

    _role = field_validator("role")(_person_role)
    level: Level | None = Level.JUNIOR
    competences: Annotated[list[Competence], Field(max_length=50)] = []
    note: ShortText = ""
    hours: Annotated[float, Field(gt=0, le=24 * 30)] | None = None


class InviteOut(BaseModel):
    id: int
    role: Role
    level: Level | None
    note: str
    expires_at: datetime
    used: bool
    token: str | None = None  # only in the answer to its creation
    path: str | None = None


class InviteInfo(BaseModel):
    project_name: str
    role: Role
    level: Level | None
    expires_at: datetime


class InviteAccept(Closed):
    username: Username
    password: Password
    display_name: ShortText = ""


# --- items ----------------------------------------------------------------------------------
MetricName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")]


class QualityContext(Closed):
    """What the quality model said about a series, shown to the human quality reviewer beside it."""

    decision: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z_]{0,31}$")] | None = None  # the model's
    score: Annotated[float, Field(ge=-1e9, le=1e9)] | None = None
    reason: Annotated[str, StringConstraints(max_length=4000)] = ""
    model: Annotated[str, StringConstraints(max_length=128)] = ""
    metrics: Annotated[dict[MetricName, Annotated[float, Field(ge=-1e12, le=1e12)]], Field(max_length=200)] = {}


class ItemContext(Closed):
    """Non-identifying context shown beside the image; anything else is refused (422)."""

    age_bracket: Annotated[str, StringConstraints(pattern=r"^(\d{1,2}-\d{1,2}|\d{2}\+|[<>]\d{1,2})$")] | None = None
    sex: Literal["F", "M", "O", "U"] | None = None
    comorbidities: Annotated[list[Annotated[str, StringConstraints(min_length=1, max_length=64)]], Field(max_length=30)] = []
    report_text: Annotated[str, StringConstraints(max_length=20_000)] | None = None
    quality: QualityContext | None = None


class GoldAnswer(Closed):
    labels: Annotated[list["LabelValue"], Field(max_length=100)] = []


UriStr = Annotated[str, StringConstraints(pattern=r"^(file|s3|https?)://", max_length=2048)]


class ItemIn(Closed):
    external_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")]
    uris: Annotated[list[UriStr], Field(min_length=1, max_length=2000)]
    modality: Annotated[str, StringConstraints(max_length=16)] = ""
    body_part: Annotated[str, StringConstraints(max_length=64)] = ""
    context: ItemContext = ItemContext()
    round: Annotated[int, Field(ge=1, le=10_000)] | None = None
    is_gold: bool = False
    gold_answer: GoldAnswer | None = None
    priority: Annotated[int, Field(ge=-1000, le=1000)] = 0


class ItemsIn(Closed):
    items: Annotated[list[ItemIn], Field(min_length=1, max_length=1000)]


class InstanceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    position: int
    frames: int
    rows: int
    columns: int
    sop_instance_uid: str


class ItemOut(BaseModel):
    id: int
    project_id: int
    external_id: str
    round: int
    modality: str
    body_part: str
    context: ItemContext
    instances: list[InstanceOut]  # in display order; `position` is the registered index ROIs refer to
    slice_order: Literal["position", "instance_number", "listed"] = "listed"
    geometry_warnings: list[str] = []  # gaps, duplicate positions, mixed orientations
    is_gold: bool | None = None  # hidden from readers


class ItemBrief(BaseModel):
    id: int
    external_id: str
    round: int
    modality: str
    body_part: str
    is_gold: bool
    instances: int
    submitted: int
    complete: bool


class RegisterOut(BaseModel):
    created: list[int]
    existing: list[int]


class GoldIn(Closed):
    is_gold: bool = True
    gold_answer: GoldAnswer | None = None


# --- tasks and annotations ------------------------------------------------------------------
class LabelValue(Closed):
    label: Slug
    value: bool
    confidence: Confidence


GoldAnswer.model_rebuild()

Point = Annotated[list[Annotated[float, Field(ge=-1e6, le=1e6)]], Field(min_length=2, max_length=2)]


class RoiIn(Closed):
    """A box or outline (`points`), or a mask: one label's pixels on one slice, run-length encoded
    (`rows`, `columns`, `rle`; annotation/masks.py); submission checks it against the image."""

    label: Slug
    kind: Literal["box", "freehand", "mask"]
    instance: Annotated[int, Field(ge=0, le=100_000)] = 0
    frame: Annotated[int, Field(ge=0, le=100_000)] = 0
    points: Annotated[list[Point], Field(max_length=5000)] = []
    rows: Annotated[int, Field(ge=1, le=65_535)] | None = None
    columns: Annotated[int, Field(ge=1, le=65_535)] | None = None
    rle: Annotated[list[Annotated[int, Field(ge=0, le=2**32)]], Field(max_length=MAX_RUNS)] | None = None

    @model_validator(mode="after")
    def _shape(self) -> "RoiIn":
        if self.kind == "mask":
            if self.points or self.rows is None or self.columns is None or self.rle is None:
                raise ValueError(f"mask '{self.label}' is rows, columns and rle (run lengths), without points")
            return self
        if self.rle is not None or self.rows is not None or self.columns is not None:
            raise ValueError(f"rows, columns and rle belong to mask regions, not to {self.kind} '{self.label}'")
        if self.kind == "box" and len(self.points) != 2:
            raise ValueError("a box is two corner points [[x0, y0], [x1, y1]]")
        if self.kind == "freehand" and len(self.points) < 3:
            raise ValueError("a freehand ROI needs at least 3 points")
        return self


class QualityIn(Closed):
    """A human quality decision on a series; exclude and quarantine need the reader's reason."""

    decision: QualityDecision
    reason: Annotated[str, StringConstraints(max_length=4000)] = ""

    @model_validator(mode="after")
    def _reason(self) -> "QualityIn":
        if self.decision != QualityDecision.APPROVE and not self.reason.strip():
            raise ValueError(f"a reason is required to {self.decision.value}")
        return self


# --- model assistance (issue 18) ---------------------------------------------------------------
Coord = Annotated[float, Field(ge=0.0, le=100_000.0)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
ModelText = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+\-]{0,63}$")]


class ModelRef(Closed):
    name: ModelText
    version: ModelText


class HeatmapIn(Closed):
    label: Slug
    instance_position: Annotated[int, Field(ge=0, le=100_000)] = 0
    frame: Annotated[int, Field(ge=0, le=100_000)] = 0
    png_base64: Annotated[str, StringConstraints(min_length=8, max_length=4_000_000)]
    rows: Annotated[int, Field(ge=1, le=65_535)]  # the instance's size: the viewer scales the PNG to it
    cols: Annotated[int, Field(ge=1, le=65_535)]


class BoxIn(Closed):
    """Pixel coordinates of the instance (x = column, y = row), half-open."""

    label: Slug
    instance_position: Annotated[int, Field(ge=0, le=100_000)] = 0
    frame: Annotated[int, Field(ge=0, le=100_000)] = 0
    x0: Coord
    y0: Coord
    x1: Coord
    y1: Coord
    score: Probability = 0.0

    @model_validator(mode="after")
    def _ordered(self) -> "BoxIn":
        if self.x1 <= self.x0 or self.y1 <= self.y0:
            raise ValueError("a box needs x0 < x1 and y0 < y1")
        return self


class PredictionsIn(Closed):
    model: ModelRef
    probabilities: Annotated[dict[Slug, Probability], Field(max_length=100)]
    heatmaps: Annotated[list[HeatmapIn], Field(max_length=200)] = []
    boxes: Annotated[list[BoxIn], Field(max_length=500)] = []


class HeatmapOut(BaseModel):
    label: str
    instance_position: int
    frame: int
    rows: int
    cols: int
    png_base64: str


class PredictionsOut(BaseModel):
    """`hidden`: a blind-first project and this reader has not yet answered every label once."""

    item_id: int
    hidden: bool = False
    blind_first: bool = False
    model: ModelRef | None = None
    probabilities: dict[str, float] = {}
    heatmaps: list[HeatmapOut] = []
    boxes: list[dict[str, Any]] = []
    created_at: datetime | None = None


class UnaidedIn(Closed):
    """The reader's answer before seeing the model (blind first): every classification label once."""

    labels: Annotated[list["LabelValue"], Field(max_length=100)]


class SuggestionAction(Closed):
    """What the reader did with one model output: a box (`box_index`) or a label's call (no box index)."""

    label: Slug
    box_index: Annotated[int, Field(ge=0, le=499)] | None = None
    action: Literal["accept", "edit", "reject"]
    box: Annotated[list[Coord], Field(min_length=4, max_length=4)] | None = None  # [x0, y0, x1, y1] final box
    reason: Annotated[str, StringConstraints(max_length=2000)] = ""

    @model_validator(mode="after")
    def _box(self) -> "SuggestionAction":
        if self.box_index is not None and self.action in ("accept", "edit") and self.box is None:
            raise ValueError(f"'{self.action}' of a suggested box carries the final box")
        if self.box is not None and (self.box_index is None or self.action == "reject"):
            raise ValueError("only an accepted or edited suggested box carries a box")
        if self.box is not None and (self.box[2] <= self.box[0] or self.box[3] <= self.box[1]):
            raise ValueError("a box needs x0 < x1 and y0 < y1")
        return self


class AssistIn(Closed):
    model: ModelRef
    shown: bool
    unaided: Annotated[list["LabelValue"], Field(max_length=100)] | None = None
    suggestions: Annotated[list[SuggestionAction], Field(max_length=600)] = []


class SubmitIn(Closed):
    quality: QualityIn | None = None  # quality-review projects only
    assist: AssistIn | None = None  # what the model showed and what the reader did with it
    labels: Annotated[list[LabelValue], Field(max_length=100)] = []
    rois: Annotated[list[RoiIn], Field(max_length=500)] = []
    comment: Annotated[str, StringConstraints(max_length=4000)] = ""
    active_ms: Annotated[int, Field(ge=0, le=86_400_000)] = 0
    idle_ms: Annotated[int, Field(ge=0, le=86_400_000)] = 0
    label_ms: Annotated[dict[Slug, Annotated[int, Field(ge=0, le=86_400_000)]], Field(max_length=100)] = {}
    decision: Literal["accept", "reject", "correct"] | None = None


class SkipIn(Closed):
    reason: Annotated[str, StringConstraints(min_length=1, max_length=512)]


class AnnotationOut(BaseModel):
    labels: list[dict[str, Any]]
    rois: list[dict[str, Any]]
    comment: str
    schema_version: int | None
    quality: dict[str, str] | None = None
    assist: dict[str, Any] | None = None


class TaskOut(BaseModel):
    id: int
    project_id: int
    project_name: str
    project_kind: ProjectKind = ProjectKind.LABELS
    item: ItemOut
    kind: str
    status: str
    round: int
    verify_level: int
    schema_version: SchemaVersionOut | None
    assigned_at: datetime | None
    loaded_at: datetime | None
    submitted_at: datetime | None
    skip_reason: str | None
    annotation: AnnotationOut | None = None
    reviewed: AnnotationOut | None = None  # the reading under verification


class TaskBrief(BaseModel):
    id: int
    project_id: int
    project_name: str
    item_id: int
    kind: str
    status: str
    round: int
    submitted_at: datetime | None
    reopenable: bool = False  # its reader may reopen it now (submitted reading, round not closed)


class TaskState(BaseModel):
    """Short answer of loaded/submit/skip (the viewer moves on; it needs no full task)."""

    id: int
    status: str
    loaded_at: datetime | None
    submitted_at: datetime | None


class NextTaskOut(BaseModel):
    task: TaskOut | None
    remaining: int  # readings this reader can still take after the one in hand (own open slots): "N left"


class MyProgress(BaseModel):
    project_id: int
    project_name: str
    submitted: int
    skipped: int
    open_for_me: int


class TasksOut(BaseModel):
    tasks: list[TaskBrief]
    progress: list[MyProgress]


# --- review, statistics, progress, completion ----------------------------------------------
class ReaderReading(BaseModel):
    task_id: int
    reader: str
    level: str | None
    kind: str
    status: str
    verify_level: int
    decision: str | None
    labels: list[dict[str, Any]]
    rois: list[dict[str, Any]]
    wall_ms: int | None
    active_ms: int | None
    skip_reason: str | None
    revisions: list["RevisionOut"] = []  # submissions the reader replaced after reopening, oldest first


class RevisionOut(BaseModel):
    """A replaced submission of a reopened case (annotation_revision): what was read before, and when."""

    model_config = ConfigDict(from_attributes=True)

    labels: list[dict[str, Any]]
    rois: list[dict[str, Any]]
    comment: str
    quality_decision: str | None
    quality_reason: str | None
    submitted_at: datetime | None
    replaced_at: datetime
    assist: dict[str, Any] | None = None  # the replaced reading's assist record (model suggestions and the reader's actions)


class RoiDisagreement(BaseModel):
    """Two readers' regions of one label that do not agree: one drew it and the other did not
    (`missing`), or their best match overlaps under the IoU threshold (`misplaced`)."""

    label: str
    kind: Literal["missing", "misplaced"]
    readers: list[str]
    instance: int
    frame: int
    iou: float
    drawn_by: str | None = None
    missing_for: str | None = None


class ReviewOut(BaseModel):
    item: ItemOut
    schema_version: SchemaVersionOut | None
    readings: list[ReaderReading]
    disagreements: list[str]  # classification labels
    roi_disagreements: list[RoiDisagreement] = []
    iou_threshold: float = 0.5


class KappaOut(BaseModel):
    """Fleiss' kappa of one label over the items read by the usual number of readers, with the raw
    agreement beside it and a 95 % bootstrap interval (items resampled)."""

    label: str
    items: int
    readers: int
    raw_agreement: float | None = None
    kappa: float | None = None  # None: too few items, or every answer the same (chance agreement is total)
    ci_low: float | None = None
    ci_high: float | None = None


class ItemDisagreement(BaseModel):
    item_id: int
    external_id: str
    readings: int
    label_disagreements: list[str]
    roi_disagreements: int
    roi_missing: int
    roi_misplaced: int
    disagreement: int  # labels disagreed on + region disagreements


class StatisticsOut(BaseModel):
    labels: list[str]
    readers: list[str]
    positive_rate: list[list[float | None]]  # label x reader
    mean_confidence: list[list[float | None]]
    pairwise_agreement: list[list[float | None]]  # reader x reader, share of equal boolean values
    gold_accuracy: dict[str, float]
    kappa: list[KappaOut] = []
    items: list[ItemDisagreement] = []
    iou_threshold: float = 0.5


class ReaderProgress(BaseModel):
    reader: str
    submitted: int
    skipped: int
    assigned: int
    median_wall_s: float | None
    median_active_s: float | None


class ProgressOut(BaseModel):
    items: int
    complete_items: int
    tasks_open: int
    tasks_assigned: int
    tasks_submitted: int
    tasks_skipped: int
    readers: list[ReaderProgress]


class ItemCompletion(BaseModel):
    item_id: int
    external_id: str
    round: int
    required: int
    submitted: int
    verified: bool
    complete: bool
    completed_at: datetime | None


class CompletionOut(BaseModel):
    project_id: int
    rounds: dict[str, dict[str, int | bool]]
    items: list[ItemCompletion]


# --- rounds ---------------------------------------------------------------------------------
class RoundIn(Closed):
    """A round and (some of) its items; posting a known name again adds only the items not yet there."""

    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:+\-]{0,127}$")]
    number: Annotated[int, Field(ge=1, le=10_000)] | None = None
    readers_per_item: Annotated[int, Field(ge=1, le=50)] | None = None
    gold_share: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    deadline: datetime | None = None
    webhook_url: Annotated[str, StringConstraints(pattern=r"^https?://", max_length=512)] | None = None
    airflow_asset_id: Annotated[int, Field(ge=1, le=2_147_483_647)] | None = None
    items: Annotated[list[ItemIn], Field(max_length=1000)] = []

    @field_validator("deadline")
    @classmethod
    def _plausible(cls, value: datetime | None) -> datetime | None:
        # Far years overflow when moved to UTC (a 500); a real deadline is never there.
        if value is not None and not 2000 <= value.year <= 9000:
            raise ValueError("deadline year must lie between 2000 and 9000")
        return value


class RoundItemStatus(BaseModel):
    item_id: int
    external_id: str
    required: int
    submitted: int
    complete: bool
    completed_at: datetime | None


class RoundReaderStatus(BaseModel):
    reader: str
    submitted: int
    assigned: int
    skipped: int


class RoundOut(BaseModel):
    id: int
    project_id: int
    number: int
    name: str
    state: RoundState
    readers_per_item: int
    gold_share: float
    gold_items: int
    deadline: datetime | None
    overdue: bool
    webhook_url: str | None
    airflow_asset_id: int | None
    created_at: datetime
    completed_at: datetime | None
    closed_at: datetime | None
    items: int  # non-gold items
    complete_items: int
    readings_required: int
    readings_submitted: int
    per_item: list[RoundItemStatus]
    per_reader: list[RoundReaderStatus]


class RoundCreated(BaseModel):
    round: RoundOut
    created: list[int]
    existing: list[int]


# --- service accounts ------------------------------------------------------------------------
class ServiceTokenIn(Closed):
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,58}$")]
    projects: Annotated[list[Annotated[int, Field(ge=1, le=2_147_483_647)]], Field(min_length=1, max_length=100)]
    roles: Annotated[list[Literal["pipeline", "data_owner"]], Field(min_length=1, max_length=2)] = ["pipeline"]


class TokenScope(BaseModel):
    project_id: int
    project_name: str
    role: Role


class ServiceTokenOut(BaseModel):
    id: int
    name: str
    account: str
    scopes: list[TokenScope]
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    token: str | None = None  # the secret, only in the answer to its creation
