"""The release_dataset DAG: its shape (select -> build -> verify -> approval gate -> owner_approval ->
publish, described Params, scheduled on the annotations asset, emits dataset_release), whole runs
under Airflow's dag.test() over a small curated catalog and deid zone (tests/release/world.py, the
platform de-identifier's output): without approval it publishes 1.0.0, whose DICOM pass the content
checks, and emits the asset event with the manifest hash; asking for 1.0.0 again is refused with the
store unchanged; a selection holding a raw-zone object fails at verify, named; with approval the run waits in Required Actions
until a data owner approves over Airflow's REST API (HITL endpoint), then publishes."""
from __future__ import annotations

import json
import subprocess
from collections import Counter
import sys
from pathlib import Path

from sqlalchemy import select

from curation.catalog import Catalog, Instance, verify_chain
from curation.catalog.models import LineageEvent
from curation.release.build import FORMAT_DICOM, FORMATS
from curation.release.layout import StoreTree, published_versions, release_prefix
from curation.release.manifest import Manifest
from curation.release.splits import DEFAULT_RATIOS
from curation.release.verify import verify_tree
from curation.release.version import BUMPS
from curation.store import LocalStore
from curation.vocabulary import QualityDecision, SeriesKind, Zone
from tests.dags.shape import dag_shape
from tests.release.world import add_round, add_series, deidentified

REPO = Path(__file__).resolve().parents[2]
DAG_FILE = REPO / "dags" / "release_dataset.py"

# dag.test() once per conf; after each run its state, task instances, the asset events so far and a
# digest of every file in the releases zone
RUN = r"""
import hashlib, importlib.util, json, sys
from pathlib import Path
spec = importlib.util.spec_from_file_location("d", sys.argv[1])
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
from airflow.models import TaskInstance
from airflow.models.asset import AssetEvent, AssetModel
from airflow.utils.session import create_session
from operators.alerts import foreground_test
zone = Path(sys.argv[3])
for i, conf in enumerate(json.loads(sys.argv[2])):
    run = foreground_test(m.dag, run_conf=conf)
    print(f"STATE {i} {run.state}")
    with create_session() as s:
        for ti in s.query(TaskInstance).filter(TaskInstance.run_id == run.run_id):
            print(f"TI {i} {ti.task_id} {ti.state}")
        for event, name in s.query(AssetEvent, AssetModel.name).join(AssetModel, AssetModel.id == AssetEvent.asset_id):
            print(f"ASSET {i} " + json.dumps({"name": name, "extra": event.extra}))
    files = sorted(p for p in zone.rglob("*") if p.is_file()) if zone.exists() else []
    digest = hashlib.sha256(b"".join(str(p).encode() + hashlib.sha256(p.read_bytes()).digest() for p in files))
    print(f"ZONE {i} {len(files)} {digest.hexdigest()}", flush=True)
"""

# a data owner: waits until the run's approval task is parked in Required Actions (nothing published
# yet), then approves over Airflow's REST API (PATCH .../taskInstances/owner_approval/-1/hitlDetails),
# in-process against the run's metadata DB; started beside the run so that its imports overlap the run's
ANSWER = r"""
import json, sys, time
from pathlib import Path
from fastapi.testclient import TestClient
from airflow.api_fastapi.app import create_app
from airflow.models import TaskInstance
from airflow.utils.session import create_session
client = TestClient(create_app("core"))
deadline = time.monotonic() + 180
while True:
    with create_session() as s:
        ti = s.query(TaskInstance).filter_by(dag_id="release_dataset", task_id="owner_approval",
                                             state="awaiting_input").first()
        state, run_id = (str(ti.state), ti.run_id) if ti else (None, None)
    if ti is not None or time.monotonic() > deadline:
        break
    time.sleep(0.5)
published = (Path(sys.argv[1]) / sys.argv[2] / "1.0.0" / "manifest.json").exists()
print("WAITING " + json.dumps({"state": state, "run_id": run_id, "published": published}), flush=True)
url = f"/api/v2/dags/release_dataset/dagRuns/{run_id}/taskInstances/owner_approval/-1/hitlDetails"
print("PENDING " + json.dumps(client.get(url).json()))
answer = client.patch(url, json={"chosen_options": [sys.argv[3]], "params_input": {}})
print("ANSWER " + str(answer.status_code) + " " + answer.text)
"""


