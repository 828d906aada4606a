"""PNG/JPEG/NIfTI through the curation stages: ingest -> deid -> classify -> quality, as DICOM
series go. Before, de-identification marked them `skipped` and they stayed in the raw zone."""
from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy import select

from curation.catalog import Catalog, QuarantineRecord, Series, StageRecord
from curation.ingest import ingest
from curation.pipeline import SeriesRef, classify, deid, quality
from curation.pipeline.studies import group_by_study
from curation.reid_vault import put_public_key
from curation.store import Zone, open_store
from deid.vault import public_pem
from tests.deid import formats_corpus as fc


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    root = tmp_path_factory.mktemp("formats")
    expected = fc.write_source(root / "src")
    catalog = Catalog(f"sqlite:///{root / 'catalog.sqlite'}")
    store = open_store(str(root / "store"))
    put_public_key(store, public_pem(X25519PrivateKey.generate().public_key()))  # the officer's key: images get sealed entries
    ingest(str(root / "src"), catalog, store, site="formats", workers=1)
    with catalog.session() as s:
        ids = [sid for (sid,) in s.query(Series.id).order_by(Series.id)]
    deids = [deid.run(SeriesRef(i), store, catalog) for i in ids]
    classified = [classify.run(d.ref, store, catalog) for d in deids]
    refs = [quality.run(c.ref, store, catalog).ref for c in classified]
    return catalog, store, refs, expected, deids, classified


def test_every_image_is_deidentified_into_the_deid_zone(curated):
    catalog, store, refs, expected, deids, _ = curated
    assert len(refs) == len(expected) == 6
    assert [r.status for r in refs] == ["ok"] * 6, [d.reason for d in deids]
    with catalog.session() as s:
        assert s.scalars(select(QuarantineRecord.id).where(QuarantineRecord.stage == "deid")).first() is None
    keys = list(store.list(Zone.DEID, ""))
    assert len(keys) == 6 and {k.split("/")[0] for k in keys} == {"images", "volumes"}
    for ref, d in zip(refs, deids):
        (key,) = d.metrics["outputs"]
        assert ref.deid_prefix == d.ref.deid_prefix == key.rsplit("/", 1)[0] + "/"


def test_no_identifying_value_in_any_output_byte_name_or_catalog_result(curated):
    catalog, store, refs, *_ = curated
    keys = list(store.list(Zone.DEID, ""))
    assert len(keys) == 6  # every image went on, and none of them may identify
    for key in keys:
        low = (key + "\n").encode() + store.get_bytes(Zone.DEID, key).lower()
        assert not [i for i in fc.IDENTIFIERS if i.encode() in low], key
    with catalog.session() as s:
        rows = [(r.stage, json.dumps(r.metrics), r.reason or "", r.output_uri or "") for r in s.scalars(select(StageRecord))]
    for stage, *texts in rows:
        blob = " ".join(texts).lower()
        assert not [i for i in fc.IDENTIFIERS if i in blob], stage
    assert not [i for i in fc.IDENTIFIERS if i in json.dumps([r.to_xcom() for r in refs]).lower()]


def test_kind_from_content_and_a_quality_decision_with_a_reason(curated):
    _catalog, _store, refs, expected, _, classified = curated
    kinds = sorted(r.kind for r in refs)
    assert kinds == sorted(expected.values())
    assert all(c.status in ("ok", "review") for c in classified)
    for ref in refs:
        assert ref.decision in ("approve", "review", "exclude") and ref.decision_reason, ref
        assert "unusable" not in ref.decision_reason  # the de-identified pixels and volumes load
    # images and volumes belong to no study: registration leaves them alone
    assert group_by_study(refs) == []


def test_rerun_reuses_every_stage(curated):
    catalog, store, refs, _, deids, _ = curated
    again = [deid.run(SeriesRef(r.series_id), store, catalog) for r in refs]
    assert all(a.reused and a.metrics["outputs"] == d.metrics["outputs"] for a, d in zip(again, deids))
    classified = [classify.run(a.ref, store, catalog) for a in again]
    assessed = [quality.run(c.ref, store, catalog) for c in classified]
    assert all(c.reused for c in classified) and all(q.reused for q in assessed)
    assert [q.ref.replace(reused=None) for q in assessed] == [r.replace(reused=None) for r in refs]
