"""Issue 11 point 3: the re-identification key is not beside its map.

The pipeline holds only the data protection officer's public key (sealed entries it can add but
not read); the private key is made by `curate deid keys create` outside the store; every
re-identification is in the hash-chained ledger without the identity; an old symmetric (Fernet)
vault written by the previous code (tests/deid/fixtures/legacy_fernet_vault, made with it) is
re-sealed by one command and its key removed."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file
from sqlalchemy import update

from curation.catalog import Catalog, LineageEvent
from curation.catalog.lineage import reidentification_events
from curate.main import main
from curation.store import Zone, open_store
from deid.pseudonym import Pseudonymizer
from deid.vault import (
    VaultKeyError,
    SealedMap,
    generate_key_pair,
    load_private_key,
    load_public_key,
    open_records,
    secret_from_environment,
    seal_entries,
)

LEGACY = Path(__file__).parent / "fixtures" / "legacy_fernet_vault"
MR_ID, MR_NAME, MR_STUDY = "4MR1", "CompressedSamples^MR1", "1.3.6.1.4.1.5962.1.2.4.20040826185059.5457"


def _all_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def _no_private_key_under(root: Path) -> None:
    """Nothing under ``root`` is a private key (PEM or the old Fernet key file)."""
    for p in _all_files(root):
        data = p.read_bytes()
        assert b"PRIVATE KEY" not in data, p
        assert not p.name.endswith(".key"), p
        with pytest.raises((VaultKeyError, ValueError)):
            load_private_key(data)


@pytest.fixture()
def pipeline(tmp_path, monkeypatch):
    """A production-like store (not the embedded default) with keys made by the officer's command."""
    monkeypatch.delenv("CURATE_PSEUDONYM_SECRET", raising=False)
    store_dir, officer = tmp_path / "store", tmp_path / "officer"
    assert main(["deid", "keys", "create", "--out", str(officer / "dpo.pem"), "--store", str(store_dir)]) == 0
    store = open_store(store_dir)
    store.put_bytes(Zone.RAW, "ab/00.dcm", Path(get_testdata_file("MR_small.dcm")).read_bytes())
    from curation.pipeline.deid import deidentify_series

    res = deidentify_series(store, ["ab/00.dcm"])
    assert res["status"] == "ok"
    return store_dir, officer / "dpo.pem", res, f"sqlite:///{tmp_path / 'catalog.sqlite'}"


def test_pipeline_store_holds_no_key_that_opens_its_map(pipeline):
    store_dir, private_key, res, _ = pipeline
    vault = store_dir / "vault"
    fragment = vault / "deid" / "reid" / f"{res['series_instance_uid']}.sealed"
    assert fragment.is_file() and fragment.stat().st_mode & 0o777 == 0o600
    assert not list(vault.rglob("*.fernet")) and not (vault / "deid" / "reid_map.key").exists()
    _no_private_key_under(store_dir)
    for p in _all_files(vault):  # no identifier in clear anywhere in the vault
        for value in (MR_ID, MR_NAME, MR_STUDY):
            assert value.encode() not in p.read_bytes(), (p, value)
    records = SealedMap(fragment).records()
    assert {r["pseudonym"] for r in records} == {res["patient_pseudonym"]}
    # what the platform holds (public key, secret, a fresh key of its own) does not open the entries
    with pytest.raises(VaultKeyError, match="another key pair"):
        open_records(records, load_private_key(generate_key_pair()[0]))
    assert open_records(records, load_private_key(private_key.read_bytes()))[res["patient_pseudonym"]]["PatientID"] == MR_ID


