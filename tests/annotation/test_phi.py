"""No identifying value of the synthetic site's ground truth appears in any response, export or
log of the service, when it is given de-identified items (and identifying context it must refuse)."""
from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import httpx
import pydicom
import pytest

from synth import generate_site
from deid.engine import Deidentifier
from tests.annotation.world import PASSWORD, ok

pytestmark = [pytest.mark.server, pytest.mark.slow]
SCHEMA = {"labels": [{"id": "finding", "name": "Finding", "kind": "boolean"},
                     {"id": "box", "name": "Box", "kind": "box"}, {"id": "outline", "name": "Outline", "kind": "freehand"}]}


class Leaks:
    """Exact tokens (dates, times, IDs, UIDs) and names (case-insensitive, word-bounded)."""

    def __init__(self, values: list[str]) -> None:
        vals = sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)
        self.pattern = re.compile(r"(?<![A-Za-z0-9])(?:" + "|".join(re.escape(v) for v in vals) + r")(?![A-Za-z0-9])",
                                  re.IGNORECASE)
        self.found: list[tuple[str, str]] = []

    def text(self, where: str, text: str) -> None:
        for m in self.pattern.finditer(text):
            self.found.append((where, m.group(0)))

    def dicom(self, where: str, data: bytes) -> None:
        ds = pydicom.dcmread(io.BytesIO(data))
        parts: list[str] = []

        def walk(d) -> None:
            for elem in d:
                if elem.VR == "SQ":
                    for item in elem.value:
                        walk(item)
                elif elem.VR not in ("OB", "OW", "OF", "OD", "OL", "OV", "UN") and elem.value is not None:
                    parts.append(str(elem.value))
        walk(ds.file_meta)
        walk(ds)
        self.text(where, "\n".join(parts))

    def response(self, where: str, r: httpx.Response) -> None:
        kind = r.headers.get("content-type", "")
        if kind.startswith("application/dicom"):
            self.dicom(where, r.content)
        elif kind.startswith("application/zip"):
            with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
                for name in zf.namelist():
                    blob = zf.read(name)
                    self.dicom(f"{where}:{name}", blob) if name.endswith(".dcm") else self.text(f"{where}:{name}", blob.decode())
        elif kind.startswith("application/octet-stream"):
            self.text(where, json.dumps(dict(r.headers)))
        else:
            self.text(where, r.text)


def test_no_identifying_value_leaves_the_service(live_server_factory, tmp_path: Path) -> None:
    truth = generate_site(tmp_path / "site", patients=1, seed=3, matrix=32, slices=4, progress=lambda m: None)
    patient = truth["patients"][0]
    leaks = Leaks(patient["phi_values"] + [patient["patient_name"], patient["patient_id"], patient["address"], patient["phone"]])
    probe = Leaks(patient["phi_values"])
    probe.dicom("raw", (tmp_path / "site" / truth["series"][0]["files"][0]).read_bytes())
    assert probe.found, "the scanner must see the PHI planted in a raw file"
    deider = Deidentifier("default", secret=b"annotation-test-secret-0123456789")
    store = tmp_path / "store" / "deid"
    items = []
    for s in truth["series"]:
        if (s["modality"], s["kind"]) not in {("CT", "CT"), ("MR", "T1W"), ("CR", "CR"), ("US", "US")}:
            continue
        uris = []
        for rel in s["files"]:
            res = deider.deidentify((tmp_path / "site" / rel).read_bytes(), rel)
            if res.status != "written":
                continue
            out = store / f"{res.sop_uid}.dcm"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(res.data)
            uris.append(out.as_uri())
        if uris:
            items.append({"external_id": f"s{len(items)}", "uris": uris, "modality": s["modality"], "body_part": s["body_part"],
                          "context": {"age_bracket": "80+", "sex": "F", "report_text": "No acute finding."}})
    assert len(items) >= 3, "de-identification produced too few series to test with"

    server = live_server_factory()
    from annotation.admin import create_admin

    create_admin(server.database_url, "admin", PASSWORD)
    with httpx.Client(base_url=server.url, timeout=60) as c:
        def call(method: str, path: str, token: str | None = None, **kw) -> httpx.Response:
            r = c.request(method, path, headers={"Authorization": f"Bearer {token}"} if token else {}, **kw)
            leaks.response(f"{method} {path}", r)
            return r

        admin = ok(call("POST", "/api/auth/login", json={"username": "admin", "password": PASSWORD}))["token"]
        pid = ok(call("POST", "/api/projects", admin, json={"name": "phi-check", "schema": SCHEMA}), 201)["id"]
        uid = ok(call("POST", "/api/users", admin, json={"username": "reader1", "password": PASSWORD}), 201)["id"]
        ok(call("POST", f"/api/projects/{pid}/members", admin, json={"user_id": uid, "role": "annotator"}), 201)
        # identifying context is refused, and the refusal does not echo it
        for bad in ({"PatientName": patient["patient_name"]}, {"report_text": "ok", "patient_id": patient["patient_id"]}):
            r = call("POST", f"/api/projects/{pid}/items", admin, json={"items": [{**items[0], "context": bad}]})
            assert r.status_code == 422
        created = ok(call("POST", f"/api/projects/{pid}/items", admin, json={"items": items}), 201)["created"]
        reader = ok(call("POST", "/api/auth/login", json={"username": "reader1", "password": PASSWORD}))["token"]
        for _ in created:
            task = ok(call("POST", f"/api/tasks/next?project_id={pid}", reader))["task"]
            item = task["item"]
            for inst in item["instances"]:
                call("GET", f"/api/items/{item['id']}/instances/{inst['position']}/file", reader)
                call("GET", f"/api/items/{item['id']}/instances/{inst['position']}/frames/0", reader)
            ok(call("POST", f"/api/tasks/{task['id']}/loaded", reader))
            ok(call("POST", f"/api/tasks/{task['id']}/submit", reader, json={
                "labels": [{"label": "finding", "value": True, "confidence": 60}],
                "rois": [{"label": "box", "kind": "box", "points": [[2, 2], [12, 12]]},
                         {"label": "outline", "kind": "freehand", "points": [[3, 3], [10, 4], [8, 9]]}]}))
        for path in ["/api/tasks", f"/api/items/{created[0]}", f"/api/items/{created[0]}/review",
                     f"/api/projects/{pid}/statistics", f"/api/projects/{pid}/progress", f"/api/projects/{pid}/completion",
                     f"/api/projects/{pid}/items", f"/api/projects/{pid}/export/csv", f"/api/projects/{pid}/export/json",
                     f"/api/projects/{pid}/export/sr", f"/api/projects/{pid}/export/seg"]:
            assert call("GET", path, admin).status_code == 200, path
        sr = call("GET", f"/api/projects/{pid}/export/sr", admin)
        assert len(json.loads(zipfile.ZipFile(io.BytesIO(sr.content)).read("manifest.json"))["files"]) == len(created)
    server.stop()
    leaks.text("service log", server.log_path.read_text())
    assert not leaks.found, f"identifying values leaked: {leaks.found[:20]}"
