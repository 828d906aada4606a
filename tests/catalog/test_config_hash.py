"""One config_hash for the platform, over RESOLVED configurations: an edited de-identification
profile or quality thresholds file changes the stage's key and the stage runs again; an unchanged
configuration keeps the key and the stored result is reused."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pydicom.data import get_testdata_file

import curation.quality.decision as decision
from curation.catalog import Catalog, Series
from curation.confighash import config_hash
from curation.ingest import ingest
from curation.reid_vault import put_public_key
from curation.pipeline import SeriesRef, classify, deid, quality
from curation.store import open_store
from deid.vault import public_pem

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def site(tmp_path, monkeypatch):
    """pydicom's bundled CT slice ingested into a fresh catalog and store; de-identification and
    quality read their data files from editable copies."""
    deid_dir = tmp_path / "include_deid"
    shutil.copytree(REPO / "include" / "deid", deid_dir)
    monkeypatch.setenv("DEID_INCLUDE_DIR", str(deid_dir))
    thresholds = tmp_path / "thresholds.yaml"
    shutil.copyfile(decision.THRESHOLDS_PATH, thresholds)
    monkeypatch.setattr(decision, "THRESHOLDS_PATH", thresholds)
    src = tmp_path / "src"
    src.mkdir()
    shutil.copyfile(get_testdata_file("CT_small.dcm"), src / "ct.dcm")
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    store = open_store(str(tmp_path / "store"))
    put_public_key(store, public_pem(X25519PrivateKey.generate().public_key()))  # the officer's key
    ingest(str(src), catalog, store, site="hash-test", workers=1)
    with catalog.session() as s:
        (series_id,) = [sid for (sid,) in s.query(Series.id)]
    return catalog, store, series_id, deid_dir, thresholds


def _edit_yaml(path: Path, edit) -> None:  # noqa: ANN001 - a function of the parsed mapping
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_edited_profile_reruns_deid_and_unchanged_reuses(site):
    catalog, store, series_id, deid_dir, _ = site
    first = deid.run(SeriesRef(series_id), store, catalog)
    assert first.status == "ok" and not first.reused
    assert deid.run(SeriesRef(series_id), store, catalog).reused  # same profile, same key: skipped

    # The profile keeps its name; only its content changes (patient characteristics no longer kept).
    _edit_yaml(deid_dir / "profiles" / "default.yaml",
               lambda d: d["options"].remove("retain_patient_characteristics"))
    edited = deid.run(SeriesRef(series_id), store, catalog)
    assert edited.status == "ok" and not edited.reused
    assert deid.run(SeriesRef(series_id), store, catalog).reused


def test_edited_annex_e_table_reruns_deid(site):
    catalog, store, series_id, deid_dir, _ = site
    deid.run(SeriesRef(series_id), store, catalog)
    table = deid_dir / "annex_e_table_e1_1.json"
    table.write_text(table.read_text() + "\n")  # same actions, other bytes: the table is hashed as read
    assert not deid.run(SeriesRef(series_id), store, catalog).reused


def test_edited_quality_thresholds_rerun_quality(site):
    catalog, store, series_id, _, thresholds = site
    ref = classify.run(deid.run(SeriesRef(series_id), store, catalog).ref, store, catalog).ref
    assert ref.kind
    first = quality.run(ref, store, catalog)
    assert first.status != "skipped" and not first.reused
    again = quality.run(ref, store, catalog)
    assert again.reused and again.ref == first.ref.replace(reused=True)  # unchanged: the stored result
    before = config_hash(decision.load_config())

    def tighten(d: dict) -> None:
        d["decision"]["exclude_above"] = round(float(d["decision"]["exclude_above"]) * 0.9, 4)

    _edit_yaml(thresholds, tighten)
    assert config_hash(decision.load_config()) != before
    from sqlalchemy import func, select

    from curation.catalog import StageRecord

    assert not quality.run(ref, store, catalog).reused
    with catalog.session() as s:
        runs = s.scalar(select(func.count()).select_from(StageRecord).where(StageRecord.stage == "quality"))
    assert runs == 2  # the edited thresholds ran the stage again, under a new key


def test_classify_key_follows_rules_and_weights_content(tmp_path):
    rules = tmp_path / "rules.yaml"
    shutil.copyfile(REPO / "include" / "classify" / "rules.yaml", rules)
    before = config_hash(classify.resolved_config({"rules": str(rules)}))
    assert config_hash(classify.resolved_config({"rules": str(rules)})) == before
    rules.write_text(rules.read_text() + "\n# edited\n")
    assert config_hash(classify.resolved_config({"rules": str(rules)})) != before
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"one")
    a = config_hash(classify.resolved_config({"model": str(weights)}))
    weights.write_bytes(b"other")
    assert config_hash(classify.resolved_config({"model": str(weights)})) != a
    assert classify.resolved_config({"model": False})["model"] is None


def test_one_config_hash_for_the_platform():
    import curation.pipeline.classify
    import curation.pipeline.deid
    import curation.pipeline.idempotency
    import curation.pipeline.quality
    import curation.pipeline.register
    import curation.registration
    import curation.registration.config

    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    for module in (curation.pipeline.idempotency, curation.pipeline.deid, curation.pipeline.classify,
                   curation.pipeline.quality, curation.pipeline.register, curation.registration,
                   curation.registration.config):
        assert getattr(module, "config_hash", config_hash) is config_hash, module.__name__