def test_reidentify_needs_the_private_key_and_is_recorded_without_identity(pipeline, capsys):
    store_dir, private_key, res, db = pipeline
    pseudo = res["patient_pseudonym"]
    capsys.readouterr()
    assert main(["deid", "reidentify", pseudo, "--store", str(store_dir), "--db", db]) == 2  # no key: refused
    assert main(["deid", "reidentify", pseudo, "--private-key", str(private_key), "--store", str(store_dir),
                 "--db", db, "--actor", "dpo-alice", "--reason", "incidental finding, ticket 42"]) == 0
    shown = json.loads(capsys.readouterr().out)[pseudo]
    assert shown["PatientID"] == MR_ID and shown["PatientName"] == MR_NAME
    assert [s["StudyInstanceUID"] for s in shown["studies"].values()] == [MR_STUDY]
    other = private_key.with_name("other.pem")
    other.write_bytes(generate_key_pair()[0])
    assert main(["deid", "reidentify", pseudo, "--private-key", str(other), "--store", str(store_dir), "--db", db]) == 2

    catalog = Catalog(db)
    events = reidentification_events(catalog)
    assert [(e["actor"], e["pseudonym"], e["outcome"]) for e in events] == [
        ("dpo-alice", pseudo, "found"), (events[1]["os_user"], pseudo, "refused")]
    assert events[0]["reason"] == "incidental finding, ticket 42" and events[0]["at"].endswith("Z")
    with catalog.session() as s:
        ledger = json.dumps([[e.actor, e.subject, e.inputs, e.outputs, e.details] for e in s.query(LineageEvent)])
    for value in (MR_ID, MR_NAME, MR_STUDY, "CompressedSamples", "20040826"):
        assert value not in ledger

    capsys.readouterr()
    assert main(["audit", "reidentifications", "--db", db]) == 0
    listing = capsys.readouterr().out
    assert "dpo-alice" in listing and "ticket 42" in listing and MR_ID not in listing
    assert main(["audit", "verify", "--db", db, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["reidentifications"] == 2
    with catalog.session() as s:  # someone hides who looked
        s.execute(update(LineageEvent).where(LineageEvent.id == events[0]["id"]).values(actor="nobody"))
    assert main(["audit", "verify", "--db", db, "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["first_bad_id"] == events[0]["id"]


def test_store_without_public_key_fails_before_writing(tmp_path, monkeypatch):
    monkeypatch.setenv("CURATE_STORE_URI", str(tmp_path / "store"))
    store = open_store(tmp_path / "store")
    store.put_bytes(Zone.RAW, "ab/00.dcm", Path(get_testdata_file("MR_small.dcm")).read_bytes())
    from curation.pipeline.deid import deidentify_series

    with pytest.raises(VaultKeyError, match="curate deid keys create"):
        deidentify_series(store, ["ab/00.dcm"])
    assert not list(store.list(Zone.DEID))


def test_embedded_default_makes_a_demo_pair_outside_the_store(tmp_path, monkeypatch):
    monkeypatch.setenv("CURATE_HOME", str(tmp_path / "var"))
    monkeypatch.delenv("CURATE_STORE_URI", raising=False)
    from curation.config import default_store_uri
    from curation.pipeline.deid import deidentify_series

    uri = default_store_uri()
    store = open_store(uri)
    store.put_bytes(Zone.RAW, "ab/00.dcm", Path(get_testdata_file("MR_small.dcm")).read_bytes())
    res = deidentify_series(store, ["ab/00.dcm"])
    [demo_key] = (tmp_path / "var").glob("dpo-private-key-*.pem")
    assert demo_key.stat().st_mode & 0o777 == 0o600
    _no_private_key_under(tmp_path / "var" / "store")
    records = [r for p in (tmp_path / "var" / "store" / "vault").rglob("*.sealed") for r in SealedMap(p).records()]
    assert open_records(records, load_private_key(demo_key.read_bytes()))[res["patient_pseudonym"]]["PatientID"] == MR_ID
    # `curate demo --fresh` removes the store: the next first use makes a new pair, never over the old key
    shutil.rmtree(tmp_path / "var" / "store")
    store = open_store(default_store_uri())
    store.put_bytes(Zone.RAW, "ab/00.dcm", Path(get_testdata_file("MR_small.dcm")).read_bytes())
    deidentify_series(store, ["ab/00.dcm"])
    assert len(list((tmp_path / "var").glob("dpo-private-key-*.pem"))) == 2 and demo_key.exists()


def test_keys_create_keeps_the_private_key_away_from_the_platform(tmp_path, capsys):
    store = tmp_path / "store"
    assert main(["deid", "keys", "create", "--out", str(store / "dpo.pem"), "--store", str(store)]) == 2
    assert main(["deid", "keys", "create", "--out", str(tmp_path / "vault" / "dpo.pem"), "--public-key-out",
                 str(tmp_path / "vault" / "reid_public_key.pem")]) == 2
    os.environ["H3_TEST_PASS"] = "correct horse"
    try:
        assert main(["deid", "keys", "create", "--out", str(tmp_path / "dpo.pem"), "--store", str(store),
                     "--passphrase-env", "H3_TEST_PASS"]) == 0
        pem = (tmp_path / "dpo.pem").read_bytes()
        assert (tmp_path / "dpo.pem").stat().st_mode & 0o777 == 0o600 and b"ENCRYPTED" in pem
        with pytest.raises(VaultKeyError):
            load_private_key(pem)
        load_private_key(pem, b"correct horse")
    finally:
        del os.environ["H3_TEST_PASS"]
    public = capsys.readouterr().out.encode()
    assert (store / "vault" / "deid" / "reid_public_key.pem").read_bytes() == public
    # neither an existing private key nor the store's public key is replaced by accident
    assert main(["deid", "keys", "create", "--out", str(tmp_path / "dpo.pem"), "--store", str(tmp_path / "s2")]) == 2
    assert main(["deid", "keys", "create", "--out", str(tmp_path / "dpo2.pem"), "--store", str(store)]) == 2
    assert not (tmp_path / "dpo2.pem").exists()
    assert (store / "vault" / "deid" / "reid_public_key.pem").read_bytes() == public
    folder_key = tmp_path / "vault" / "reid_public_key.pem"
    assert main(["deid", "keys", "create", "--out", str(tmp_path / "k1.pem"), "--public-key-out", str(folder_key)]) == 0
    assert main(["deid", "keys", "create", "--out", str(tmp_path / "k2.pem"), "--public-key-out", str(folder_key)]) == 2


def test_sealed_entries_are_bound_to_their_pseudonym():
    priv, pub = generate_key_pair()
    recs = seal_entries({"ANONA": {"PatientID": "REAL-A", "studies": {"2.25.1": {"AccessionNumber": "ACC1"}}},
                         "ANONB": {"PatientID": "REAL-B", "studies": {}}}, load_public_key(pub))
    assert all(b"REAL-" not in json.dumps(r).encode() for r in recs)
    key = load_private_key(priv)
    assert open_records(recs, key, "ANONA")["ANONA"]["studies"]["2.25.1"]["AccessionNumber"] == "ACC1"
    swapped = [{**recs[0], "pseudonym": "ANONB"}]  # moving an entry to another pseudonym is detected
    with pytest.raises(VaultKeyError, match="does not open"):
        open_records(swapped, key)


def test_migrate_folder_fernet_map_made_by_the_old_code(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CURATE_PSEUDONYM_SECRET", raising=False)
    vault = tmp_path / "vault"
    shutil.copytree(LEGACY / "folder", vault)
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(get_testdata_file("MR_small.dcm"), src / "MR_small.dcm")
    # the old layout is refused until migrated (never a second map under a new key)
    assert main(["deid", str(src), str(tmp_path / "out0"), "--secret-file", str(vault / "deid_secret"), "--quiet"]) == 2
    officer = tmp_path / "officer"
    assert main(["deid", "keys", "create", "--out", str(officer / "dpo.pem"),
                 "--public-key-out", str(officer / "dpo.pub.pem")]) == 0
    assert main(["deid", "keys", "migrate", "--public-key", str(officer / "dpo.pub.pem"),
                 "--secret-file", str(vault / "deid_secret")]) == 0
    assert not (vault / "reid_map.key").exists() and not (vault / "reid_map.fernet").exists()
    _no_private_key_under(vault)
    assert len(SealedMap(vault / "reid_map.sealed").records()) == 2
    db = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    capsys.readouterr()
    for pseudo, pid in (("ANONCGGNUHRZKC5UQKFW", MR_ID), ("ANONYCYVPDNXMSBUJ74M", "1CT1")):
        assert main(["deid", "reidentify", pseudo, "--private-key", str(officer / "dpo.pem"),
                     "--secret-file", str(vault / "deid_secret"), "--db", db]) == 0
        assert json.loads(capsys.readouterr().out)[pseudo]["PatientID"] == pid
    # the site keeps its secret (same pseudonyms); a rerun seals nothing twice
    assert main(["deid", str(src), str(tmp_path / "out"), "--secret-file", str(vault / "deid_secret"), "--quiet"]) == 0
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["ANONCGGNUHRZKC5UQKFW"]
    assert len(SealedMap(vault / "reid_map.sealed").records()) == 2


def test_migrate_store_fragments_made_by_the_old_code(tmp_path, capsys):
    store_dir = tmp_path / "store"
    shutil.copytree(LEGACY / "store", store_dir)
    officer = tmp_path / "officer"
    assert main(["deid", "keys", "create", "--out", str(officer / "dpo.pem"),
                 "--public-key-out", str(officer / "dpo.pub.pem")]) == 0
    store = open_store(store_dir)
    store.put_bytes(Zone.RAW, "ab/00.dcm", Path(get_testdata_file("MR_small.dcm")).read_bytes())
    from curation.pipeline.deid import deidentify_series

    with pytest.raises(VaultKeyError, match="keys migrate"):  # not one more entry beside the old key
        deidentify_series(store, ["ab/00.dcm"])
    assert main(["deid", "keys", "migrate", "--public-key", str(officer / "dpo.pub.pem"), "--store", str(store_dir)]) == 0
    vault = store_dir / "vault" / "deid"
    assert not (vault / "reid_map.key").exists() and not list(vault.rglob("*.fernet"))
    assert (vault / "reid_public_key.pem").read_bytes() == (officer / "dpo.pub.pem").read_bytes()
    _no_private_key_under(store_dir)
    capsys.readouterr()
    assert main(["deid", "reidentify", "ANONQZZEY5WAT5PVQ7CR", "--private-key", str(officer / "dpo.pem"),
                 "--store", str(store_dir), "--db", f"sqlite:///{tmp_path / 'c.sqlite'}"]) == 0
    assert json.loads(capsys.readouterr().out)["ANONQZZEY5WAT5PVQ7CR"]["PatientName"] == MR_NAME
    # the pipeline runs on with the migrated vault: same secret, same pseudonym, one sealed fragment
    assert deidentify_series(store, ["ab/00.dcm"])["patient_pseudonym"] == "ANONQZZEY5WAT5PVQ7CR"
    assert len(list((store_dir / "vault" / "deid" / "reid").iterdir())) == 1


def test_pseudonym_secret_from_environment_or_airflow_connection(tmp_path, monkeypatch):
    from deid.batch import deidentify_tree

    secret = "s3cr3t-from-a-secrets-backend-0123456789"
    assert secret_from_environment({"CURATE_PSEUDONYM_SECRET": secret}) == (secret.encode(), "CURATE_PSEUDONYM_SECRET")
    uri = "generic://:s3cr3t%2Dfrom-a-secrets-backend-0123456789@"
    assert secret_from_environment({"AIRFLOW_CONN_CURATE_PSEUDONYM_SECRET": uri})[0] == secret.encode()
    as_json = json.dumps({"conn_type": "generic", "password": secret})
    assert secret_from_environment({"CURATE_PSEUDONYM_SECRET_CONN": "site_hmac",
                                    "AIRFLOW_CONN_SITE_HMAC": as_json})[0] == secret.encode()
    assert secret_from_environment({}) is None
    with pytest.raises(ValueError, match="no password"):
        secret_from_environment({"AIRFLOW_CONN_CURATE_PSEUDONYM_SECRET": "generic://user@host"})
    with pytest.raises(ValueError, match="not set"):
        secret_from_environment({"CURATE_PSEUDONYM_SECRET_CONN": "missing"})

    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(get_testdata_file("MR_small.dcm"), src / "MR_small.dcm")
    monkeypatch.setenv("AIRFLOW_CONN_CURATE_PSEUDONYM_SECRET", uri)
    deidentify_tree(src, tmp_path / "out", secret_file=tmp_path / "vault" / "deid_secret", workers=1)
    assert not (tmp_path / "vault" / "deid_secret").exists()  # the vault did not make its own
    expected = Pseudonymizer(secret.encode()).patient_id("id:" + MR_ID)
    assert [p.name for p in (tmp_path / "out").iterdir()] == [expected]
    # a new secret (rotation) means new pseudonyms
    assert Pseudonymizer(b"another-secret-0123456789abcdef").patient_id("id:" + MR_ID) != expected
    # the pipeline reads the same source, and its vault keeps no secret object either
    from curation.reid_vault import SECRET_KEY, store_secret

    store = open_store(tmp_path / "store")
    assert store_secret(store) == secret.encode() and not store.exists(Zone.VAULT, SECRET_KEY)


@pytest.mark.server
def test_workers_racing_to_create_the_s3_vault_secret_all_get_the_same_one(s3_bucket, monkeypatch):
    """Two Celery workers' first deid tasks on an S3 store without CURATE_PSEUDONYM_SECRET: the secret
    is created once (a conditional put) and every worker reads that one, so a patient keeps one pseudonym."""
    from concurrent.futures import ThreadPoolExecutor

    from curation.reid_vault import SECRET_KEY, store_secret
    from curation.store.s3 import S3Store, make_s3_client

    for name in ("CURATE_PSEUDONYM_SECRET", "CURATE_PSEUDONYM_SECRET_CONN", "AIRFLOW_CONN_CURATE_PSEUDONYM_SECRET"):
        monkeypatch.delenv(name, raising=False)
    workers = [S3Store(s3_bucket.name, "site", client=make_s3_client()) for _ in range(6)]
    with ThreadPoolExecutor(6) as pool:
        secrets_seen = set(pool.map(store_secret, workers))
    assert len(secrets_seen) == 1
    assert workers[0].get_bytes(Zone.VAULT, SECRET_KEY).strip() in secrets_seen
