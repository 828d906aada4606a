"""The deid stage: one series from the raw zone of a store into the deid zone."""
from __future__ import annotations

import io

import pydicom
from pydicom.data import get_testdata_file

from curation.pipeline.deid import deidentify_series
from curation.reid_vault import MAP_PREFIX
from curation.store import Zone, open_store


def test_series_from_raw_to_deid_zone(tmp_path, capsys):
    from curate.main import main

    assert main(["deid", "keys", "create", "--out", str(tmp_path / "dpo.pem"), "--store", str(tmp_path / "store")]) == 0
    store = open_store(tmp_path / "store")
    keys = []
    for i, p in enumerate([get_testdata_file("MR_small.dcm"), get_testdata_file("MR_small_RLE.dcm")]):
        keys.append(f"ab/{i:02d}.dcm")
        store.put_bytes(Zone.RAW, keys[-1], open(p, "rb").read())
    keys.append("ab/zz.dcm")
    store.put_bytes(Zone.RAW, keys[-1], b"not a dicom file")
    res = deidentify_series(store, keys)
    assert res["status"] == "partial"
    codes = {q["raw_key"]: q["reason_code"] for q in res["quarantined"]}
    # MR_small_RLE is the same SOP instance as MR_small with other bytes: a conflict, not a silent overwrite
    assert res["written"] == 1 and codes == {"ab/zz.dcm": "not_dicom", "ab/01.dcm": "conflict"}
    assert all(len(q["sha256"]) == 64 for q in res["quarantined"])
    assert len(set(res["outputs"])) == 1
    out = pydicom.dcmread(io.BytesIO(store.get_bytes(Zone.DEID, res["outputs"][0])))
    assert out.PatientID == res["patient_pseudonym"] and out.SeriesInstanceUID == res["series_instance_uid"]
    assert "CompressedSamples" not in str(res)
    assert store.exists(Zone.VAULT, f"{MAP_PREFIX}{res['series_instance_uid']}.sealed")
    again = deidentify_series(store, keys)
    assert again["written"] == 0 and again["unchanged"] == 1
    # the CLI reads the per-series fragments with the officer's private key
    vault = tmp_path / "store" / "vault" / "deid"
    assert main(["deid", "reidentify", res["patient_pseudonym"], "--map", str(vault / "reid"),
                 "--private-key", str(tmp_path / "dpo.pem"), "--db", f"sqlite:///{tmp_path / 'c.sqlite'}"]) == 0
    assert "CompressedSamples" in capsys.readouterr().out
