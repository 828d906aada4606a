"""The Airflow plugin of the operator's page: Airflow's plugin manager imports this file (the folder's
.airflowignore keeps it from importing the package's other modules under bare names) and finds the
plugin below: the page's FastAPI app mounted at /curate-ops on the API server, a "Curation" entry in
the navigation, and a "Curation stages" tab on every DAG run.

Every task process, the scheduler and the dag-processor import plugins too (a task's template
context loads them), so this file imports nothing heavy: the app (FastAPI, Airflow's security
module, Jinja) is built on the API server's first request to it.
"""
from __future__ import annotations

import importlib
from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/curate-ops"


class OperatorPageApp:
    """An ASGI app that builds `plugins.operator_page.app.create_app()` when first called."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self._app is None:
            self._app = importlib.import_module("plugins.operator_page.app").create_app()
        await self._app(scope, receive, send)


class CurateOperatorPagePlugin(AirflowPlugin):
    name = "curate_operator_page"
    fastapi_apps = [{"app": OperatorPageApp(), "url_prefix": URL_PREFIX, "name": "Curation operations"}]
    external_views = [
        {"name": "Curation", "href": f"{URL_PREFIX}/", "destination": "nav", "url_route": "curate-ops",
         "category": "browse"},
        {"name": "Curation stages", "href": f"{URL_PREFIX}/runs/{{RUN_ID}}?dag_id={{DAG_ID}}",
         "destination": "dag_run", "url_route": "curate-ops-run"},
    ]
