"""A validation project end to end (issue 18, point 5): curated radiographs -> select -> predict -> dispatch
(predictions registered with the items) to a blind-first validation project on the real annotation
service -> simulated readers (synth.readers: two careful, one hasty) answer each case unaided, see the
model's outputs, rate every one (accept / reject with a reason) and submit their aided answer -> the
service's JSON export -> the validation report. Every figure of the report equals the one computed
directly from the export with sklearn and plain Python."""
from __future__ import annotations

from types import SimpleNamespace

import httpx
import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, roc_auc_score

from curation.agreement.roi import box_consensus
from curation.agreement.validation import ValidationConfig, validation_report
from curation.annotation_schema import load_schema
from curation.assist.predictions import prediction_tables
from curation.assist.readings import export_tables
from curation.assist.registry import GROUP
from curation.catalog.db import open_catalog
from curation.store import open_store
from operators.annotation import DispatchRoundOperator, SelectRoundOperator
from operators.assist import PredictOperator
from synth.readers import PROFILES, Box, LabelTruth, item_reading
from tests.ai.test_pipeline import _plant_spot
from tests.operators import conftest as service_fixtures
from tests.operators.world import READERS, curated_catalog, ok

PROJECT = "validate-chest"
PROFILE = dict(zip(READERS, ("careful", "careful", "hasty")))
SEED = 5
N_ITEMS = 16
SPOT = (30, 30)
world = service_fixtures.world  # the real service, as fixtures


@pytest.fixture
def validation_world(world, tmp_path, monkeypatch):
    admin = world.people["admin"]
    with httpx.Client(base_url=world.url, headers=admin, timeout=30) as c:
        pid = ok(c.post("/api/projects", json={"name": PROJECT, "kind": "validation",
                                               "schema": load_schema("chest_findings_v1").payload}), 201)["id"]
        ok(c.patch(f"/api/projects/{pid}", json={"blind_first": True}))
        users = {u["username"]: u["id"] for u in ok(c.get("/api/users"))}
        for name in READERS:
            ok(c.post(f"/api/projects/{pid}/members", json={"user_id": users[name], "role": "annotator",
                                                             "level": "senior"}), 201)
        token = ok(c.post("/api/service-tokens", json={"name": "airflow-validation", "projects": [pid],
                                                       "roles": ["pipeline"]}), 201)["token"]
    monkeypatch.setenv("AIRFLOW_CONN_CURATE_ANNOTATION", world.connection(token))
    home = tmp_path / "curate"
    monkeypatch.setenv("CURATE_HOME", str(home))
    for name in ("CURATE_DB_URL", "CURATE_STORE_URI", "AIRFLOW_CONN_CURATE_DEFAULT"):
        monkeypatch.delenv(name, raising=False)
    open_catalog.cache_clear()
    catalog, series, _ = curated_catalog(home, n_labels=N_ITEMS, n_review=0)
    for sid in series[::2]:
        _plant_spot(home, catalog, sid, SPOT)
    dist = tmp_path / "site_models-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: site-models\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{GROUP}]\nbrightspot = tests.ai.test_pipeline:tiny_model\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield SimpleNamespace(service=world, project_id=pid, home=home, catalog=catalog, series=series)
    catalog.dispose()
    open_catalog.cache_clear()


def _truth(items: list[dict], spotted: set[int]) -> dict[str, dict[str, LabelTruth]]:
    rng = np.random.default_rng(SEED)
    truth = {}
    for item in items:
        spot = item["series_id"] in spotted
        r, c = SPOT
        truth[item["item_key"]] = {
            "nodule": LabelTruth(spot, (Box(c - 5.0, r - 5.0, 10.0, 10.0),) if spot else ()),
            "opacity": LabelTruth(bool(rng.random() < 0.4)), "effusion": LabelTruth(bool(rng.random() < 0.3))}
    return truth


def _read(service, project_id: int, reader: str, truth: dict[str, dict[str, LabelTruth]]) -> int:
    """One simulated reader's queue: unaided answer, reveal, rate every output, aided answer, submit."""
    follow = np.random.default_rng([SEED, sum(map(ord, reader))])
    profile = PROFILES[PROFILE[reader]]
    n = 0
    with httpx.Client(base_url=service.url, headers=service.people[reader], timeout=30) as c:
        while (task := ok(c.post(f"/api/tasks/next?project_id={project_id}"))["task"]) is not None:
            item = task["item"]["external_id"]
            answers = item_reading(profile, reader, SEED, item, truth[item], ["opacity", "effusion", "nodule"],
                                   grid=(64, 64))
            unaided = [{"label": k, "value": a.value, "confidence": a.confidence} for k, a in answers.items()]
            shown = ok(c.post(f"/api/tasks/{task['id']}/unaided", json={"labels": unaided}))
            calls = {k: p >= 0.5 for k, p in shown["probabilities"].items()}
            aided = {k: (calls[k] if k in calls and follow.random() < 0.3 else a.value) for k, a in answers.items()}
            suggestions = [{"label": k, "action": "accept"} if aided[k] == call else
                           {"label": k, "action": "reject", "reason": "not what I see"} for k, call in calls.items()]
            rois = []
            for i, b in enumerate(shown["boxes"]):
                if aided[b["label"]]:
                    suggestions.append({"label": b["label"], "box_index": i, "action": "accept",
                                        "box": [b["x0"], b["y0"], b["x1"], b["y1"]]})
                    # an accepted box is one of the reading's regions of the finding's box label (422 otherwise)
                    rois.append({"label": f"{b['label']}_box", "kind": "box", "instance": b["instance_position"],
                                 "frame": b["frame"], "points": [[b["x0"], b["y0"]], [b["x1"], b["y1"]]]})
                else:
                    suggestions.append({"label": b["label"], "box_index": i, "action": "reject",
                                        "reason": "no finding there"})
            if aided["nodule"] and not rois:  # the reader's own box where no suggested one was taken instead
                rois = [{"label": "nodule_box", "kind": "box", "instance": 0, "frame": 0, "points": b.corners()}
                        for b in answers["nodule"].boxes]
            labels = [{"label": k, "value": bool(v), "confidence": answers[k].confidence} for k, v in aided.items()]
            ok(c.post(f"/api/tasks/{task['id']}/submit", json={
                "labels": labels, "rois": rois, "active_ms": 9000, "idle_ms": 0,
                "label_ms": {k: 3000 for k in aided},
                "assist": {"model": shown["model"], "shown": True, "suggestions": suggestions}}))
            n += 1
    return n