def _world(home: Path) -> tuple[Catalog, LocalStore]:
    """A curated catalog (CURATE_HOME's default catalog and store): three approved CR series whose
    deid zone holds the platform de-identifier's output of raw DX with a patient's identity, read in a
    labels round; one excluded series that no release may hold; and one approved DX series whose
    "de-identified" copy is its raw object, which the verify step must stop."""
    home.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(f"sqlite:///{home / 'catalog.sqlite'}")
    store = LocalStore(home / "store", fsync=False)
    a = add_series(catalog, store, 1, patient="ANON01")
    b = add_series(catalog, store, 2, patient="ANON02")
    c = add_series(catalog, store, 3, patient="ANON01", files=3)
    for series_id, name, files in ((a, "Doe^Jane", 2), (b, "Roe^Rick", 2), (c, "Poe^Pat", 3)):
        deidentified(catalog, store, series_id, name, files)
    add_series(catalog, store, 4, patient="ANON03", decision=QualityDecision.EXCLUDE)
    leak = add_series(catalog, store, 5, patient="ANON04", kind=SeriesKind.DX, files=1)
    (image,) = deidentified(catalog, store, leak, "Leak^Lee", 1)
    with catalog.session() as s:
        raw_key = s.query(Instance).filter_by(series_id=leak).one().raw_key
    store.put_bytes(Zone.DEID, image.removeprefix("images/"), store.get_bytes(Zone.RAW, raw_key))
    add_round(catalog, [a, b, c], {a: 1, b: 0, c: 1})
    return catalog, store


def _lines(log: str, tag: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith(tag + " ")]


def test_dag_shape_params_and_schedule(airflow_env):
    shape = dag_shape(DAG_FILE, airflow_env, {
        "bumps": 'd.params.get_param("bump").schema["enum"]',
        "formats": 'd.params.get_param("formats").schema["items"]["enum"]',
        "approval_mro": '[c.__name__ for c in type(d.get_task("owner_approval")).__mro__]'}, timeout=120)
    assert shape["tasks"] == {"select": ["build"], "build": ["verify"], "verify": ["approval_required", "owner_approval", "publish"],
                              "approval_required": ["owner_approval", "publish"], "owner_approval": ["publish"],
                              "publish": []}
    assert "ApprovalOperator" in shape["approval_mro"], "the data owner answers Airflow's HITL ApprovalOperator"
    assert shape["outlets"] == {"publish": ["dataset_release"]}
    assert "annotations" in shape["schedule"]
    params = shape["params"]
    assert set(params) == {"name", "bump", "version", "kinds", "decisions", "rounds", "sites", "split_ratios",
                           "split_seed", "formats", "require_approval"}
    assert all(p["description"] for p in params.values())
    assert params["require_approval"]["default"] is True
    assert params["decisions"]["default"] == ["approve"] and params["bump"]["default"] == "minor"
    # the form offers what the library takes (spelled in the DAG: the library is not imported at parse time)
    assert params["split_ratios"]["default"] == dict(DEFAULT_RATIOS)
    assert shape["bumps"] == list(BUMPS)
    assert shape["formats"] == list(FORMATS) and params["formats"]["default"] == [FORMAT_DICOM]
    assert params["sites"]["default"] == []


def test_publish_without_approval_then_the_same_version_is_refused_and_a_raw_object_stops_verify(
        tmp_path, airflow_env):
    home = tmp_path / "curate"
    catalog, store = _world(home)
    env = dict(airflow_env, CURATE_HOME=str(home))
    confs = [{"name": "chest", "kinds": ["CR"], "sites": ["default"], "formats": ["dicom"], "require_approval": False,
              "split_ratios": {"train": 0.5, "test": 0.5}},
             {"name": "chest", "version": "1.0.0", "require_approval": False},
             {"name": "chest-leak", "kinds": ["DX"], "require_approval": False}]
    zone = str(home / "store" / "releases")
    res = subprocess.run([sys.executable, "-c", RUN, str(DAG_FILE), json.dumps(confs), zone], env=env,
                         capture_output=True, text=True, timeout=400)
    log = res.stdout + res.stderr
    print("\n".join(_lines(log, "TI") + _lines(log, "ZONE")))
    assert res.returncode == 0, log[-5000:]
    assert "STATE 0 success" in log, log[-5000:]
    for task, state in (("select", "success"), ("build", "success"), ("verify", "success"),
                        ("approval_required", "success"), ("owner_approval", "skipped"), ("publish", "success")):
        assert f"TI 0 {task} {state}" in log, (task, log[-5000:])
    assert [str(v) for v in published_versions(store, "chest")] == ["1.0.0"]
    report = verify_tree(StoreTree(store, release_prefix("chest", "1.0.0")), checksums_only=False)
    assert report.ok, report.problems
    roles = Counter(e.role for e in Manifest.from_bytes(store.get_bytes(
        Zone.RELEASES, release_prefix("chest", "1.0.0") + "manifest.json")).entries)
    assert (roles["image"], roles["label"]) == (2 + 2 + 3, 3), roles  # an SR per labelled series
    assert report.files_checked == sum(roles.values())
    # the session's metadata DB is shared with other DAG tests: this release's events are those naming chest
    events = [[e for l in _lines(log, "ASSET") if l.startswith(f"ASSET {i} ")
               for e in [json.loads(l.split(" ", 2)[2])]
               if e["name"] == "dataset_release" and e["extra"].get("name") == "chest"] for i in (0, 1)]
    (event,) = events[0]
    extra = event["extra"]
    assert event["name"] == "dataset_release"
    assert (extra["name"], extra["version"], extra["manifest_sha256"]) == ("chest", "1.0.0", report.manifest_sha256)
    assert extra["counts"]["series"] == 3 and extra["counts"]["patients"] == 3
    assert extra["approval"] == {"required": False}
    provenance = json.loads(store.get_bytes("releases", "chest/1.0.0/provenance.json"))
    assert provenance["splits"]["ratios"] == [["train", 0.5], ["test", 0.5]]

    # the same version again: refused at select, before anything is written; no retry, no new event
    assert "STATE 1 failed" in log, log[-5000:]
    assert "TI 1 select failed" in log and "TI 1 publish success" not in log
    assert "already published" in log
    zones = [l.split()[2:] for l in _lines(log, "ZONE")]
    assert zones[0] == zones[1], "the refused run changed the releases zone"
    assert events[1] == events[0], "the refused run emitted no asset event"

    # a raw-zone object among the selected series: verify fails naming it; nothing is published
    assert "STATE 2 failed" in log and "TI 2 verify failed" in log, log[-5000:]
    assert "TI 2 publish success" not in log and published_versions(store, "chest-leak") == []
    assert "failed verification" in log and "is a raw-zone object" in log

    with catalog.session() as s:
        ledger = [(e.subject, e.action, e.details) for e in s.scalars(
            select(LineageEvent).where(LineageEvent.stage == "release").order_by(LineageEvent.id))]
    assert [a for subject, a, _ in ledger if subject == "release:chest@1.0.0"] == \
        ["select", "build", "verify", "approval", "publish"]
    (selected,) = [d for subject, a, d in ledger if subject == "release:chest@1.0.0" and a == "select"]
    assert (selected["selection"]["sites"], selected["selection"]["formats"]) == (["default"], ["dicom"])
    (leak,) = [d for subject, a, d in ledger if subject == "release:chest-leak@1.0.0" and a == "verify"]
    assert leak["ok"] is False and any(p.startswith("raw: images/") for p in leak["problems"]), leak
    assert verify_chain(catalog).ok
    catalog.dispose()


