"""Projects, their label schemas (versioned) and their members."""
from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response, status
from sqlalchemy import select

from annotation import queue
from annotation.deps import AdminUser, CurrentUser, DB, IdPath, project_roles, require
from annotation.models import Membership, Project, Role, SchemaVersion, User
from annotation.permissions import Action
from annotation.schemas import (
    MemberIn,
    MemberOut,
    MemberPatch,
    ProjectCreate,
    ProjectOut,
    ProjectSettings,
    SchemaDef,
    SchemaVersionOut,
)

router = APIRouter(prefix="/api/projects", tags=["projects"])


def get_project(db, project_id: IdPath, *, lock: bool = False) -> Project:
    """The project or 404; lock=True serialises concurrent edits of it (PostgreSQL row lock)."""
    project = db.get(Project, project_id, with_for_update=lock or None)
    if project is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such project")
    return project


def project_out(db, project: Project, user: User) -> ProjectOut:
    out = ProjectOut.model_validate(project)
    out.my_roles = sorted(project_roles(db, user, project.id), key=lambda r: r.value)
    return out


def add_schema_version(db, project: Project, definition: SchemaDef, user: User) -> SchemaVersion:
    project.schema_version += 1
    sv = SchemaVersion(project_id=project.id, version=project.schema_version,
                       definition=definition.model_dump(), created_by_id=user.id)
    db.add(sv)
    db.flush()
    return sv


@router.get("", response_model=list[ProjectOut])
def list_projects(db: DB, user: CurrentUser) -> list[ProjectOut]:
    q = select(Project).order_by(Project.id)
    if not user.is_admin:
        q = q.where(Project.id.in_(select(Membership.project_id).where(Membership.user_id == user.id)))
    return [project_out(db, p, user) for p in db.scalars(q)]


@router.post("", response_model=ProjectOut, status_code=status.HTTP_201_CREATED)
def create_project(body: ProjectCreate, db: DB, admin: AdminUser) -> ProjectOut:
    if db.scalar(select(Project.id).where(Project.name == body.name)) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, "a project with this name exists")
    project = Project(name=body.name, description=body.description, readers_per_item=body.readers_per_item,
                      gold_rate=body.gold_rate, verification_levels=body.verification_levels,
                      webhook_url=body.webhook_url, kind=body.kind.value, blind_first=body.blind_first, created_by_id=admin.id, schema_version=0)
    db.add(project)
    db.flush()
    db.add(Membership(project_id=project.id, user_id=admin.id, role=Role.OWNER.value))
    if body.schema_ is not None:
        add_schema_version(db, project, body.schema_, admin)
    db.flush()
    return project_out(db, project, admin)


@router.get("/{project_id}", response_model=ProjectOut)
def read_project(project_id: IdPath, db: DB, user: CurrentUser) -> ProjectOut:
    require(db, user, project_id, Action.VIEW_PROJECT)
    return project_out(db, get_project(db, project_id), user)


@router.patch("/{project_id}", response_model=ProjectOut)
def edit_project(project_id: IdPath, body: ProjectSettings, db: DB, user: CurrentUser) -> ProjectOut:
    require(db, user, project_id, Action.EDIT_PROJECT)
    project = get_project(db, project_id, lock=True)
    changes = body.model_dump(exclude_unset=True)
    if "readers_per_item" in changes and changes["readers_per_item"] is not None:
        queue.adjust_readers(db, project, changes["readers_per_item"])
    for key, value in changes.items():
        if value is None and key != "webhook_url":
            continue
        setattr(project, key, value)
    db.flush()
    return project_out(db, project, user)


@router.get("/{project_id}/schema", response_model=SchemaVersionOut)
def read_schema(project_id: IdPath, db: DB, user: CurrentUser) -> SchemaVersion:
    require(db, user, project_id, Action.VIEW_SCHEMA)
    sv = queue.current_schema(db, get_project(db, project_id))
    if sv is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "this project has no label schema yet")
    return sv


