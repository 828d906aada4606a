"""Quality-review projects: the item is a whole series with the model's decision, reason and metrics
beside it; readers approve, exclude or quarantine (a reason required for the last two); the export
gives each decision with who and when. Also: items only from the deid or derived zone."""
from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pytest

from annotation.zones import ZoneError, check_segments
from tests.annotation import dicomgen
from tests.annotation.conftest import make_client, series_uris
from tests.annotation.world import build_world, ok

MODEL = {"decision": "review", "score": 0.42, "reason": "motion ghosting along the phase-encoding axis",
         "model": "quality-v1", "metrics": {"efc": 0.61, "snr": 8.2, "qi1": 0.003}}


def test_quality_review_decisions_with_reason_and_export(tmp_path: Path, store_root: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    with make_client(url) as client:
        w = build_world(client, url, store_root, readers=1, verification=0, n_items=1)
        admin = w.h("admin")
        qr = ok(client.post("/api/projects", headers=admin, json={"name": "quality-review", "kind": "quality_review",
                                                                  "readers_per_item": 2}), 201)
        assert qr["kind"] == "quality_review"
        for name in ("junior", "senior"):
            ok(client.post(f"/api/projects/{qr['id']}/members", headers=admin,
                           json={"user_id": w.users[name], "role": "annotator", "level": name}), 201)
        token = ok(client.post("/api/service-tokens", headers=admin, json={"name": "qr", "projects": [qr["id"]]}), 201)
        pipeline = {"Authorization": f"Bearer {token['token']}"}
        rnd = ok(client.post(f"/api/projects/{qr['id']}/rounds", headers=pipeline, json={
            "name": "review-1", "items": [{"external_id": "series-1.2.3", "uris": series_uris(store_root, 1),
                                           "modality": "MR", "context": {"quality": MODEL}}]}), 201)
        assert rnd["created"]
        # an unknown key inside the model's context is refused like any other identifying field
        bad = client.post(f"/api/projects/{qr['id']}/items", headers=pipeline, json={"items": [
            {"external_id": "s2", "uris": series_uris(store_root, 2), "context": {"quality": {**MODEL, "PatientName": "x"}}}]})
        assert bad.status_code == 422

        def take(who: str) -> dict:
            return ok(client.post(f"/api/tasks/next?project_id={qr['id']}", headers=w.h(who)))["task"]

        t = take("junior")
        assert t["project_kind"] == "quality_review" and len(t["item"]["instances"]) == 3  # the whole series
        assert t["item"]["context"]["quality"] == MODEL  # the reader sees the model's reason and metrics
        submit = lambda who, task, body: client.post(f"/api/tasks/{task['id']}/submit", headers=w.h(who), json=body)  # noqa: E731
        assert submit("junior", t, {}).status_code == 422  # a decision is required
        assert submit("junior", t, {"quality": {"decision": "exclude"}}).status_code == 422  # exclude needs a reason
        assert submit("junior", t, {"quality": {"decision": "quarantine", "reason": "  "}}).status_code == 422
        assert submit("junior", t, {"quality": {"decision": "keep"}}).status_code == 422
        ok(submit("junior", t, {"quality": {"decision": "exclude", "reason": "ghosting over the whole brain"}}))
        t2 = take("senior")
        ok(submit("senior", t2, {"quality": {"decision": "approve"}}))  # approve needs no reason

        out = ok(client.get(f"/api/projects/{qr['id']}/export/quality", headers=pipeline))
        got = {(d["reader"], d["decision"], d["reason"]) for d in out["decisions"]}
        assert got == {("junior", "exclude", "ghosting over the whole brain"), ("senior", "approve", "")}
        assert all(d["decided_at"] and d["external_id"] == "series-1.2.3" and d["model"]["reason"] == MODEL["reason"]
                   for d in out["decisions"])
        rows = list(csv.DictReader(io.StringIO(client.get(f"/api/projects/{qr['id']}/export/csv", headers=pipeline).text)))
        assert {(r["annotator"], r["record"], r["quality_decision"]) for r in rows} == {
            ("junior", "quality", "exclude"), ("senior", "quality", "approve")}
        status = ok(client.get(f"/api/projects/{qr['id']}/rounds/{rnd['round']['number']}", headers=pipeline))
        assert status["state"] == "complete"

        # a labels project takes no quality decision
        t3 = ok(client.post(f"/api/tasks/next?project_id={w.project_id}", headers=w.h("junior")))["task"]
        r = client.post(f"/api/tasks/{t3['id']}/submit", headers=w.h("junior"),
                        json={"labels": [{"label": "nodule", "value": True, "confidence": 80}],
                              "quality": {"decision": "approve"}})
        assert r.status_code == 422


def test_items_only_from_the_deid_or_derived_zone(tmp_path: Path, store_root: Path) -> None:
    store = tmp_path / "store"
    derived = dicomgen.write_series(store / "derived" / "mc1", 1)
    elsewhere = store / "incoming" / "x.dcm"
    elsewhere.parent.mkdir(parents=True)
    shutil.copy(derived[0], elsewhere)
    vault = store / "vault" / "x.dcm"
    vault.parent.mkdir(parents=True)
    shutil.copy(derived[0], vault)
    url = f"sqlite:///{tmp_path / 'z.db'}"
    with make_client(url) as client:
        w = build_world(client, url, store_root, readers=1, verification=0, n_items=1)
        reg = lambda uri: client.post(f"/api/projects/{w.project_id}/items", headers=w.h("data_owner"),  # noqa: E731
                                      json={"items": [{"external_id": f"z{abs(hash(uri)) % 10**6}", "uris": [uri]}]})
        assert reg(derived[0].as_uri()).status_code == 201
        r = reg(elsewhere.as_uri())
        assert r.status_code == 422 and "de-identified or derived" in r.text
        r = reg(vault.as_uri())
        assert r.status_code == 422 and "raw zone and the vault" in r.text
        r = reg((store_root / "raw" / "seriesR" / "0000.dcm").as_uri())
        assert r.status_code == 422 and "raw zone" in r.text
    # the same rule on S3 keys (s3://bucket/prefix/<zone>/<key>)
    check_segments(["site-a", "deid", "ab", "x.dcm"])
    for key in (["site-a", "raw", "deid", "x.dcm"], ["site-a", "releases", "x.dcm"]):
        with pytest.raises(ZoneError):
            check_segments(key)