def _run_answered(tmp_path: Path, airflow_env: dict[str, str], name: str, choice: str):
    """A run that asks for approval, and a data owner who answers `choice` once it waits."""
    home = tmp_path / "curate"
    catalog, store = _world(home)
    env = dict(airflow_env, CURATE_HOME=str(home), AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True")
    zone = str(home / "store" / "releases")
    owner = subprocess.Popen([sys.executable, "-c", ANSWER, zone, name, choice], env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        res = subprocess.run([sys.executable, "-c", RUN, str(DAG_FILE),
                              json.dumps([{"name": name, "kinds": ["CR"], "require_approval": True}]), zone],
                             env=env, capture_output=True, text=True, timeout=240)
        answer_log = owner.communicate(timeout=60)[0]
    finally:
        if owner.poll() is None:
            owner.kill()
    log = res.stdout + res.stderr
    assert owner.returncode == 0, answer_log[-4000:]
    waiting = json.loads(_lines(answer_log, "WAITING")[0][8:])
    assert waiting == {"state": "awaiting_input", "run_id": waiting["run_id"], "published": False}, waiting
    assert "Waiting for Human-in-the-loop input for tasks: ['owner_approval']" in log
    pending = json.loads(_lines(answer_log, "PENDING")[0][8:])
    assert f"{name}@1.0.0" in pending["subject"] and pending["options"] == ["Approve", "Reject"]
    assert _lines(answer_log, "ANSWER")[0].startswith("ANSWER 200"), answer_log[-3000:]
    assert res.returncode == 0, log[-5000:]
    assert "STATE 0 success" in log, log[-5000:]
    with catalog.session() as s:
        events = {e.action: e.details for e in s.scalars(select(LineageEvent).where(LineageEvent.stage == "release"))}
    catalog.dispose()
    return log, store, events


def test_with_approval_the_run_waits_for_a_data_owner(tmp_path, airflow_env):
    name = "chest-approved"  # not the other tests' release names: the metadata DB is shared
    log, store, events = _run_answered(tmp_path, airflow_env, name, "Approve")
    assert "TI 0 owner_approval success" in log and "TI 0 publish success" in log
    assert [str(v) for v in published_versions(store, name)] == ["1.0.0"]
    assert events["approval"]["required"] is True and events["approval"]["chosen"] == ["Approve"]
    assert events["approval"]["by"], "the ledger names who approved"
    assert "publish" in events


def test_a_rejected_release_stays_unpublished(tmp_path, airflow_env):
    name = "chest-rejected"
    log, store, events = _run_answered(tmp_path, airflow_env, name, "Reject")
    assert "TI 0 owner_approval success" in log and "TI 0 publish skipped" in log
    assert published_versions(store, name) == []
    assert store.exists("releases", f"{name}/.staging-1.0.0/manifest.json"), "the build waits in staging"
    assert events.get("approval", {}).get("chosen") == ["Reject"] and "publish" not in events, log[-6000:]