def test_a_validation_project_report_equals_metrics_from_the_readings(validation_world):
    w = validation_world
    selected = SelectRoundOperator(task_id="select", project=PROJECT, schema="chest_findings_v1",
                                   selection={}).execute({"dag": SimpleNamespace(dag_id="annotation_round"),
                                                          "run_id": "manual__validation"})
    predicted = PredictOperator(task_id="predict", selected=selected, model="brightspot").execute({})
    dispatched = DispatchRoundOperator(task_id="dispatch", selected=selected, predictions=predicted,
                                       readers_per_item=len(READERS), deadline_hours=1).execute({})
    assert dispatched["suggested"] == N_ITEMS
    truth = _truth(selected["items"], set(w.series[::2]))
    assert [_read(w.service, w.project_id, r, truth) for r in READERS] == [N_ITEMS] * len(READERS)
    with httpx.Client(base_url=w.service.url, headers=w.service.people["admin"], timeout=30) as c:
        export = ok(c.get(f"/api/projects/{w.project_id}/export/json"))
    assert export["project"]["blind_first"] is True and export["project"]["kind"] == "validation"

    schema = load_schema("chest_findings_v1")
    tables = export_tables(export, schema.regions)
    keys = {i["item_key"]: i["series_id"] for i in selected["items"]}
    probabilities, proposals = prediction_tables(w.catalog, open_store(w.home / "store"), keys, predicted["model"])
    reference_boxes = box_consensus(tables.boxes)[["item", "label", "x0", "y0", "x1", "y1"]]
    report = validation_report(probabilities, tables.readings, model=predicted["model"], proposals=proposals,
                               reference_boxes=reference_boxes, assisted=tables.assisted,
                               suggestions=tables.suggestions, config=ValidationConfig(n_boot=200))

    # directly from the export: the readers' majority per item and label, the model's probabilities
    votes: dict[tuple[str, str], list[int]] = {}
    unaided_right = aided_right = total = 0
    actions: dict[str, dict[str, int]] = {}
    for r in export["readings"]:
        item = r["item"]["external_id"]
        for lv in r["labels"]:
            votes.setdefault((item, lv["label"]), []).append(int(lv["value"]))
    majority = {k: int(sum(v) > len(v) - sum(v)) for k, v in votes.items()}
    for r in export["readings"]:
        item = r["item"]["external_id"]
        final = {lv["label"]: int(lv["value"]) for lv in r["labels"]}
        for lv in r["assist"]["unaided"]:
            total += 1
            unaided_right += int(lv["value"]) == majority[item, lv["label"]]
            aided_right += final[lv["label"]] == majority[item, lv["label"]]
        for s in r["assist"]["suggestions"]:
            if s.get("box_index") is not None:
                actions.setdefault(s["label"], {}).setdefault(s["action"], 0)
                actions[s["label"]][s["action"]] += 1
    model_p = {(row.item, row.label): row.probability for row in probabilities.itertuples()}
    for label in ("opacity", "nodule"):
        pairs = sorted(k for k in model_p if k[1] == label)
        y = [majority[k] for k in pairs]
        p = [model_p[k] for k in pairs]
        tn, fp, fn, tp = confusion_matrix(y, [int(x >= 0.5) for x in p], labels=[0, 1]).ravel()
        got = report["per_label"][label]
        assert (got["tp"], got["fp"], got["fn"], got["tn"]) == (tp, fp, fn, tn), label
        if 0 < sum(y) < len(y):
            assert got["auc"] == pytest.approx(roc_auc_score(y, p)), label
    assert report["per_label"]["nodule"]["auc"] > 0.9, "the planted spots are what readers and model see"
    assert "effusion" not in report["per_label"], "the model gives no effusion probability"
    aided = report["aided"]
    assert aided["readings"] == total == N_ITEMS * len(READERS) * 3
    assert aided["unaided_accuracy"] == pytest.approx(unaided_right / total)
    assert aided["aided_accuracy"] == pytest.approx(aided_right / total)
    assert sum(sum(v.values()) for v in report["suggestions"].values()) == len(tables.suggestions)
    by_box = tables.suggestions[tables.suggestions["box_index"].notna()]
    assert {k: dict(g["action"].value_counts()) for k, g in by_box.groupby("label")} == actions
    nodule = report["froc"]["nodule"]
    assert nodule["lesions"] == len(reference_boxes) and nodule["proposals"] == len(proposals)
    assert nodule["lesions"] >= N_ITEMS // 2 - 1 and nodule["mean_sensitivity"] > 0.5
