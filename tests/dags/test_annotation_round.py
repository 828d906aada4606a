"""The annotation_round DAG: its shape (tasks and their order, described Params, scheduled on the
curated_series asset, emits annotations), and a whole run under Airflow's dag.test() against a real
annotation service process, where people read through the REST API in threads while the wait is
deferred to the trigger: labels round and quality-review round, written to the catalog, the
annotations asset event with the round's counts and kappa."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from pathlib import Path

from sqlalchemy import select

from tests.dags.test_curate_source_run import RUN as CURATE_SOURCE_RUN
from tests.operators.world import (
    LABELS_PROJECT, READERS, REVIEW_PROJECT, REVIEWER, Readers, curated_catalog, exclude_answer, findings_answer,
    start_world,
)

from tests.dags.shape import dag_shape

REPO = Path(__file__).resolve().parents[2]
DAG_FILE = REPO / "dags" / "annotation_round.py"

# curate_source's run script (load the file, dag.test(), print the state and the task instances), then
# the asset events the run emitted
RUN = CURATE_SOURCE_RUN + r"""
from airflow.models.asset import AssetEvent, AssetModel
with create_session() as s:
    for event, name in s.query(AssetEvent, AssetModel.name).join(AssetModel, AssetModel.id == AssetEvent.asset_id):
        print("ASSET " + json.dumps({"name": name, "extra": event.extra}))
"""


def test_dag_shape_params_and_schedule(airflow_env):
    shape = dag_shape(DAG_FILE, airflow_env,
                      {"wait_timeout_h": 'd.get_task("wait").execution_timeout.total_seconds() / 3600'})
    assert shape["tasks"] == {
        "select": ["dispatch", "predict"], "predict": ["dispatch"], "dispatch": ["wait"], "wait": ["collect"], "collect": ["analyse"], "analyse": [],
        "select_quality_review": ["dispatch_quality_review"], "dispatch_quality_review": ["wait_quality_review"],
        "wait_quality_review": ["collect_quality_review"], "collect_quality_review": ["apply_quality_review"],
        "apply_quality_review": []}
    assert shape["classes"]["wait"] == shape["classes"]["wait_quality_review"] == "WaitForRoundOperator"
    assert shape["classes"]["predict"] == "PredictOperator"
    assert shape["outlets"] == {"analyse": ["annotations"], "apply_quality_review": ["annotations"]}
    assert "curated_series" in shape["schedule"]
    params = shape["params"]
    assert {"project", "label_schema", "series_kinds", "quality_decisions", "modalities", "body_parts", "sample_size",
            "seed", "exclude_read", "readers_per_item", "gold_share", "deadline_hours",
            "review_project", "model"} <= set(params)
    assert params["model"]["default"] == "chest"
    assert all(p["description"] for p in params.values())
    assert params["label_schema"]["default"] == "chest_findings_v1"
    assert params["quality_decisions"]["default"] == ["approve"]
    assert shape["wait_timeout_h"] > 24 * 30, "the wait outlives the longest deadline the form accepts"


def test_a_whole_round_under_dag_test_with_people_reading(tmp_path, airflow_env):
    home = tmp_path / "curate"
    catalog, labels, review = curated_catalog(home, n_labels=3, n_review=1)
    world = start_world(tmp_path / "service")
    # readers disagree on odd items, so agreement has something to measure
    answer = lambda task: findings_answer(positive=task["item"]["id"] % 2 == 0)  # noqa: E731
    people = {world.projects[LABELS_PROJECT]: Readers(world, LABELS_PROJECT, READERS, answer),
              world.projects[REVIEW_PROJECT]: Readers(world, REVIEW_PROJECT, (REVIEWER,), exclude_answer())}
    env = dict(airflow_env, CURATE_HOME=str(home), AIRFLOW_CONN_CURATE_ANNOTATION=world.connection())
    conf = {"project": LABELS_PROJECT, "review_project": REVIEW_PROJECT, "readers_per_item": 3,
            "deadline_hours": 1, "poll_seconds": 1, "bootstrap_resamples": 0}
    proc = subprocess.Popen([sys.executable, "-c", RUN, str(DAG_FILE), json.dumps(conf)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    watchdog = threading.Timer(400, proc.kill)
    watchdog.start()
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            # people start reading a round only once its wait has deferred: no worker slot while they read
            deferred = re.search(r"deferring until round \d+ of project (\d+)", line)
            if deferred:
                people[int(deferred.group(1))].start()
        proc.wait()
    finally:
        watchdog.cancel()
        for p in people.values():
            p.stop.set()
            if p.is_alive():
                p.join(timeout=30)
        world.server.stop()
    log = "".join(lines)
    assert proc.returncode == 0, log[-5000:]
    people = list(people.values())
    print("\n".join(l for l in log.splitlines() if l.startswith(("TI ", "ASSET "))))
    assert "STATE success" in log, log[-5000:]
    assert not any(p.errors for p in people), [p.errors for p in people]
    assert people[0].read == 9 and people[1].read == 1
    for task in ("select", "dispatch", "wait", "collect", "analyse", "select_quality_review",
                 "dispatch_quality_review", "wait_quality_review", "collect_quality_review", "apply_quality_review"):
        assert f"TI {task} -1 success" in log, task
    assert log.count("[DAG TEST] running trigger in line") == 2, "both waits deferred to the trigger"
    events = [json.loads(l[6:]) for l in log.splitlines() if l.startswith("ASSET ")]
    extras = {e["extra"]["kind"]: e["extra"] for e in events if e["name"] == "annotations"}
    assert extras["labels"]["items"] == 3 and extras["labels"]["readers"] == 3 and extras["labels"]["answers"] == 27
    assert extras["labels"]["outcome"] == "complete" and extras["labels"]["partial"] is False
    assert "fleiss_kappa" in extras["labels"] and extras["labels"]["round_id"]
    assert extras["quality_review"]["by_decision"] == {"exclude": 1}

    from curation.catalog.models import AnnotationRound, ConsensusLabel, ReaderReport
    from curation.pipeline.select import final_quality_decision

    with catalog.session() as s:
        rounds = {r.kind: r for r in s.scalars(select(AnnotationRound))}
        assert rounds["labels"].state == rounds["quality_review"].state == "analysed"
        reports = list(s.scalars(select(ReaderReport).where(ReaderReport.round_id == rounds["labels"].id)))
        assert len(reports) == 3 and all(r.reader.startswith("rdr-") for r in reports)
        assert not {r.reader for r in reports} & set(READERS), "readers are pseudonymous in the catalog"
        assert s.scalars(select(ConsensusLabel).where(ConsensusLabel.round_id == rounds["labels"].id)).first()
    final = final_quality_decision(catalog, review[0])
    assert (final.decision, final.source) == ("exclude", "human") and final.reviewers and final.decided_at
    catalog.dispose()