@router.get("/{project_id}/schema/versions", response_model=list[SchemaVersionOut])
def list_schema_versions(project_id: IdPath, db: DB, user: CurrentUser) -> list[SchemaVersion]:
    require(db, user, project_id, Action.VIEW_SCHEMA)
    return list(db.scalars(select(SchemaVersion).where(SchemaVersion.project_id == project_id).order_by(SchemaVersion.version)))


@router.post("/{project_id}/schema", response_model=SchemaVersionOut, status_code=status.HTTP_201_CREATED)
def edit_schema(project_id: IdPath, body: SchemaDef, db: DB, user: CurrentUser) -> SchemaVersion:
    """Adds a version; earlier versions stay so annotations made under them stay interpretable."""
    require(db, user, project_id, Action.EDIT_SCHEMA)
    return add_schema_version(db, get_project(db, project_id, lock=True), body, user)


def member_out(m: Membership) -> MemberOut:
    return MemberOut(id=m.id, user_id=m.user_id, username=m.user.username, display_name=m.user.display_name,
                     role=m.role, level=m.level, competences=m.competences or [])


@router.get("/{project_id}/members", response_model=list[MemberOut])
def list_members(project_id: IdPath, db: DB, user: CurrentUser) -> list[MemberOut]:
    require(db, user, project_id, Action.MANAGE_MEMBERS)
    rows = db.scalars(select(Membership).where(Membership.project_id == project_id).order_by(Membership.id))
    return [member_out(m) for m in rows]


def _guard_owner_grant(roles: set[Role], is_admin: bool, role: Role | str) -> None:
    if Role(role) == Role.OWNER and Role.OWNER not in roles and not is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only owners grant or remove the owner role")


@router.post("/{project_id}/members", response_model=MemberOut, status_code=status.HTTP_201_CREATED)
def add_member(project_id: IdPath, body: MemberIn, db: DB, user: CurrentUser) -> MemberOut:
    roles = require(db, user, project_id, Action.MANAGE_MEMBERS)
    get_project(db, project_id)
    _guard_owner_grant(roles, user.is_admin, body.role)
    target = db.get(User, body.user_id)
    if target is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such user")
    exists = db.scalar(select(Membership).where(Membership.project_id == project_id, Membership.user_id == target.id,
                                                Membership.role == body.role.value))
    if exists is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, "this user already holds this role here")
    level = (body.level.value if body.level else "junior") if body.role == Role.ANNOTATOR else None
    m = Membership(project_id=project_id, user_id=target.id, role=body.role.value, level=level,
                   competences=[c.model_dump() for c in body.competences])
    db.add(m)
    db.flush()
    db.refresh(m)
    return member_out(m)


def _membership(db, project_id: IdPath, member_id: IdPath) -> Membership:
    m = db.get(Membership, member_id)
    if m is None or m.project_id != project_id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such member")
    return m


@router.patch("/{project_id}/members/{member_id}", response_model=MemberOut)
def edit_member(project_id: IdPath, member_id: IdPath, body: MemberPatch, db: DB, user: CurrentUser) -> MemberOut:
    require(db, user, project_id, Action.MANAGE_MEMBERS)
    m = _membership(db, project_id, member_id)
    if body.level is not None and m.role == Role.ANNOTATOR.value:
        m.level = body.level.value
    if body.competences is not None:
        m.competences = [c.model_dump() for c in body.competences]
    db.flush()
    return member_out(m)


@router.delete("/{project_id}/members/{member_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_member(project_id: IdPath, member_id: IdPath, db: DB, user: CurrentUser) -> Response:
    roles = require(db, user, project_id, Action.MANAGE_MEMBERS)
    m = _membership(db, project_id, member_id)
    _guard_owner_grant(roles, user.is_admin, m.role)
    if m.role == Role.OWNER.value:
        owners = db.scalars(select(Membership).where(Membership.project_id == project_id, Membership.role == Role.OWNER.value)).all()
        if len(owners) <= 1:
            raise HTTPException(status.HTTP_409_CONFLICT, "a project keeps at least one owner")
    db.delete(m)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
