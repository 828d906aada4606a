"""AnnotationServiceHook: the annotation service's REST API, as the pipeline's service account.

Connection `curate_annotation`: host = the service's URL (`http://annotation.example.org:8000`, or
host and port with schema/conn_type http), password = the service token
(`curate annotation token create --project P --role pipeline`), sent as `Authorization: Bearer`.
The tasks use a synchronous httpx client, the trigger an asynchronous one (it runs in the
triggerer's event loop and must not block it). The token never leaves the connection: the trigger
keeps only the connection id in its serialised form.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
from airflow.sdk import BaseHook

#: The service takes at most this many items per round call (annotation/schemas.py: RoundIn.items).
ITEMS_PER_CALL = 1000
DEFAULT_TIMEOUT_S = 60.0


class AnnotationServiceError(RuntimeError):
    """The service refused a call or could not be reached; the message names the connection and the call."""


class AnnotationServiceHook(BaseHook):
    conn_name_attr = "annotation_conn_id"
    default_conn_name = "curate_annotation"
    conn_type = "http"
    hook_name = "Curation annotation service"
    items_per_call = ITEMS_PER_CALL

    def __init__(self, annotation_conn_id: str = default_conn_name, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.annotation_conn_id = annotation_conn_id
        self.timeout_s = timeout_s

    # --- the connection ----------------------------------------------------------------------
    def _missing(self, exc: Exception) -> AnnotationServiceError:
        return AnnotationServiceError(
            f"Airflow connection {self.annotation_conn_id!r} is missing or unreadable ({exc}); create it with "
            f"host = the annotation service's URL and password = a pipeline service token, e.g. "
            f"AIRFLOW_CONN_{self.annotation_conn_id.upper()}='{{\"conn_type\": \"http\", \"host\": "
            f"\"http://127.0.0.1:8000\", \"password\": \"TOKEN\"}}'")

    def _base(self, conn: Any) -> tuple[str, str]:
        """(base URL, token) from the connection, with the errors a curator can act on."""
        host = (conn.host or "").rstrip("/")
        if not host:
            raise AnnotationServiceError(f"Airflow connection {self.annotation_conn_id!r} has no host: set it to "
                                         "the annotation service's URL (http://host:port)")
        if "://" not in host:
            scheme = conn.schema or ("https" if conn.conn_type == "https" else "http")
            host = f"{scheme}://{host}"
        if conn.port and host.count(":") < 2:
            host = f"{host}:{conn.port}"
        if not conn.password:
            raise AnnotationServiceError(f"Airflow connection {self.annotation_conn_id!r} has no password: set it "
                                         "to a pipeline service token (curate annotation token create --project P "
                                         "--role pipeline)")
        return host, conn.password

    def connection_settings(self) -> tuple[str, str]:
        try:
            conn = self.get_connection(self.annotation_conn_id)
        except Exception as exc:  # noqa: BLE001 - Airflow raises its own not-found types by version
            raise self._missing(exc) from exc
        return self._base(conn)

    async def aconnection_settings(self) -> tuple[str, str]:
        try:
            conn = await self.aget_connection(self.annotation_conn_id)
        except Exception as exc:  # noqa: BLE001
            raise self._missing(exc) from exc
        return self._base(conn)

    @contextmanager
    def client(self) -> Iterator[httpx.Client]:
        """A synchronous client on the service with the token (for tasks)."""
        url, token = self.connection_settings()
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=self.timeout_s) as c:
            yield c

    @asynccontextmanager
    async def async_client(self) -> Any:
        """An asynchronous client on the service with the token (for the trigger)."""
        url, token = await self.aconnection_settings()
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"},
                                     timeout=self.timeout_s) as c:
            yield c

    def _answer(self, response: httpx.Response, what: str) -> Any:
        if response.status_code >= 400:
            raise AnnotationServiceError(f"{what} via connection {self.annotation_conn_id!r}: "
                                         f"{response.status_code} {response.text[:500]}")
        return response.json()

    def _call(self, client: httpx.Client, method: str, path: str, what: str, **kwargs: Any) -> httpx.Response:
        try:
            return client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise AnnotationServiceError(f"{what} via connection {self.annotation_conn_id!r}: "
                                         f"{type(exc).__name__}: {exc}") from exc

    # --- the calls the pipeline makes ----------------------------------------------------------
    def project_id(self, project: str | int) -> int:
        """The service's id of `project` (a name, or an id as text): the projects the token belongs to."""
        if isinstance(project, int) or str(project).isdigit():
            return int(project)
        with self.client() as c:
            projects = self._answer(self._call(c, "GET", "/api/projects", "list projects"), "list projects")
        for p in projects:
            if p["name"] == project:
                return int(p["id"])
        raise AnnotationServiceError(
            f"no project {project!r} among the projects the token of connection {self.annotation_conn_id!r} may "
            f"use ({sorted(p['name'] for p in projects)}): create it in the service and scope the token to it")

    def create_round(self, project_id: int, body: Mapping[str, Any], items: Sequence[Mapping[str, Any]]
                     ) -> dict[str, Any]:
        """Create the round `body['name']` (or find it) and register its items, at most
        `items_per_call` per call; the service keys both by name and external id, so a repeated call
        registers nothing twice. Returns the last answer with `created`/`existing` over all calls."""
        step = self.items_per_call
        chunks = [list(items[i:i + step]) for i in range(0, len(items), step)] or [[]]
        created: list[int] = []
        existing: list[int] = []
        answer: dict[str, Any] = {}
        what = f"create round {body.get('name')!r} of project {project_id}"
        with self.client() as c:
            for chunk in chunks:
                answer = self._answer(self._call(c, "POST", f"/api/projects/{project_id}/rounds", what,
                                                 json={**dict(body), "items": chunk}), what)
                created += answer["created"]
                existing += answer["existing"]
            if len(chunks) > 1:  # the round's per-item status after the last chunk
                answer["round"] = self.get_round(project_id, answer["round"]["number"], client=c)
        return {**answer, "created": created, "existing": existing}

    def get_round(self, project_id: int, number: int, client: httpx.Client | None = None) -> dict[str, Any]:
        what = f"round {number} of project {project_id}"
        if client is not None:
            return self._answer(self._call(client, "GET", f"/api/projects/{project_id}/rounds/{number}", what), what)
        with self.client() as c:
            return self.get_round(project_id, number, client=c)

    def close_round(self, project_id: int, number: int) -> dict[str, Any]:
        """Close the round (idempotent on the service): unread slots closed, late readings refused."""
        what = f"close round {number} of project {project_id}"
        with self.client() as c:
            return self._answer(self._call(c, "POST", f"/api/projects/{project_id}/rounds/{number}/close", what), what)

    def put_predictions(self, bodies: Mapping[int, Mapping[str, Any]]) -> int:
        """Register a model's predictions with items (service item id -> body of `PUT
        /api/items/{id}/predictions`); the service replaces an item's earlier predictions, so a repeat
        is harmless. Returns how many items were registered."""
        with self.client() as c:
            for item_id, body in sorted(bodies.items()):
                what = f"register predictions of item {item_id}"
                self._answer(self._call(c, "PUT", f"/api/items/{int(item_id)}/predictions", what, json=dict(body)),
                             what)
        return len(bodies)

    def export_rows(self, project_id: int, number: int) -> list[dict[str, str]]:
        """The round's readings as the service's CSV export rows (one per answer, region, decision)."""
        what = f"export readings of round {number} of project {project_id}"
        with self.client() as c:
            response = self._call(c, "GET", f"/api/projects/{project_id}/export/csv", what, params={"round": number})
        if response.status_code >= 400:
            self._answer(response, what)
        return list(csv.DictReader(io.StringIO(response.text)))

    def export_quality(self, project_id: int, number: int) -> list[dict[str, Any]]:
        """The quality-review decisions of the round (`export/quality`)."""
        what = f"export quality decisions of round {number} of project {project_id}"
        with self.client() as c:
            return self._answer(self._call(c, "GET", f"/api/projects/{project_id}/export/quality", what,
                                           params={"round": number}), what)["decisions"]

    async def aget_round(self, client: httpx.AsyncClient, project_id: int, number: int) -> dict[str, Any]:
        """The round's status from the async client (the trigger's poll). Raises httpx errors as they are:
        the trigger tells a passing outage from a refusal."""
        response = await client.get(f"/api/projects/{project_id}/rounds/{number}")
        response.raise_for_status()
        return response.json()


__all__ = ["AnnotationServiceError", "AnnotationServiceHook", "ITEMS_PER_CALL"]
