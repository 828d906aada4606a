"""One contract, two backends: every test runs against LocalStore and against S3Store on a real
S3 server (SeaweedFS on loopback)."""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from curation.store import LocalStore, ObjectNotFound, Zone, open_store


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return open_store(str(tmp_path / "store"))
    bucket = request.getfixturevalue("s3_bucket")
    return open_store(f"s3://{bucket}/site-a")


def test_put_get_roundtrip_in_every_zone(store):
    for zone in Zone:
        uri = store.put_bytes(zone, "a/b/c.bin", b"\x00\x01payload")
        assert store.get_bytes(zone, "a/b/c.bin") == b"\x00\x01payload"
        assert uri == store.uri_for(zone, "a/b/c.bin")
        assert store.size(zone, "a/b/c.bin") == 9


def test_put_file_download_and_open_read(store, tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(300_000))
    store.put_file(Zone.RAW, "objects/x", src)
    out = store.download(Zone.RAW, "objects/x", tmp_path / "deep" / "out.bin")
    assert out.read_bytes() == src.read_bytes()
    with store.open_read(Zone.RAW, "objects/x") as fh:
        fh.seek(1000)
        assert fh.read(10) == src.read_bytes()[1000:1010]


def test_overwrite_replaces(store):
    store.put_bytes(Zone.DEID, "k", b"one")
    store.put_bytes(Zone.DEID, "k", b"two")
    assert store.get_bytes(Zone.DEID, "k") == b"two"


def test_list_is_sorted_prefix_filtered_and_zone_scoped(store):
    for key in ["b/2", "a/1", "a/10", "c"]:
        store.put_bytes(Zone.DERIVED, key, b"x")
    store.put_bytes(Zone.RAW, "a/zzz", b"x")
    assert list(store.list(Zone.DERIVED)) == ["a/1", "a/10", "b/2", "c"]
    assert list(store.list(Zone.DERIVED, "a/")) == ["a/1", "a/10"]
    assert list(store.list(Zone.RELEASES)) == []


def test_missing_objects_raise_specific_errors(store, tmp_path):
    for call in (lambda: store.get_bytes(Zone.RAW, "nope"), lambda: store.open_read(Zone.RAW, "nope"),
                 lambda: store.download(Zone.RAW, "nope", tmp_path / "n"), lambda: store.delete(Zone.RAW, "nope")):
        with pytest.raises(ObjectNotFound) as info:
            call()
        assert isinstance(info.value, FileNotFoundError)
        assert "nope" in str(info.value) and "raw" in str(info.value)
    assert store.exists(Zone.RAW, "nope") is False and store.size(Zone.RAW, "nope") is None
    store.delete(Zone.RAW, "nope", missing_ok=True)


def test_delete(store):
    store.put_bytes(Zone.RAW, "d/e", b"x")
    store.delete(Zone.RAW, "d/e")
    assert not store.exists(Zone.RAW, "d/e")


@pytest.mark.parametrize("key", ["../escape", "/abs", "a//b", "a/./b", "a\\b", "a\x00b", "", "a/"])
def test_bad_keys_are_refused_by_both_backends(store, key):
    with pytest.raises(ValueError):
        store.put_bytes(Zone.RAW, key, b"x")


def test_vault_is_private_locally(tmp_path):
    store = LocalStore(tmp_path / "s")
    store.put_bytes(Zone.VAULT, "secret", b"k")
    assert stat.S_IMODE((tmp_path / "s" / "vault").stat().st_mode) == 0o700


WRITER = r"""
import sys
from pathlib import Path
from curation.store import LocalStore, Zone
store = LocalStore(sys.argv[1])
class Slow:
    def __init__(self): self.n = 0
data = b"x" * (256 * 1024 * 1024)
print("writing", flush=True)
store.put_bytes(Zone.RAW, "big/object", data)
print("done", flush=True)
"""


def test_killed_writer_leaves_no_partial_object(tmp_path):
    root = tmp_path / "store"
    LocalStore(root).put_bytes(Zone.RAW, "big/object", b"old")
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(root)], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"writing"
    time.sleep(0.3)  # mid-write of 256 MiB
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = LocalStore(root)
    # The reader sees the old object or a complete new one, never a partial one.
    assert store.get_bytes(Zone.RAW, "big/object") in (b"old", b"x" * (256 * 1024 * 1024))
    assert list(store.list(Zone.RAW)) == ["big/object"]
    temps = [p for p in (root / "raw").rglob("*") if p.name.startswith(".curate-tmp.")]
    assert store.sweep_temp(older_than_s=0) == len(temps)
    assert not [p for p in (root / "raw").rglob("*") if p.name.startswith(".curate-tmp.")]


def test_open_store_uri_forms(tmp_path):
    assert isinstance(open_store(str(tmp_path / "a")), LocalStore)
    assert isinstance(open_store((tmp_path / "b").as_uri()), LocalStore)
    with pytest.raises(ValueError, match="unsupported"):
        open_store("ftp://host/x")
