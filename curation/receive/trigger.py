"""Start curation of a quiet series through Airflow's REST API (no Airflow import: plain HTTP).

Two ways, chosen by the operator:

* ``dag-run`` (default): ``POST /api/v2/dags/curate_source/dagRuns`` with ``conf`` = the series' spool
  folder as ``source`` and the site. curate_source is started by hand or by this receiver (it is not
  scheduled on an asset), and its ``source`` Param is what it ingests: the spool folder holds exactly
  that series, already catalogued, so its ingest adds nothing and hands on that one series. The run
  id is derived from the series and the burst's first arrival, so a retried POST that had in fact
  succeeded answers 409 and starts nothing twice.
* ``asset``: ``POST /api/v2/assets/events`` on a named asset, the reference in the event's ``extra``,
  for deployments where a DAG is scheduled on that asset.

What is sent names the series by catalog id and spool folder, never by a UID or a patient attribute.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import requests

log = logging.getLogger(__name__)

DEFAULT_DAG_ID = "curate_source"
DEFAULT_ASSET = "received_series"


class TriggerMode(StrEnum):
    """How the receiver starts curation of a complete series."""

    DAG_RUN = "dag-run"
    ASSET = "asset"
    NONE = "none"


class TriggerError(RuntimeError):
    """Airflow did not take the trigger (unreachable, refused): the series is tried again later."""


@dataclass(frozen=True)
class SeriesReady:
    """The reference of one complete series, as sent to Airflow (no PHI, no UIDs)."""

    series_id: int
    instances: int  # received in this burst
    source: str  # the series' spool folder
    site: str
    receiver_aet: str
    first_arrival: datetime

    @property
    def run_id(self) -> str:
        return f"receive__series-{self.series_id}__{self.first_arrival:%Y%m%dT%H%M%S%fZ}"

    def extra(self) -> dict[str, Any]:
        return {"series_id": self.series_id, "instances": self.instances, "source": self.source,
                "site": self.site, "receiver": self.receiver_aet}


class AirflowTrigger:
    """Posts one request per complete series to an Airflow API server.

    Credentials, when given, are exchanged for a bearer token at ``/auth/token`` (Airflow 3's simple
    and FAB auth managers), fetched again once when the server answers 401.
    """

    def __init__(self, url: str, *, mode: TriggerMode | str = TriggerMode.DAG_RUN, dag_id: str = DEFAULT_DAG_ID,
                 asset: str = DEFAULT_ASSET, username: str | None = None, password: str | None = None,
                 timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.mode = TriggerMode(mode)
        self.dag_id, self.asset = dag_id, asset
        self.username, self.password = username, password
        self.timeout = timeout
        self._session = requests.Session()
        self._token: str | None = None
        self._asset_id: int | None = None

    def describe(self) -> str:
        if self.mode == TriggerMode.NONE:
            return "none (series are catalogued, curation is started by hand)"
        target = f"DAG {self.dag_id}" if self.mode == TriggerMode.DAG_RUN else f"asset {self.asset}"
        return f"{self.mode} on {target} at {self.url}"

    def fire(self, ready: SeriesReady) -> None:
        """Start curation of the series; raises TriggerError when Airflow did not take it."""
        if self.mode == TriggerMode.NONE:
            return
        if self.mode == TriggerMode.DAG_RUN:
            body = {"dag_run_id": ready.run_id, "logical_date": None,
                    "conf": {"source": ready.source, "site": ready.site},
                    "note": f"received over DICOM by {ready.receiver_aet}: catalog series {ready.series_id}, "
                            f"{ready.instances} instances"}
            response = self._request("POST", f"/api/v2/dags/{self.dag_id}/dagRuns", json=body)
            if response.status_code == 409:
                log.info("trigger: run %s of series %d already exists", ready.run_id, ready.series_id)
                return
        else:
            body = {"asset_id": self._find_asset(), "extra": ready.extra()}
            response = self._request("POST", "/api/v2/assets/events", json=body)
        if not response.ok:
            raise TriggerError(f"Airflow answered HTTP {response.status_code} to the {self.mode} trigger: "
                               f"{response.text[:300]}")

    def _find_asset(self) -> int:
        if self._asset_id is None:
            response = self._request("GET", "/api/v2/assets", params={"name_pattern": self.asset, "limit": 100})
            if not response.ok:
                raise TriggerError(f"Airflow answered HTTP {response.status_code} when asked for asset {self.asset}")
            matches = [a["id"] for a in response.json().get("assets", []) if self.asset in (a.get("name"), a.get("uri"))]
            if not matches:
                raise TriggerError(f"Airflow knows no asset named {self.asset} (is a DAG scheduled on it?)")
            self._asset_id = int(matches[0])
        return self._asset_id

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            response = self._session.request(method, self.url + path, headers=self._headers(), timeout=self.timeout,
                                             **kwargs)
            if response.status_code == 401 and self.username:
                self._token = None
                response = self._session.request(method, self.url + path, headers=self._headers(),
                                                 timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise TriggerError(f"Airflow at {self.url} is unreachable ({type(exc).__name__})") from exc
        return response

    def _headers(self) -> dict[str, str]:
        if not self.username:
            return {}
        if self._token is None:
            response = self._session.post(f"{self.url}/auth/token", timeout=self.timeout,
                                          json={"username": self.username, "password": self.password or ""})
            if not response.ok:
                raise TriggerError(f"Airflow refused the receiver's credentials (HTTP {response.status_code})")
            self._token = response.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}"}
