"""Item registration (context refusal, raw zone refusal, idempotence), cleaned DICOM serving,
and the DICOM SR / SEG exports referencing the source instances."""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom

from tests.annotation.conftest import make_client, series_uris
from tests.annotation.dicomgen import PLANTED_PHI
from tests.annotation.receiver import Receiver
from tests.annotation.world import build_world, ok, reading


def test_registration_refuses_identifying_context_and_raw_zone(tmp_path: Path, store_root: Path) -> None:
    url = f"sqlite:///{tmp_path / 'i.db'}"
    with make_client(url) as client:
        w = build_world(client, url, store_root, n_items=1)
        h, pid = w.h("data_owner"), w.project_id
        base = {"external_id": "x-1", "uris": series_uris(store_root, 1)}
        for bad_context in ({"PatientName": "Doe^John"}, {"patient_id": "123"}, {"age_bracket": "47"},
                            {"age_bracket": "60-69", "birth_date": "19600101"}):
            r = client.post(f"/api/projects/{pid}/items", headers=h, json={"items": [{**base, "context": bad_context}]})
            assert r.status_code == 422, bad_context
            assert "Doe^John" not in r.text and "19600101" not in r.text, "422 answers must not echo the input"
        raw = (store_root / "raw" / "seriesR" / "0000.dcm").as_uri()
        r = client.post(f"/api/projects/{pid}/items", headers=h, json={"items": [{**base, "uris": [raw]}]})
        assert r.status_code == 422 and "raw zone" in r.text
        first = ok(client.post(f"/api/projects/{pid}/items", headers=h, json={"items": [base]}), 201)
        again = ok(client.post(f"/api/projects/{pid}/items", headers=h, json={"items": [base]}), 201)
        assert again == {"created": [], "existing": first["created"]}
        mf = (store_root / "deid" / "mf" / "0000.dcm").as_uri()
        created = ok(client.post(f"/api/projects/{pid}/items", headers=h,
                                 json={"items": [{"external_id": "mf-1", "uris": [mf]}]}), 201)["created"]
        item = ok(client.get(f"/api/items/{created[0]}", headers=h))
        assert item["instances"][0]["frames"] == 3


def test_served_dicom_is_cleaned_and_keeps_16_bit(tmp_path: Path, store_root: Path) -> None:
    url = f"sqlite:///{tmp_path / 'i.db'}"
    with make_client(url) as client:
        w = build_world(client, url, store_root, n_items=1)  # series0 carries planted identifying headers
        r = client.get(f"/api/items/{w.items[0]}/instances/0/file", headers=w.h("manager"))
        assert r.status_code == 200 and r.headers["content-type"] == "application/dicom"
        for value in PLANTED_PHI.values():
            assert value.encode() not in r.content
        assert b"private clinic note" not in r.content
        ds = pydicom.dcmread(io.BytesIO(r.content))
        src = pydicom.dcmread((store_root / "deid" / "series0" / "0000.dcm"))
        assert ds.BitsAllocated == 16 and np.array_equal(ds.pixel_array, src.pixel_array)
        f = client.get(f"/api/items/{w.items[0]}/instances/0/frames/0", headers=w.h("manager"))
        arr = np.frombuffer(f.content, dtype=f.headers["x-dtype"]).reshape(int(f.headers["x-rows"]), int(f.headers["x-columns"]))
        assert np.array_equal(arr, src.pixel_array)
        assert client.get(f"/api/items/{w.items[0]}/instances/0/frames/9", headers=w.h("manager")).status_code == 404


def test_sr_and_seg_exports_reference_source_instances(tmp_path: Path, store_root: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    with make_client(url) as client:
        w = build_world(client, url, store_root, readers=1, verification=0, n_items=1)
        t = ok(client.post(f"/api/tasks/next?project_id={w.project_id}", headers=w.h("junior")))["task"]
        ok(client.post(f"/api/tasks/{t['id']}/submit", headers=w.h("junior"), json=reading()))
        source_uids = {i["sop_instance_uid"] for i in t["item"]["instances"]}
        sr_zip = zipfile.ZipFile(io.BytesIO(client.get(f"/api/projects/{w.project_id}/export/sr", headers=w.h("manager")).content))
        manifest = json.loads(sr_zip.read("manifest.json"))
        assert manifest["skipped"] == [] and len(manifest["files"]) == 1
        sr = pydicom.dcmread(io.BytesIO(sr_zip.read(manifest["files"][0]["file"])))
        assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
        assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
        evidence = {r.ReferencedSOPInstanceUID for s in sr.CurrentRequestedProcedureEvidenceSequence
                    for se in s.ReferencedSeriesSequence for r in se.ReferencedSOPSequence}
        assert evidence == source_uids
        report = hd.sr.Comprehensive3DSR.from_dataset(sr)
        groups = report.content.get_planar_roi_measurement_groups()
        assert len(groups) == 2
        regions = [g.roi for g in groups]
        assert {r.value_type for r in regions} == {hd.sr.ValueTypeValues.SCOORD}
        seg_zip = zipfile.ZipFile(io.BytesIO(client.get(f"/api/projects/{w.project_id}/export/seg", headers=w.h("manager")).content))
        seg_manifest = json.loads(seg_zip.read("manifest.json"))
        assert seg_manifest["skipped"] == [] and len(seg_manifest["files"]) == 1
        seg = hd.seg.Segmentation.from_dataset(pydicom.dcmread(io.BytesIO(seg_zip.read(seg_manifest["files"][0]["file"]))))
        assert {s.segment_label for s in seg.SegmentSequence} == {"lesion_box", "lesion_outline"}
        refs = {r.ReferencedSOPInstanceUID for se in seg.ReferencedSeriesSequence for r in se.ReferencedInstanceSequence}
        assert refs == source_uids
        box = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=[sorted(source_uids, key=lambda u: [i["sop_instance_uid"] for i in t["item"]["instances"]].index(u))[0]],
            segment_numbers=[1])
        assert box.sum() == 21 * 17  # the [10,12]-[30,28] box, inclusive pixel edges
        for blob in [sr_zip.read(n) for n in sr_zip.namelist()] + [seg_zip.read(n) for n in seg_zip.namelist()]:
            for value in PLANTED_PHI.values():
                assert value.encode() not in blob


def test_completion_webhook_is_called(tmp_path: Path, store_root: Path) -> None:
    receiver = Receiver()
    try:
        url = f"sqlite:///{tmp_path / 'h.db'}"
        with make_client(url) as client:
            w = build_world(client, url, store_root, readers=1, verification=0, n_items=1)
            ok(client.patch(f"/api/projects/{w.project_id}", headers=w.h("owner"),
                            json={"webhook_url": receiver.url + "/done"}))
            t = ok(client.post(f"/api/tasks/next?project_id={w.project_id}", headers=w.h("junior")))["task"]
            ok(client.post(f"/api/tasks/{t['id']}/submit", headers=w.h("junior"), json=reading()))
    finally:
        receiver.close()
    assert [r.body for r in receiver.on("/done")] == [{"event": "items_complete", "items": [
        {"project_id": w.project_id, "item_id": w.items[0], "external_id": "series-0", "round": 1}]}]
