"""Series in batches: ingest cuts its series into at most N batches (one task per batch in curate_source),
a stage runs over a batch series by series, and a series that fails neither stops the rest of its batch
nor loses their records: the retry reuses them and redoes only the failed one."""
from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy import func, select

from curation.catalog import Catalog, StageRecord
from curation.ingest import ingest
from curation.pipeline import deid
from curation.pipeline.ingest import batches, run_batch, series_of
from curation.reid_vault import put_public_key
from curation.store import open_store
from deid.vault import public_pem
from tests.ingest.corpus import build_bad_corpus


def test_batches_keep_order_and_sizes_differ_by_at_most_one():
    refs = list(range(700))
    cut = batches(refs, 24)
    assert len(cut) == 24 and series_of(cut) == refs
    assert max(map(len, cut)) - min(map(len, cut)) <= 1
    # While there are no more series than tasks, one series per task (a small source looks as before).
    assert batches(list(range(5)), 24) == [[0], [1], [2], [3], [4]]
    assert batches([], 24) == []


@pytest.fixture
def site(tmp_path):
    build_bad_corpus(tmp_path / "src")
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    store = open_store(tmp_path / "store")
    put_public_key(store, public_pem(X25519PrivateKey.generate().public_key()))  # the officer's key
    summary = ingest(str(tmp_path / "src"), catalog, store, site="batches", workers=1)
    yield catalog, store, sorted(summary.series_ids)
    catalog.dispose()


def test_a_failing_series_fails_the_batch_after_the_rest_and_the_retry_reuses_them(site):
    catalog, store, series_ids = site
    missing = max(series_ids) + 1000  # not in the catalog: deid raises for it
    batch = [{"series_id": sid} for sid in series_ids[:2]] + [{"series_id": missing}] + \
            [{"series_id": sid} for sid in series_ids[2:]]

    def one(ref):
        return deid.run(ref, store, catalog)

    with pytest.raises(RuntimeError, match=rf"1 of {len(batch)} series failed \(series {missing}\)"):
        run_batch(one, batch)
    with catalog.session() as s:  # every other series of the batch was de-identified and recorded
        assert s.scalar(select(func.count()).select_from(StageRecord).where(StageRecord.stage == "deid")) \
            == len(series_ids)

    retried = run_batch(one, [r for r in batch if r["series_id"] != missing])
    assert [r["series_id"] for r in retried] == series_ids
    assert all(r["reused"] for r in retried) and all(r["status"] == "ok" for r in retried)
