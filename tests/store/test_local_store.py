"""What only the local backend has: crash-safe writes on a real file system, a private vault,
temp-file sweeping, bulk mode without per-object fsync, and the URI forms of open_store."""
from __future__ import annotations

import errno
import os
import pickle
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from curation.store import LocalStore, ObjectNotFound, Zone, open_store
from curation.store.base import TEMP_PREFIX, validate_key

BIG = 96 * 1024 * 1024

WRITER = r"""
import sys
from curation.store import LocalStore, Zone
store = LocalStore(sys.argv[1])
data = b"n" * int(sys.argv[2])
store.put_bytes(Zone.RAW, "big/object", data)
print("done", flush=True)
"""


def _temps(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(TEMP_PREFIX)]


def test_writer_killed_mid_write_leaves_no_partial_object(tmp_path: Path) -> None:
    root = tmp_path / "store"
    LocalStore(root).put_bytes(Zone.RAW, "big/object", b"old version")
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(BIG)], stdout=subprocess.PIPE,
                            cwd=Path(__file__).resolve().parents[2])
    final = root / "raw" / "big" / "object"
    # Kill as soon as new bytes land anywhere (a temp file, or the final name if writes were not
    # atomic): the writer is then provably mid-write.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            temps = _temps(root / "raw")
            if (temps and temps[0].stat().st_size > 0) or final.stat().st_size != len(b"old version"):
                break
        except FileNotFoundError:
            pass
        time.sleep(0.001)
    assert proc.poll() is None, "the writer finished before it could be killed; the object is too small"
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    store = LocalStore(root)
    assert store.get_bytes(Zone.RAW, "big/object") == b"old version"
    [temp] = _temps(root / "raw")
    assert 0 < temp.stat().st_size < BIG  # a partial write exists, but only under a temp name
    assert store.size(Zone.RAW, "big/object") == len(b"old version")
    assert list(store.list(Zone.RAW)) == ["big/object"]  # the stray temp file is not listed
    assert store.sweep_temp(older_than_s=3600) == 0  # too young: could be a write in progress
    assert store.sweep_temp(older_than_s=0) == 1
    assert _temps(root) == []
    assert store.get_bytes(Zone.RAW, "big/object") == b"old version"


def test_vault_directory_and_objects_are_private(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        store = LocalStore(tmp_path / "s")
        src = tmp_path / "secret.bin"
        src.write_bytes(b"key material")
        store.put_bytes(Zone.VAULT, "pseudonym.key", b"k")
        store.put_file(Zone.VAULT, "reid/map.enc", src)
        store.put_bytes(Zone.DEID, "public", b"p")
    finally:
        os.umask(old_umask)
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(tmp_path / "s" / "vault") == 0o700
    assert mode(tmp_path / "s" / "vault" / "pseudonym.key") == 0o600
    assert mode(tmp_path / "s" / "vault" / "reid" / "map.enc") == 0o600
    assert mode(tmp_path / "s" / "deid" / "public") == 0o644


def test_existing_vault_with_loose_mode_is_tightened(tmp_path: Path) -> None:
    (tmp_path / "s" / "vault").mkdir(parents=True, mode=0o755)
    os.chmod(tmp_path / "s" / "vault", 0o755)
    LocalStore(tmp_path / "s")
    assert stat.S_IMODE((tmp_path / "s" / "vault").stat().st_mode) == 0o700


def test_zone_directories_and_local_paths(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == sorted(z.value for z in Zone)
    store.put_bytes(Zone.RAW, "ab/cd.dcm", b"x")
    assert store.local_path(Zone.RAW, "ab/cd.dcm") == tmp_path / "s" / "raw" / "ab" / "cd.dcm"
    assert store.uri_for(Zone.RAW, "ab/cd.dcm") == (tmp_path / "s" / "raw" / "ab" / "cd.dcm").as_uri()


def test_deferred_sync_writes_atomically_and_restores_fsync(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    src = tmp_path / "f"
    src.write_bytes(b"file")
    with store.deferred_sync():
        assert store.fsync is False
        store.put_bytes(Zone.RAW, "a", b"bytes")
        store.put_file(Zone.RAW, "b/c", src)
    assert store.fsync is True
    assert store.get_bytes(Zone.RAW, "a") == b"bytes" and store.get_bytes(Zone.RAW, "b/c") == b"file"
    assert _temps(tmp_path / "s") == []


def test_directory_removed_behind_the_store_is_recreated(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    store.put_bytes(Zone.RAW, "d/x", b"1")
    store.delete(Zone.RAW, "d/x")
    (tmp_path / "s" / "raw" / "d").rmdir()
    store.put_bytes(Zone.RAW, "d/y", b"2")
    assert store.get_bytes(Zone.RAW, "d/y") == b"2"


def test_key_that_is_a_directory_is_not_an_object(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    store.put_bytes(Zone.RAW, "dir/obj", b"x")
    assert not store.exists(Zone.RAW, "dir") and store.size(Zone.RAW, "dir") is None
    with pytest.raises(ObjectNotFound):
        store.get_bytes(Zone.RAW, "dir")


def test_open_store_uri_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = open_store(str(tmp_path / "a"))
    assert isinstance(a, LocalStore) and a.root == tmp_path / "a" and a.uri == (tmp_path / "a").as_uri()
    b = open_store((tmp_path / "b c").as_uri())  # percent-encoded space
    assert isinstance(b, LocalStore) and b.root == tmp_path / "b c"
    assert open_store(tmp_path / "c", fsync=False).fsync is False
    monkeypatch.chdir(tmp_path)
    assert open_store("rel").root == tmp_path / "rel"
    with pytest.raises(ValueError, match="unsupported scheme"):
        open_store("ftp://host/x")
    with pytest.raises(ValueError, match="remote host"):
        open_store("file://otherhost/x")
    with pytest.raises(ValueError, match="no bucket"):
        open_store("s3:///prefix")


def test_open_store_s3_uri_builds_prefix_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURATE_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    store = open_store("s3://bucket-x/site/a/")
    assert store.uri == "s3://bucket-x/site/a"
    assert store.uri_for(Zone.RAW, "k/v") == "s3://bucket-x/site/a/raw/k/v"
    assert store.local_path(Zone.RAW, "k/v") is None
    assert open_store("s3://bucket-x").uri_for(Zone.VAULT, "k") == "s3://bucket-x/vault/k"


def test_object_not_found_survives_pickling(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    with pytest.raises(ObjectNotFound) as info:
        store.get_bytes(Zone.DEID, "k/v")
    copy = pickle.loads(pickle.dumps(info.value))
    assert (type(copy), copy.zone, copy.key, str(copy)) == (ObjectNotFound, Zone.DEID, "k/v", str(info.value))
    assert copy.errno == errno.ENOENT


@pytest.mark.parametrize("key", ["a", "a/b", "ab/cd/ef.dcm", "with space/é", "..a/b..", ".hidden"])
def test_good_keys_are_accepted(key: str) -> None:
    assert validate_key(key) == key
