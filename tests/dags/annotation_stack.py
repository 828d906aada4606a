"""The annotation service of the production stack (docker-compose.yaml's `annotation`), started natively:
`curate annotation serve` on a fresh PostgreSQL database, reading the pipeline's S3 store (its deid and
derived zones only), with the projects, readers and pipeline token of tests/operators/world.py. Then what
the production-stack test checks once annotation_round dispatched curated series to it: the items are
rows of the service's PostgreSQL database, a reader is served their frames from the store's deid zone
with no identifying value of the site's ground truth, and a raw-zone URI is refused."""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pydicom

from tests.annotation.test_phi import Leaks
from tests.fixtures.s3 import S3Server
from tests.operators.world import LABELS_PROJECT, READERS, ServiceWorld, findings_answer, ok, start_world

#: annotation_round's form for the stack: the service's labels project, one reader per item, no findings
#: model (its suggestions are tested in tests/ai), the trigger polling every second, no bootstrap. The
#: selection takes the site's two approved series with identifying text burned into their pixels (the
#: secondary capture and the ultrasound; the radiograph is excluded by quality), so a served frame shows
#: whether the pixels were de-identified too.
ROUND_CONF = {"project": LABELS_PROJECT, "series_kinds": ["SC", "US"], "body_parts": ["HEAD", "ABDOMEN"],
              "model": "", "readers_per_item": 1, "deadline_hours": 1, "poll_seconds": 1, "bootstrap_resamples": 0}
#: Where the secondary capture lies in the synthetic site (its raw object probes the service and the PHI check).
SECONDARY_CAPTURE = "S0001/SE0099/"
#: How the round's tasks end: no model, so predict is skipped; no quality-review project, so that branch is.
ROUND_STATES = {**dict.fromkeys(("select", "dispatch", "wait", "collect", "analyse"), "success"),
                **dict.fromkeys(("predict", "select_quality_review"), "skipped")}


def start_service(folder: Path, database_url: str, s3_server: S3Server, store_uri: str) -> ServiceWorld:
    """The service as docker-compose.yaml configures it: its own database, items only from `store_uri`'s
    deid/derived zones, the S3 server's endpoint and credentials (AWS_* as boto3 reads them)."""
    env = {k: v for k, v in s3_server.env().items() if k.startswith("AWS_")}
    env.update(ANNOTATION_STORE_URI=store_uri, AWS_ENDPOINT_URL=s3_server.endpoint_url)
    return start_world(folder, database_url=database_url, env=env)


def phi_leaks(synthetic_site: Path) -> Leaks:
    """A detector of every identifying value of the synthetic site's patients (its ground truth)."""
    truth = json.loads((synthetic_site / "ground_truth.json").read_text())
    return Leaks([v for p in truth["patients"]
                  for v in (*p["phi_values"], p["patient_name"], p["patient_id"], p["address"], p["phone"])])


def service_items(database_url: str, project_id: int) -> dict[str, list[str]]:
    """The project's items as rows of the service's own database: external id -> its instances' URIs."""
    import psycopg

    with psycopg.connect(database_url.replace("+psycopg", "")) as db:
        rows = db.execute("select i.external_id, n.uri from item i join instance n on n.item_id = i.id "
                          "where i.project_id = %s order by i.id, n.position", (project_id,)).fetchall()
    items: dict[str, list[str]] = {}
    for external_id, uri in rows:
        items.setdefault(external_id, []).append(uri)
    return items


def raw_keys(catalog_url: str, *, deid_key: str | None = None, path_part: str | None = None) -> list[str]:
    """Raw-zone keys of a series' instances: the series whose de-identification wrote `deid_key` (an item's
    object), or whose files' paths contain `path_part`."""
    from sqlalchemy import select

    from curation.catalog import Catalog, Instance, StageRecord

    query = select(Instance.raw_key).order_by(Instance.id)
    with Catalog(catalog_url).session() as s:
        if deid_key is not None:
            series = [r.subject_id for r in s.scalars(select(StageRecord).where(
                StageRecord.stage == "deid", StageRecord.subject_type == "series"))
                if deid_key in ((r.metrics or {}).get("outputs") or [])]
            query = query.where(Instance.series_id.in_(series))
        if path_part is not None:
            query = query.where(Instance.source_path.like(f"%{path_part}%"))
        return [k for k in s.scalars(query) if k]


def _first_frame(data: bytes) -> np.ndarray:
    ds = pydicom.dcmread(io.BytesIO(data))
    return ds.pixel_array[0] if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1 else ds.pixel_array


def read_round(world: ServiceWorld, store: Any, store_uri: str, catalog_url: str, leaks: Leaks) -> int:
    """READERS[0] reads the labels project's queue through the REST API as the viewer does: each task's
    item, the first frame and the DICOM object of each instance. A frame must equal the pixels of the
    de-identified object the item's URI names in the S3 store (so it came from there) and differ from
    every raw object of the series (whose burned-in text the pipeline masked), and no response may carry
    an identifying value. Returns the number of readings submitted."""
    deid_prefix = f"{store_uri.rstrip('/')}/deid/"
    uris = service_items(world.server.database_url, world.projects[LABELS_PROJECT])
    n = 0
    with httpx.Client(base_url=world.url, headers=world.people[READERS[0]], timeout=60) as c:
        while (task := ok(c.post(f"/api/tasks/next?project_id={world.projects[LABELS_PROJECT]}"))["task"]):
            item = task["item"]
            leaks.text(f"item {item['id']}", json.dumps(task))
            for inst in item["instances"]:
                uri = uris[item["external_id"]][inst["position"]]
                assert uri.startswith(deid_prefix), f"item {item['external_id']} points outside the deid zone"
                raw = [_first_frame(store.get_bytes("raw", k))
                       for k in raw_keys(catalog_url, deid_key=uri[len(deid_prefix):])]
                assert raw, f"item {item['external_id']}: no raw object of its series in the catalog"
                base = f"/api/items/{item['id']}/instances/{inst['position']}"
                frame = c.get(f"{base}/frames/0")
                assert frame.status_code == 200, f"{base}/frames/0: {frame.status_code} {frame.text[:300]}"
                leaks.response(f"{base}/frames/0", frame)
                shape = (int(frame.headers["x-rows"]), int(frame.headers["x-columns"]))
                samples = int(frame.headers["x-samples-per-pixel"])
                pixels = np.frombuffer(frame.content, dtype=frame.headers["x-dtype"]).reshape(
                    shape + ((samples,) if samples > 1 else ()))
                deid = _first_frame(store.get_bytes("deid", uri[len(deid_prefix):]))
                assert np.array_equal(pixels, deid), f"{base}/frames/0 differs from the stored deid object"
                assert not any(np.array_equal(pixels, r) for r in raw), f"{base}/frames/0 is a raw object's"
                dicom = c.get(f"{base}/file")
                assert dicom.status_code == 200, f"{base}/file: {dicom.status_code} {dicom.text[:300]}"
                leaks.response(f"{base}/file", dicom)
            ok(c.post(f"/api/tasks/{task['id']}/submit", json=findings_answer(positive=False)))
            n += 1
    return n


def raw_uri_refused(world: ServiceWorld, raw_uri: str) -> httpx.Response:
    """The pipeline token registers an item pointing at a raw-zone object of the store: the answer."""
    pipeline = {"Authorization": f"Bearer {world.token}"}
    body = {"items": [{"external_id": "raw-probe", "uris": [raw_uri]}]}
    with httpx.Client(base_url=world.url, timeout=60) as c:
        return c.post(f"/api/projects/{world.projects[LABELS_PROJECT]}/items", headers=pipeline, json=body)
