"""The manager's pages' own endpoints: project templates, a project made from one, and reading
coverage per item (who can still read it; items nobody left can read)."""
from __future__ import annotations

from collections import defaultdict
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import select

from annotation import queue
from annotation.deps import AdminUser, CurrentUser, DB, IdPath, require
from annotation.models import Item, Membership, Role, Round, RoundState, Task, TaskKind, TaskStatus, User
from annotation.permissions import Action
from annotation.routers.projects import create_project, get_project
from annotation.schemas import Closed, ProjectCreate, ProjectKind, ProjectOut, SchemaDef

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "include" / "annotation" / "templates"
router = APIRouter(tags=["manage"])


class TemplateOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: str
    title: str
    description: str
    kind: ProjectKind
    readers_per_item: int
    gold_rate: float
    verification_levels: int
    modality: str
    body_part: str
    schema_: SchemaDef = Field(alias="schema")


class FromTemplate(Closed):
    name: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    description: Annotated[str, StringConstraints(max_length=4000)] = ""
    readers_per_item: Annotated[int, Field(ge=1, le=50)] | None = None


@lru_cache(maxsize=1)
def templates() -> dict[str, TemplateOut]:
    """The shipped templates, validated once: a broken file fails loudly at the first request."""
    out: dict[str, TemplateOut] = {}
    for path in sorted(TEMPLATES_DIR.glob("*.yaml")):
        data: dict[str, Any] = yaml.safe_load(path.read_text())
        project, items = data["project"], data.get("items") or {}
        out[data["id"]] = TemplateOut(id=data["id"], title=data["title"], description=data["description"],
                                      kind=project["kind"], readers_per_item=project["readers_per_item"],
                                      gold_rate=project["gold_rate"], verification_levels=project["verification_levels"],
                                      modality=items.get("modality", ""), body_part=items.get("body_part", ""),
                                      schema=SchemaDef.model_validate(data["schema"]))
    return out


@router.get("/api/project-templates", response_model=list[TemplateOut], response_model_by_alias=True)
def list_templates(user: CurrentUser) -> list[TemplateOut]:
    return list(templates().values())


@router.post("/api/project-templates/{template_id}/projects", response_model=ProjectOut,
             status_code=status.HTTP_201_CREATED)
def project_from_template(template_id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,64}$")],
                          body: FromTemplate, db: DB, admin: AdminUser) -> ProjectOut:
    """A project with the template's settings and first schema version (all editable afterwards)."""
    t = templates().get(template_id)
    if t is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such template")
    spec = ProjectCreate(name=body.name, description=body.description or t.description,
                         readers_per_item=body.readers_per_item or t.readers_per_item, gold_rate=t.gold_rate,
                         verification_levels=t.verification_levels, kind=t.kind, schema=t.schema_)
    return create_project(spec, db, admin)


# --- coverage: can every item still get its readings? ----------------------------------------------
class ItemCoverage(BaseModel):
    item_id: int
    external_id: str
    round: int
    modality: str
    body_part: str
    is_gold: bool
    required: int
    submitted: int
    in_hand: int
    open: int
    skipped: int
    eligible_readers: int  # annotators who may still take one of its open slots
    state: str  # gold | complete | verifying | reading | waiting | short of readers | no eligible reader left | round closed


class CoverageOut(BaseModel):
    items: list[ItemCoverage]
    stuck: int  # items with open slots and no eligible reader left
    short: int  # items with fewer eligible readers than open slots


def _matches(competences: list[dict[str, str]], item: Item) -> bool:
    """The queue's routing rule (queue._competence_clause) on one item: no competence means all."""
    if not competences:
        return True
    return any((not c.get("modality") or c["modality"] == item.modality)
               and (not c.get("body_part") or c["body_part"] == item.body_part) for c in competences)


def _state(c: ItemCoverage, item: Item, closed: bool) -> str:
    if c.is_gold:
        return "gold"
    if item.completed_at is not None:
        return "complete"
    if c.submitted >= c.required:
        return "verifying"
    if closed:
        return "round closed"
    if c.open and c.eligible_readers == 0:
        return "no eligible reader left"
    if c.open > c.eligible_readers:
        return "short of readers"
    return "reading" if c.in_hand or c.submitted else "waiting"


@router.get("/api/projects/{project_id}/coverage", response_model=CoverageOut)
def coverage(project_id: IdPath, db: DB, user: CurrentUser) -> CoverageOut:
    """Per item: required, submitted, in hand, open and skipped readings, and how many of the project's
    active annotators could still take an open slot (never read or skipped it, competence matches)."""
    require(db, user, project_id, Action.PROGRESS)
    project = get_project(db, project_id)
    readers: dict[int, list[dict[str, str]]] = defaultdict(list)
    for m in db.scalars(select(Membership).join(User, User.id == Membership.user_id).where(
            Membership.project_id == project_id, Membership.role == Role.ANNOTATOR.value, User.is_active.is_(True))):
        readers[m.user_id].extend(m.competences or [])
    closed = set(db.scalars(select(Round.number).where(Round.project_id == project_id,
                                                       Round.state == RoundState.CLOSED.value)))
    seen: dict[int, set[int]] = defaultdict(set)
    counts: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for item_id, assignee, st, kind in db.execute(select(Task.item_id, Task.assignee_id, Task.status, Task.kind)
                                                  .where(Task.project_id == project_id)):
        if assignee is not None:
            seen[item_id].add(assignee)
        if kind == TaskKind.ANNOTATE.value:
            counts[item_id][st] += 1
    out = []
    for item in db.scalars(select(Item).where(Item.project_id == project_id).order_by(Item.round, Item.id)):
        n = counts[item.id]
        eligible = sum(1 for uid, comp in readers.items() if uid not in seen[item.id] and _matches(comp, item))
        c = ItemCoverage(item_id=item.id, external_id=item.external_id, round=item.round, modality=item.modality,
                         body_part=item.body_part, is_gold=item.is_gold,
                         required=0 if item.is_gold else queue.required_readers(project, item),
                         submitted=n[TaskStatus.SUBMITTED.value], in_hand=n[TaskStatus.ASSIGNED.value],
                         open=n[TaskStatus.OPEN.value], skipped=n[TaskStatus.SKIPPED.value],
                         eligible_readers=eligible, state="")
        c.state = _state(c, item, item.round in closed)
        out.append(c)
    return CoverageOut(items=out, stuck=sum(c.state == "no eligible reader left" for c in out),
                       short=sum(c.state == "short of readers" for c in out))
