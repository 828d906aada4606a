"""The predict step's round trip through the real annotation service: select -> predict (a site's model
found by its entry point) -> dispatch, which registers the stored predictions with the items it
created (`PUT /api/items/{id}/predictions`, the pipeline token); a reader of the item then gets
exactly what the stage stored: probabilities, boxes and the heatmap PNG. Without a model, predict
skips and dispatch registers nothing."""
from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import cv2
import httpx
import numpy as np
import pytest
from airflow.sdk.exceptions import AirflowSkipException

from curation.assist.predictions import stored_predictions
from curation.assist.registry import GROUP
from curation.catalog.db import open_catalog
from curation.store import Zone, open_store
from operators.annotation import DispatchRoundOperator, SelectRoundOperator
from operators.assist import PredictOperator
from operators.hooks.annotation import AnnotationServiceHook
from tests.ai.test_pipeline import _plant_spot
from tests.operators import conftest as service_fixtures
from tests.operators.world import LABELS_PROJECT, READERS, curated_catalog, ok

connection, world = service_fixtures.connection, service_fixtures.world  # the real service, as fixtures


@pytest.fixture
def curated(connection, tmp_path, monkeypatch):
    home = tmp_path / "curate"
    monkeypatch.setenv("CURATE_HOME", str(home))
    for name in ("CURATE_DB_URL", "CURATE_STORE_URI", "AIRFLOW_CONN_CURATE_DEFAULT"):
        monkeypatch.delenv(name, raising=False)
    open_catalog.cache_clear()
    catalog, labels, _ = curated_catalog(home, n_labels=2, n_review=0)
    _plant_spot(home, catalog, labels[0], (20, 44))
    # a site's model, installed: its distribution's entry point on the path
    dist = tmp_path / "site_models-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: site-models\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{GROUP}]\nbrightspot = tests.ai.test_pipeline:tiny_model\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield home, catalog, labels
    catalog.dispose()
    open_catalog.cache_clear()


def _select(run_id: str) -> dict:
    op = SelectRoundOperator(task_id="select", project=LABELS_PROJECT, schema="chest_findings_v1",
                             selection={"exclude_read": True})
    return op.execute({"dag": SimpleNamespace(dag_id="annotation_round"), "run_id": run_id})


def test_dispatch_registers_the_stored_predictions_and_readers_see_them(curated, connection):
    home, catalog, labels = curated
    selected = _select("manual__assist")
    predicted = PredictOperator(task_id="predict", selected=selected, model="brightspot").execute({})
    assert predicted["model"] == {"name": "brightspot", "version": "0.1"} and predicted["items"] == 2
    dispatched = DispatchRoundOperator(task_id="dispatch", selected=selected, predictions=predicted,
                                       readers_per_item=1, deadline_hours=1).execute({})
    assert dispatched["suggested"] == 2
    store = open_store(home / "store")
    records = stored_predictions(catalog, labels)
    with httpx.Client(base_url=connection.url, headers=connection.people[READERS[0]], timeout=30) as c:
        seen = {}
        while True:
            task = ok(c.post(f"/api/tasks/next?project_id={connection.projects[LABELS_PROJECT]}"))["task"]
            if task is None:
                break
            seen[task["item"]["external_id"]] = ok(c.get(f"/api/items/{task['item']['id']}/predictions"))
            ok(c.post(f"/api/tasks/{task['id']}/skip", json={"reason": "test reads suggestions only"}))
    assert len(seen) == 2
    for sid in labels:
        stored = json.loads(store.get_bytes(Zone.DERIVED, records[sid].metrics["json"]))
        shown = seen[stored["item"]]
        assert shown["model"] == {"name": "brightspot", "version": "0.1"} and not shown["hidden"]
        assert shown["probabilities"] == pytest.approx(stored["probabilities"])
        assert [(b["label"], b["x0"], b["y0"], b["x1"], b["y1"]) for b in shown["boxes"]] == \
            [(b["label"], b["x0"], b["y0"], b["x1"], b["y1"]) for b in stored["boxes"]]
        (heat,) = shown["heatmaps"]
        assert (heat["label"], heat["rows"], heat["cols"]) == ("nodule", 64, 64)
        # the service stores heatmaps re-encoded from their pixels (no PNG chunk survives): same pixels, not same bytes
        assert np.array_equal(_png_pixels(base64.b64decode(heat["png_base64"])),
                              _png_pixels(store.get_bytes(Zone.DERIVED, stored["heatmaps"][0]["key"])))
    spotted = seen[json.loads(store.get_bytes(Zone.DERIVED, records[labels[0]].metrics["json"]))["item"]]
    assert spotted["probabilities"]["nodule"] > 0.9 and len(spotted["boxes"]) == 1
    AnnotationServiceHook().close_round(dispatched["project_id"], dispatched["round"]["service_round_number"])



def _png_pixels(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)

def test_without_a_model_predict_skips_and_dispatch_registers_nothing(curated, connection):
    selected = _select("manual__no_model")
    for model in ("", "not-installed"):
        with pytest.raises(AirflowSkipException):
            PredictOperator(task_id="predict", selected=selected, model=model).execute({})
    dispatched = DispatchRoundOperator(task_id="dispatch", selected=selected, predictions=None,
                                       readers_per_item=1, deadline_hours=1).execute({})
    assert dispatched["suggested"] == 0 and dispatched["created"] == 2
    AnnotationServiceHook().close_round(dispatched["project_id"], dispatched["round"]["service_round_number"])
