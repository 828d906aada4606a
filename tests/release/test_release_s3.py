"""The same release on a real S3 server (SeaweedFS on loopback): the build is byte-identical to the
one on a local disk from the same catalog, publish is refused the second time, and verify names a
deleted object."""
from __future__ import annotations

import pytest

from curation.catalog import Catalog
from curation.release.build import ReleaseSpec, build
from curation.release.layout import StoreTree
from curation.release.publish import ReleaseExists, publish
from curation.release.verify import verify_tree
from curation.store import LocalStore
from curation.vocabulary import Zone
from tests.release.world import add_round, add_series

pytestmark = pytest.mark.server


def test_a_release_on_s3_matches_the_local_one_and_is_immutable(s3_bucket, tmp_path):
    s3 = s3_bucket.store
    local = LocalStore(tmp_path / "store", fsync=False)
    catalogs = [Catalog(f"sqlite:///{tmp_path / name}.sqlite") for name in ("s3", "local")]
    try:
        for catalog, store in zip(catalogs, (s3, local)):
            ids = [add_series(catalog, store, n, patient=f"ANON0{n % 3}") for n in range(1, 6)]
            add_round(catalog, ids[:3], {i: i % 2 for i in ids[:3]})
        on_s3, on_disk = (build(c, st, ReleaseSpec("chest")) for c, st in zip(catalogs, (s3, local)))
        staged = StoreTree(s3, on_s3.prefix)
        assert staged.paths() == StoreTree(local, on_disk.prefix).paths()
        assert all(staged.read(p) == local.get_bytes(Zone.RELEASES, on_disk.prefix + p) for p in staged.paths())
        assert on_s3.manifest_sha256 == on_disk.manifest_sha256
        done = publish(catalogs[0], s3, "chest", "1.0.0")
        assert done.location.startswith("s3://")
        before = {k: s3.get_bytes(Zone.RELEASES, k) for k in s3.list(Zone.RELEASES)}
        with pytest.raises(ReleaseExists):
            publish(catalogs[0], s3, "chest", "1.0.0")
        assert {k: s3.get_bytes(Zone.RELEASES, k) for k in s3.list(Zone.RELEASES)} == before
        tree = StoreTree(s3, "chest/1.0.0/")
        assert verify_tree(tree, expected_sha256=done.manifest_sha256).ok
        s3.delete(Zone.RELEASES, "chest/1.0.0/tables/consensus.parquet")
        assert [(p.kind, p.path) for p in verify_tree(tree).problems] == [("missing", "tables/consensus.parquet")]
    finally:
        for catalog in catalogs:
            catalog.dispose()
