"""Two publishers of one version, on a local disk and on a real S3 server (SeaweedFS on loopback):
- of the same build, both past every check and copying side by side: exactly one makes the release
  (the manifest is created only if absent: a conditional put, a hard link), the other gets
  ReleaseExists; one publish in the ledger; the release is the build;
- of another build (the staging copy rebuilt while the first publisher copies): the second is refused
  by the first's publishing claim with nothing written, and the first's bytes are what is published.
Each publisher has its own store object, as two processes would; the store subclass below only
decides when a publisher pauses (threads meet there), the server or the file system decides who wins.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from curation.catalog import Catalog
from curation.catalog.models import LineageEvent
from curation.release.build import ReleaseSpec, build
from curation.release.layout import StoreTree, publishing_key, staging_prefix
from curation.release.publish import PublishResult, ReleaseExists, publish
from curation.release.verify import verify_tree
from curation.store import LocalStore, Store
from curation.vocabulary import SeriesKind, Zone
from tests.release.world import add_round, add_series

FINAL = "chest/1.0.0/"


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.server)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Catalog, Callable[..., Store]]]:
    """A catalog and a maker of store objects on one store, each with hooks: `on_exists(key, n)` runs
    before the n-th look at `key`, `on_put(key)` after each put."""
    if request.param == "local":
        base: type[Store] = LocalStore
        args: tuple[Any, ...] = (tmp_path / "store",)
        kwargs: dict[str, Any] = {"fsync": False}
    else:
        bucket = request.getfixturevalue("s3_bucket")
        from curation.store.s3 import S3Store, make_s3_client

        base, args, kwargs = S3Store, (bucket.name,), {}

    def make(on_exists: Callable[[str, int], None] | None = None,
             on_put: Callable[[str], None] | None = None) -> Store:
        class Hooked(base):  # type: ignore[misc, valid-type]
            looks: dict[str, int] = {}

            def exists(self, zone: Zone, key: str) -> bool:
                self.looks[key] = self.looks.get(key, 0) + 1
                if on_exists:
                    on_exists(key, self.looks[key])
                return super().exists(zone, key)

            def put_bytes(self, zone: Zone, key: str, data: bytes) -> str:
                uri = super().put_bytes(zone, key, data)
                if on_put:
                    on_put(key)
                return uri

        extra = {"client": make_s3_client()} if request.param == "s3" else {}
        return Hooked(*args, **kwargs, **extra)

    catalog = Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    yield catalog, make
    catalog.dispose()


def _populate(catalog: Catalog, store: Store) -> None:
    ids = [add_series(catalog, store, n, patient=f"ANON0{n % 3}") for n in range(1, 5)]
    ids.append(add_series(catalog, store, 5, patient="ANON09", kind=SeriesKind.DX))
    add_round(catalog, ids[:3], {i: i % 2 for i in ids[:3]})


def _zone(store: Store, prefix: str) -> dict[str, bytes]:
    return {k: store.get_bytes(Zone.RELEASES, k) for k in store.list(Zone.RELEASES, prefix)}


def _publishes(catalog: Catalog) -> list[str]:
    with catalog.session() as s:
        return [e.subject for e in s.scalars(select(LineageEvent).where(LineageEvent.action == "publish"))]


def test_two_publishers_of_one_build_one_wins(backend):
    catalog, make = backend
    plain = make()
    _populate(catalog, plain)
    built = build(catalog, plain, ReleaseSpec("chest"))
    both_past_the_checks = threading.Barrier(2, timeout=60)

    def meet(key: str, n: int) -> None:  # the second look at the manifest: after the claim, before copying
        if key.endswith(FINAL + "manifest.json") and n == 2:
            both_past_the_checks.wait()

    def attempt() -> PublishResult | ReleaseExists:
        try:
            return publish(catalog, make(on_exists=meet), "chest", "1.0.0")
        except ReleaseExists as exc:
            return exc

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda _: attempt(), range(2)))
    won = [o for o in outcomes if isinstance(o, PublishResult)]
    lost = [o for o in outcomes if isinstance(o, ReleaseExists)]
    assert len(won) == 1 and len(lost) == 1, outcomes
    assert "already published" in str(lost[0])
    assert won[0].manifest_sha256 == built.manifest_sha256
    assert verify_tree(StoreTree(plain, FINAL), expected_sha256=built.manifest_sha256).ok
    assert _publishes(catalog) == ["release:chest@1.0.0"]
    assert not plain.exists(Zone.RELEASES, publishing_key("chest", "1.0.0"))
    assert list(plain.list(Zone.RELEASES, staging_prefix("chest", "1.0.0"))) == []
    assert [k for k in plain.list(Zone.RELEASES, "chest/") if not k.startswith(FINAL)] == []


def test_a_publisher_of_another_build_is_refused_and_the_first_builds_bytes_are_published(backend):
    catalog, make = backend
    plain = make()
    _populate(catalog, plain)
    first = build(catalog, plain, ReleaseSpec("chest", kinds=(SeriesKind.CR,)))
    n_files = len(list(plain.list(Zone.RELEASES, first.prefix))) - 1
    copied: list[str] = []
    rival: dict[str, Any] = {}

    def rebuild_and_publish(key: str) -> None:  # the first publisher has copied every file, not the manifest
        if not key.startswith(FINAL):
            return
        copied.append(key)
        if len(copied) != n_files:
            return
        rival["build"] = build(catalog, plain, ReleaseSpec("chest", version="1.0.0"))  # DX too: another build
        before = _zone(plain, FINAL)
        with pytest.raises(ReleaseExists, match="another build") as refused:
            publish(catalog, make(), "chest", "1.0.0")
        rival["refusal"], rival["unchanged"] = str(refused.value), _zone(plain, FINAL) == before

    done = publish(catalog, make(on_put=rebuild_and_publish), "chest", "1.0.0")
    assert rival["build"].manifest_sha256 != first.manifest_sha256
    assert rival["unchanged"], "the refused publisher wrote into the version's folder"
    assert first.manifest_sha256 in rival["refusal"]
    assert done.manifest_sha256 == first.manifest_sha256
    assert verify_tree(StoreTree(plain, FINAL), expected_sha256=first.manifest_sha256).ok
    assert _publishes(catalog) == ["release:chest@1.0.0"]
    # the rival build waits in staging (the winner leaves a build that is not its own), and stays unpublishable
    assert plain.exists(Zone.RELEASES, staging_prefix("chest", "1.0.0") + "manifest.json")
    with pytest.raises(ReleaseExists, match="already published"):
        publish(catalog, plain, "chest", "1.0.0")


def test_a_claim_left_by_a_killed_publisher_is_taken_over_by_the_same_build_only(backend):
    catalog, make = backend
    store = make()
    _populate(catalog, store)
    built = build(catalog, store, ReleaseSpec("chest", kinds=(SeriesKind.CR,)))
    claim = publishing_key("chest", "1.0.0")
    store.put_bytes(Zone.RELEASES, claim, json.dumps({"manifest_sha256": "0" * 64}).encode())
    with pytest.raises(ReleaseExists, match="delete .*publishing-1.0.0"):
        publish(catalog, store, "chest", "1.0.0")
    assert _zone(store, FINAL) == {}
    store.put_bytes(Zone.RELEASES, claim, json.dumps({"manifest_sha256": built.manifest_sha256}).encode())
    store.put_bytes(Zone.RELEASES, FINAL + "images/stray.dcm", b"from the killed publisher")
    done = publish(catalog, store, "chest", "1.0.0")
    assert done.manifest_sha256 == built.manifest_sha256
    assert verify_tree(StoreTree(store, FINAL), expected_sha256=built.manifest_sha256).ok
    assert not store.exists(Zone.RELEASES, claim)
