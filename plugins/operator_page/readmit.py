"""Re-admitting a quarantined file once its cause is fixed: a new curate_source run over the file's
source, started through Airflow's REST API as the operator who asked (their token: Airflow checks
their permission and the DAG's Params), written to the lineage ledger.

The run's conf names the one object by its quarantine record and content hash (`readmit`), never by
its path (see app.py). The run's ingest reads only that file (curate_source's `readmit` Param: the
worker looks the path up from the record) and marks the record resolved once it is ingested.
"""
from __future__ import annotations

from typing import Any

import httpx
from fastapi import HTTPException

from plugins.operator_page.runs import CURATE_SOURCE

#: The ledger's words for a re-admission request.
READMIT_STAGE, READMIT_ACTION = "ingest", "readmit"


def readmit_conf(catalog: Any, quarantine_id: int) -> dict[str, Any]:
    """curate_source's conf for re-admitting quarantine record `quarantine_id`: its source and site,
    and the record's id and content hash. 404 when the record is unknown or already resolved; 409
    when no source is known for it."""
    from curation.status import quarantined_file

    found = quarantined_file(catalog, quarantine_id)
    if found is None:
        raise HTTPException(404, f"no unresolved quarantine record {quarantine_id}")
    if not found.source_uri:
        raise HTTPException(409, f"quarantine record {quarantine_id} names no source to read again")
    conf: dict[str, Any] = {"source": found.source_uri,
                            "readmit": {"quarantine_id": found.id, "sha256": found.sha256}}
    if found.site:
        conf["site"] = found.site
    return conf


def readmit(catalog: Any, quarantine_id: int, token: str, api_base: str) -> dict[str, Any]:
    """Start the run (POST /api/v2/dags/curate_source/dagRuns) and record the request; returns the
    run id, its state and the conf it was given. Airflow's refusal (403, 404, 400 on bad Params)
    comes back with Airflow's status and detail."""
    from curation.catalog import append_event

    conf = readmit_conf(catalog, quarantine_id)
    sha = conf["readmit"]["sha256"]
    body = {"logical_date": None, "conf": conf, "note": f"re-admit quarantined file sha256:{sha[:16]}"}
    answer = httpx.post(f"{api_base}/api/v2/dags/{CURATE_SOURCE}/dagRuns", json=body,
                        headers={"Authorization": f"Bearer {token}"}, timeout=30)
    if answer.status_code >= 400:
        try:
            detail = answer.json().get("detail")
        except ValueError:
            detail = answer.text[:500]
        raise HTTPException(answer.status_code, detail)
    run = answer.json()
    append_event(catalog, stage=READMIT_STAGE, action=READMIT_ACTION, subject=f"quarantine:{quarantine_id}",
                 inputs=[f"sha256:{sha}"], details={"dag_id": CURATE_SOURCE, "dag_run_id": run.get("dag_run_id")})
    return {"dag_id": CURATE_SOURCE, "dag_run_id": run.get("dag_run_id"), "state": run.get("state"), "conf": conf}


__all__ = ["READMIT_ACTION", "READMIT_STAGE", "readmit", "readmit_conf"]
