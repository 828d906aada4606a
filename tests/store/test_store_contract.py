"""One contract, two backends: every test here runs against LocalStore and against S3Store on a
real S3 server (SeaweedFS on loopback, started by the ``s3_server`` fixture)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from curation.store import ObjectNotFound, Store, Zone, open_store

MiB = 1024 * 1024


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "local":
        return open_store(str(tmp_path / "store"))
    bucket = request.getfixturevalue("s3_bucket")
    # Built from the environment like production; a small multipart threshold so the multipart
    # path of put_file/download runs on a test-sized file.
    return open_store(f"s3://{bucket.name}/site-a", multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)


def test_put_get_roundtrip_in_every_zone(store: Store) -> None:
    for zone in Zone:
        uri = store.put_bytes(zone, "a/b/c.bin", b"\x00\x01payload")
        assert store.get_bytes(zone, "a/b/c.bin") == b"\x00\x01payload"
        assert uri == store.uri_for(zone, "a/b/c.bin")
        assert uri.endswith(f"/{zone.value}/a/b/c.bin") and uri.startswith(store.uri)
        assert store.size(zone, "a/b/c.bin") == 9
        assert store.exists(zone, "a/b/c.bin")


def test_zone_given_as_string_and_unknown_zone(store: Store) -> None:
    store.put_bytes("deid", "k", b"v")  # type: ignore[arg-type]
    assert store.get_bytes(Zone.DEID, "k") == b"v"
    with pytest.raises(ValueError, match="unknown zone 'tmp'"):
        store.get_bytes("tmp", "k")  # type: ignore[arg-type]


def test_empty_object(store: Store) -> None:
    store.put_bytes(Zone.RAW, "empty", b"")
    assert store.get_bytes(Zone.RAW, "empty") == b""
    assert store.size(Zone.RAW, "empty") == 0
    assert store.exists(Zone.RAW, "empty")


def test_put_file_download_and_seekable_open_read(store: Store, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(300_000))
    store.put_file(Zone.RAW, "objects/x", src)
    assert store.size(Zone.RAW, "objects/x") == 300_000
    out = store.download(Zone.RAW, "objects/x", tmp_path / "deep" / "out.bin")
    assert out == tmp_path / "deep" / "out.bin"
    assert out.read_bytes() == src.read_bytes()
    assert [p.name for p in out.parent.iterdir()] == ["out.bin"]  # no temp file left beside it
    with store.open_read(Zone.RAW, "objects/x") as fh:
        fh.seek(1000)
        assert fh.read(10) == src.read_bytes()[1000:1010]
        fh.seek(0)
        assert fh.read() == src.read_bytes()


def test_big_file_goes_through_multipart_and_back(store: Store, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(12 * MiB))  # above the 5 MiB multipart threshold of the S3 store
    store.put_file(Zone.DERIVED, "vol/big.bin", src)
    assert store.size(Zone.DERIVED, "vol/big.bin") == 12 * MiB
    assert store.download(Zone.DERIVED, "vol/big.bin", tmp_path / "back.bin").read_bytes() == src.read_bytes()


def test_put_file_of_missing_source_names_it(store: Store, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="absent.bin"):
        store.put_file(Zone.RAW, "k", tmp_path / "absent.bin")
    assert not store.exists(Zone.RAW, "k")


def test_overwrite_replaces(store: Store) -> None:
    store.put_bytes(Zone.DEID, "k", b"one")
    store.put_bytes(Zone.DEID, "k", b"two!")
    assert store.get_bytes(Zone.DEID, "k") == b"two!"
    assert store.size(Zone.DEID, "k") == 4
    assert list(store.list(Zone.DEID)) == ["k"]


def test_list_is_sorted_prefix_filtered_and_zone_scoped(store: Store) -> None:
    # 'a-b' < 'a/1' < 'a0' in byte order: a listing that walks directory by directory gets this wrong.
    keys = ["b/2", "a/1", "é/x", "a/10", "a0", "c", "a-b", "a/1x/deep"]
    for key in keys:
        store.put_bytes(Zone.DERIVED, key, b"x")
    store.put_bytes(Zone.RAW, "a/zzz", b"x")
    assert list(store.list(Zone.DERIVED)) == sorted(keys) == [
        "a-b", "a/1", "a/10", "a/1x/deep", "a0", "b/2", "c", "é/x"]
    assert list(store.list(Zone.DERIVED, "a/")) == ["a/1", "a/10", "a/1x/deep"]
    assert list(store.list(Zone.DERIVED, "a/1")) == ["a/1", "a/10", "a/1x/deep"]  # plain string prefix
    assert list(store.list(Zone.DERIVED, "a")) == ["a-b", "a/1", "a/10", "a/1x/deep", "a0"]
    assert list(store.list(Zone.DERIVED, "nothing/")) == []
    assert list(store.list(Zone.RAW)) == ["a/zzz"]
    assert list(store.list(Zone.RELEASES)) == []


def test_unicode_key_roundtrip(store: Store) -> None:
    key = "Müller/ünïcode file (1).dcm"
    store.put_bytes(Zone.RAW, key, b"u")
    assert store.get_bytes(Zone.RAW, key) == b"u"
    assert list(store.list(Zone.RAW, "Müller/")) == [key]


def test_missing_objects_raise_specific_errors(store: Store, tmp_path: Path) -> None:
    store.put_bytes(Zone.DEID, "nope", b"in another zone")
    calls = {
        "get_bytes": lambda: store.get_bytes(Zone.RAW, "nope"),
        "open_read": lambda: store.open_read(Zone.RAW, "nope"),
        "download": lambda: store.download(Zone.RAW, "nope", tmp_path / "n"),
        "delete": lambda: store.delete(Zone.RAW, "nope"),
    }
    for name, call in calls.items():
        with pytest.raises(ObjectNotFound) as info:
            call()
        assert isinstance(info.value, FileNotFoundError), name
        assert "'nope'" in str(info.value) and "'raw'" in str(info.value), name
        assert (info.value.zone, info.value.key) == (Zone.RAW, "nope")
    assert not (tmp_path / "n").exists()
    assert store.exists(Zone.RAW, "nope") is False and store.size(Zone.RAW, "nope") is None
    store.delete(Zone.RAW, "nope", missing_ok=True)
    assert store.get_bytes(Zone.DEID, "nope") == b"in another zone"


def test_delete(store: Store) -> None:
    store.put_bytes(Zone.RAW, "d/e", b"x")
    store.put_bytes(Zone.RAW, "d/f", b"y")
    store.delete(Zone.RAW, "d/e")
    assert not store.exists(Zone.RAW, "d/e")
    assert list(store.list(Zone.RAW)) == ["d/f"]


BAD_KEYS = {
    "../escape": "'..' segment",
    "a/../b": "'..' segment",
    "a/./b": "'.' segment",
    "/abs": "absolute",
    "a//b": "empty segment",
    "a/": "empty segment",
    "": "empty",
    "a\\b": "backslash",
    "a\x00b": "NUL",
    "a\nb": "control character",
    ".curate-tmp.x": "reserved",
    "x" * 300: "longer than 255",
}


def test_bad_keys_are_refused_by_every_method(store: Store, tmp_path: Path) -> None:
    # One test over all bad keys (not one per key): each S3 case costs a fresh bucket.
    src = tmp_path / "src"
    src.write_bytes(b"x")
    for key, problem in BAD_KEYS.items():
        calls = {
            "put_bytes": lambda: store.put_bytes(Zone.RAW, key, b"x"),
            "put_file": lambda: store.put_file(Zone.RAW, key, src),
            "get_bytes": lambda: store.get_bytes(Zone.RAW, key),
            "open_read": lambda: store.open_read(Zone.RAW, key),
            "download": lambda: store.download(Zone.RAW, key, tmp_path / "out"),
            "exists": lambda: store.exists(Zone.RAW, key),
            "size": lambda: store.size(Zone.RAW, key),
            "delete": lambda: store.delete(Zone.RAW, key, missing_ok=True),
            "uri_for": lambda: store.uri_for(Zone.RAW, key),
        }
        for name, call in calls.items():
            with pytest.raises(ValueError, match=problem):
                call()
    assert list(store.list(Zone.RAW)) == []
    assert not (tmp_path / "out").exists()


def test_bad_list_prefixes_are_refused(store: Store) -> None:
    for prefix in ["../", "a/../", "/a", "a//", "a\\", "a\x00"]:
        with pytest.raises(ValueError):
            list(store.list(Zone.RAW, prefix))


def test_put_if_absent_lets_exactly_one_racing_writer_create(store: Store) -> None:
    """Eight writers at once: one creates the object, the others are told it exists, and the object
    is the winner's bytes whole (a publisher's manifest, the vault secret)."""
    from concurrent.futures import ThreadPoolExecutor

    def attempt(n: int) -> bool:
        return store.put_bytes_if_absent(Zone.VAULT, "deid/site_secret", f"writer {n} ".encode() * 1000)

    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(attempt, range(8)))
    assert won.count(True) == 1
    assert store.get_bytes(Zone.VAULT, "deid/site_secret") == f"writer {won.index(True)} ".encode() * 1000
    assert store.put_bytes_if_absent(Zone.VAULT, "deid/site_secret", b"late") is False
    assert list(store.list(Zone.VAULT)) == ["deid/site_secret"]  # no temporary left behind
