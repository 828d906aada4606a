"""Exports for the roles that hold the export right: CSV, JSON, and zips of DICOM SR and SEG."""
from __future__ import annotations

import io
import json
import logging
import zipfile

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import select

from annotation.deps import CurrentUser, DB, IdPath, require
from annotation.exports import dicom_objects, tabular
from annotation.exports.readings import collect
from annotation.models import SchemaVersion, TaskKind, TaskStatus
from annotation.permissions import Action
from annotation.routers.projects import get_project

router = APIRouter(prefix="/api/projects/{project_id}/export", tags=["exports"])
log = logging.getLogger("annotation.exports")

RoundQuery = Query(None, ge=1, le=10_000)


@router.get("/csv", response_class=Response, responses={200: {"content": {"text/csv": {}}}})
def export_csv(project_id: IdPath, db: DB, user: CurrentUser, round: int | None = RoundQuery) -> Response:
    require(db, user, project_id, Action.EXPORT)
    project = get_project(db, project_id)
    body = tabular.to_csv(project, collect(db, project, round))
    return Response(body, media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="project-{project_id}.csv"'})


@router.get("/json")
def export_json(project_id: IdPath, db: DB, user: CurrentUser, round: int | None = RoundQuery) -> dict:
    require(db, user, project_id, Action.EXPORT)
    project = get_project(db, project_id)
    schemas = [{"version": sv.version, "definition": sv.definition}
               for sv in db.scalars(select(SchemaVersion).where(SchemaVersion.project_id == project_id).order_by(SchemaVersion.version))]
    return tabular.to_json(project, collect(db, project, round), schemas)


@router.get("/quality")
def export_quality(project_id: IdPath, db: DB, user: CurrentUser, round: int | None = RoundQuery) -> dict:
    """Quality-review decisions (approve / exclude / quarantine), each with reason, reader and time."""
    require(db, user, project_id, Action.EXPORT)
    project = get_project(db, project_id)
    return tabular.quality_decisions(project, collect(db, project, round))


def _dicom_zip(project_id: IdPath, db, user, request: Request, round_: int | None, kind: str) -> Response:
    require(db, user, project_id, Action.EXPORT)
    project = get_project(db, project_id)
    readings = [r for r in collect(db, project, round_)
                if r.status == TaskStatus.SUBMITTED.value and r.kind == TaskKind.ANNOTATE.value and (r.rois or r.labels)]
    load = request.app.state.instances.dataset
    buf = io.BytesIO()
    manifest: dict[str, list] = {"files": [], "skipped": []}
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for r in readings:
            try:
                objs = [dicom_objects.build_sr(r, load)] if kind == "sr" else dicom_objects.build_seg(r, load)
            except Exception as exc:  # one unexportable reading must not sink the whole export
                log.warning("%s export skipped task %s: %s", kind, r.task_id, type(exc).__name__)
                manifest["skipped"].append({"task_id": r.task_id, "reason": f"{type(exc).__name__}: {str(exc)[:200]}"})
                continue
            for n, ds in enumerate(objs):
                name = f"item{r.item.id}_task{r.task_id}_{kind}{n}.dcm"
                out = io.BytesIO()
                ds.save_as(out, enforce_file_format=True)
                zf.writestr(name, out.getvalue())
                manifest["files"].append({"file": name, "task_id": r.task_id, "item_id": r.item.id,
                                          "external_id": r.item.external_id, "annotator": r.reader,
                                          "sop_instance_uid": str(ds.SOPInstanceUID)})
        zf.writestr("manifest.json", json.dumps(manifest, indent=2))
    return Response(buf.getvalue(), media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="project-{project_id}-{kind}.zip"'})


@router.get("/sr", response_class=Response, responses={200: {"content": {"application/zip": {}}}})
def export_sr(project_id: IdPath, request: Request, db: DB, user: CurrentUser, round: int | None = RoundQuery) -> Response:
    """One Comprehensive 3D SR (TID 1500) per reading, zipped with a manifest."""
    return _dicom_zip(project_id, db, user, request, round, "sr")


@router.get("/seg", response_class=Response, responses={200: {"content": {"application/zip": {}}}})
def export_seg(project_id: IdPath, request: Request, db: DB, user: CurrentUser, round: int | None = RoundQuery) -> Response:
    """Binary DICOM SEG of the ROIs of each reading, zipped with a manifest."""
    return _dicom_zip(project_id, db, user, request, round, "seg")
