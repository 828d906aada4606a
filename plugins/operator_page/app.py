"""The operator's page: a FastAPI app the plugin (curate_operator_page.py) mounts on Airflow's API
server at /curate-ops.

- `GET /` the page: per site the catalog's figures (`curation.status`, what `curate status` prints),
  the newest curate_source runs stage by stage (Airflow's metadata), the quarantine grouped by reason
  with each file's source and content hash and a re-admit button, series awaiting review, rounds in
  progress, releases; `?site=` narrows it to one site;
- `GET /runs/{run_id}` one run of a DAG stage by stage (the DAG-run tab the plugin adds);
- `GET /api/status` the same facts as JSON;
- `POST /api/quarantine/{id}/readmit` starts curate_source over just that file through Airflow's
  REST API, as the caller (their token, their permissions), the run's conf naming the quarantine
  record and its content hash; the request is written to the lineage ledger.

It reads the catalog (never the raw zone) and shows no PHI: a quarantined file's path inside its
source is never shown (hospital exports name folders after patients; the catalog keeps the path
only as the source gave it), the source's URI and the content hash identify it. Every route needs
Airflow's login (plugins.operator_page.auth).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from plugins.operator_page.auth import READMIT_HEADER, caller_token, can_read, can_trigger
from plugins.operator_page.runs import CURATE_SOURCE, run_figures

log = logging.getLogger(__name__)

TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).with_name("templates")),
                        autoescape=select_autoescape(default=True, default_for_string=True))


def _catalog() -> Any:
    """The catalog the stage tasks write: the `curate_default` connection where one exists, else the
    CURATE_* settings (the same resolution as the operators' CurationHook)."""
    from operators.hooks.curation import CurationHook

    return CurationHook().get_catalog()


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


TEMPLATES.filters["seconds"] = _seconds


def _facts(site: str | None) -> dict[str, Any]:
    from curation.status import (STAGE_UNITS, awaiting_review, ordered_stages, quarantined_files, releases,
                                 rounds_in_progress, site_status)

    catalog = _catalog()
    sites = site_status(catalog, site)
    files = quarantined_files(catalog, site)
    by_reason: dict[str, list[Any]] = {}
    for f in files:
        by_reason.setdefault(f.reason_code, []).append(f)
    return {"sites": sites, "stage_order": {s.site: ordered_stages(s.stages) for s in sites},
            "units": STAGE_UNITS, "quarantine": dict(sorted(by_reason.items(), key=lambda kv: -len(kv[1]))),
            "awaiting_review": awaiting_review(catalog, site), "rounds": rounds_in_progress(catalog),
            "releases": releases(catalog)}


def create_app() -> FastAPI:
    app = FastAPI(title="Curation operations", description="The curation platform's operator page "
                  "(catalog figures, runs, quarantine, reviews, rounds, releases)", docs_url=None, redoc_url=None)

    @app.get("/", response_class=HTMLResponse, dependencies=[can_read()])
    def page(request: Request, site: str | None = None) -> HTMLResponse:
        facts = _facts(site)
        runs = [r for r in run_figures(CURATE_SOURCE) if site is None or r.site in (site, None)]
        return HTMLResponse(TEMPLATES.get_template("page.html").render(
            site=site, runs=runs, readmit_header=READMIT_HEADER, prefix=request.scope.get("root_path", ""), **facts))

    @app.get("/runs/{run_id}", response_class=HTMLResponse, dependencies=[can_read()])
    def one_run(request: Request, run_id: str, dag_id: str = CURATE_SOURCE) -> HTMLResponse:
        runs = run_figures(dag_id, run_id)
        if not runs:
            raise HTTPException(404, f"no run {run_id!r} of {dag_id!r}")
        return HTMLResponse(TEMPLATES.get_template("run.html").render(
            run=runs[0], prefix=request.scope.get("root_path", "")))

    @app.get("/api/status", dependencies=[can_read()])
    def status_json(site: str | None = None) -> dict[str, Any]:
        from curation.status import status

        report = status(_catalog(), site)
        report["runs"] = [{"run_id": r.run_id, "state": r.state, "site": r.site, "seconds": r.seconds,
                           "instances": r.instances, "instances_per_second": r.instances_per_second,
                           "tasks": [{"task_id": t.task_id, "states": t.states, "wall_seconds": t.wall_seconds,
                                      "busy_seconds": round(t.busy_seconds, 3)} for t in r.tasks]}
                          for r in run_figures(CURATE_SOURCE)]
        return report

    @app.post("/api/quarantine/{quarantine_id}/readmit", status_code=201, dependencies=[can_trigger()])
    def readmit(request: Request, quarantine_id: int) -> dict[str, Any]:
        from plugins.operator_page.readmit import readmit as start_readmit

        return start_readmit(_catalog(), quarantine_id, caller_token(request), _api_base(request))

    return app


def _api_base(request: Request) -> str:
    """Where Airflow's public API answers: `[api] base_url` when set, else this server."""
    from airflow.configuration import conf

    base = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    return base or f"{request.url.scheme}://{request.url.netloc}"


__all__ = ["create_app"]
