"""ORM -> response-model conversions shared by several routers."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from annotation.imaging import InstanceCache, UriError
from annotation.models import Annotation, Item, Project, SchemaVersion, Task, TaskKind
from annotation.schemas import AnnotationOut, InstanceOut, ItemContext, ItemOut, SchemaVersionOut, TaskOut


def item_out(item: Item, *, staff: bool, cache: InstanceCache | None = None) -> ItemOut:
    """`cache` given: instances in anatomical order (position along the slice normal) with the
    ordering's warnings; without it, in registration order."""
    instances = list(item.instances)
    ordering, warnings = "listed", []
    if cache is not None and len(instances) > 1:
        try:
            order = cache.slice_order([i.uri for i in instances])
        except UriError:
            order = None  # an unreadable instance shows its own error when the viewer loads it
        if order is not None:
            instances = [instances[k] for k in order.order]
            ordering, warnings = order.by, order.warnings
    return ItemOut(
        id=item.id, project_id=item.project_id, external_id=item.external_id, round=item.round,
        modality=item.modality, body_part=item.body_part, context=ItemContext.model_validate(item.context or {}),
        instances=[InstanceOut.model_validate(i) for i in instances],
        slice_order=ordering, geometry_warnings=warnings,
        is_gold=item.is_gold if staff else None,
    )


def schema_out(sv: SchemaVersion | None) -> SchemaVersionOut | None:
    return SchemaVersionOut.model_validate(sv) if sv is not None else None


def annotation_out(db: Session, ann: Annotation | None) -> AnnotationOut | None:
    if ann is None:
        return None
    version = db.scalar(select(SchemaVersion.version).where(SchemaVersion.id == ann.schema_version_id)) if ann.schema_version_id else None
    quality = {"decision": ann.quality_decision, "reason": ann.quality_reason or ""} if ann.quality_decision else None
    return AnnotationOut(labels=ann.labels, rois=ann.rois, comment=ann.comment, schema_version=version, quality=quality,
                         assist=ann.assist)


def task_out(db: Session, task: Task, cache: InstanceCache | None = None) -> TaskOut:
    project = db.get(Project, task.project_id)
    sv = db.get(SchemaVersion, task.schema_version_id) if task.schema_version_id else None
    reviewed = None
    if task.kind == TaskKind.VERIFY.value and task.parent_task_id:
        parent = db.get(Task, task.parent_task_id)
        reviewed = annotation_out(db, parent.annotation) if parent else None
    return TaskOut(
        id=task.id, project_id=task.project_id, project_name=project.name if project else "",
        project_kind=project.kind if project else "labels",
        item=item_out(task.item, staff=False, cache=cache), kind=task.kind, status=task.status, round=task.round,
        verify_level=task.verify_level, schema_version=schema_out(sv), assigned_at=task.assigned_at,
        loaded_at=task.loaded_at, submitted_at=task.submitted_at, skip_reason=task.skip_reason,
        annotation=annotation_out(db, task.annotation), reviewed=reviewed,
    )
