"""The Airflow plugin of the operator's page: Airflow's plugin manager imports this file (the folder's
.airflowignore keeps it from importing the package's other modules under bare names) and finds the
plugin below: the FastAPI app mounted at /curate-ops on the API server, a "Curation" entry in the
navigation, and a "Curation stages" tab on every DAG run."""
from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from plugins.operator_page.app import URL_PREFIX, app


class CurateOperatorPagePlugin(AirflowPlugin):
    name = "curate_operator_page"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Curation operations"}]
    external_views = [
        {"name": "Curation", "href": f"{URL_PREFIX}/", "destination": "nav", "url_route": "curate-ops",
         "category": "browse"},
        {"name": "Curation stages", "href": f"{URL_PREFIX}/runs/{{RUN_ID}}?dag_id={{DAG_ID}}",
         "destination": "dag_run", "url_route": "curate-ops-run"},
    ]
