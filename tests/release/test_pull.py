"""`curate release pull`: a published release of de-identified DX DICOM copied from a LocalStore and from a real
S3 server (SeaweedFS) into a local folder that passes `curate release verify`; a pull killed with
SIGKILL resumes and fetches only what it lacked; damaged or extra files in the folder are repaired or
named; an object altered in the store is refused and named; unknown releases, missing stores and
folders holding another release are refused with exit status 2."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from curate.main import main
from curation.release.build import ReleaseSpec, build
from curation.release.layout import MANIFEST_JSON, DirTree
from curation.release.publish import publish
from curation.release.pull import StoreUnreachable, pull
from curation.release.verify import verify_tree
from curation.store import Store
from curation.store.s3 import S3Store, make_s3_client
from curation.vocabulary import Zone
from tests.fixtures.ports import free_ports
from tests.release.world import add_round, add_series, deidentified

ROOT = Path(__file__).resolve().parents[2]


def publish_chest(catalog, store: Store, series: int = 4, files: int = 3) -> tuple[str, int]:
    """chest@1.0.0 of `series` DX series of `files` images each, with a patient's identity in the raw
    zone and the platform de-identifier's output released, three series read; (manifest hash, files)."""
    ids = []
    for n in range(1, series + 1):
        ids.append(add_series(catalog, store, n, patient=f"ANON0{n}", files=files))
        deidentified(catalog, store, ids[-1], f"Doe^Pat{n}", files)
    add_round(catalog, ids[:3], {sid: sid % 2 for sid in ids[:3]})
    built = build(catalog, store, ReleaseSpec("chest"))
    done = publish(catalog, store, "chest", built.version)
    return done.manifest_sha256, done.files


def copy_to(source: Store, target: Store, prefix: str) -> None:
    """Upload a published release key by key (in parallel), manifest last, as publish writes it."""
    keys = [k for k in source.list(Zone.RELEASES, prefix) if not k.endswith("/" + MANIFEST_JSON)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: target.put_bytes(Zone.RELEASES, k, source.get_bytes(Zone.RELEASES, k)), keys))
    target.put_bytes(Zone.RELEASES, prefix + MANIFEST_JSON, source.get_bytes(Zone.RELEASES, prefix + MANIFEST_JSON))


def curate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "curate", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=False)


def files_in(dest: Path) -> dict[str, tuple[int, int]]:
    """Release files in a folder (temporary downloads left out) -> (inode, mtime_ns): unchanged when kept."""
    return {p: ((dest / p).stat().st_ino, (dest / p).stat().st_mtime_ns) for p in DirTree(dest).paths()
            if not p.rsplit("/", 1)[-1].startswith(".fetch-")}


def test_a_pulled_copy_verifies_and_a_second_pull_fetches_nothing(world, tmp_path, capsys, monkeypatch):
    catalog, store = world
    sha, n_files = publish_chest(catalog, store)
    dest = tmp_path / "copy"
    monkeypatch.setattr("curation.release.pull.PROGRESS_INTERVAL_S", 0.0)  # every file counts as a long pull
    assert main(["release", "pull", "chest@1.0.0", str(dest), "--store", str(store.root), "--json"]) == 0
    captured = capsys.readouterr()
    assert f"pull chest@1.0.0: {n_files}/{n_files} files, " in captured.err and " MB/s, " in captured.err
    out = json.loads(captured.out)
    assert (out["ok"], out["files"], out["fetched"], out["kept"], out["manifest_sha256"]) == (True, n_files, n_files,
                                                                                            0, sha)
    assert main(["release", "verify", str(dest)]) == 0  # checksums and every content check
    assert f"manifest SHA-256 {sha}" in capsys.readouterr().out
    before = files_in(dest)
    result = pull(store, "chest@1.0.0", dest, expected_sha256=sha)
    assert (result.fetched, result.kept, result.extra) == (0, n_files, [])
    assert files_in(dest) == before


def test_a_damaged_copy_is_repaired_and_extra_files_are_named_then_removed_on_request(world, tmp_path, capsys):
    catalog, store = world
    _, n_files = publish_chest(catalog, store)
    dest = tmp_path / "copy"
    pull(store, "chest@1.0.0", dest)
    images = sorted(p for p in DirTree(dest).paths() if p.startswith("images/"))
    flipped, deleted = dest / images[0], dest / images[1]
    flipped.write_bytes(flipped.read_bytes()[:-1] + bytes([flipped.read_bytes()[-1] ^ 1]))
    deleted.unlink()
    (dest / "notes.txt").write_text("mine")
    (dest / images[2]).with_name(".fetch-abc123").write_bytes(b"half a down")  # a killed pull's partial file
    assert main(["release", "pull", "chest@1.0.0", str(dest), "--store", str(store.root)]) == 0
    out = capsys.readouterr().out
    assert "fetched 2 " in out and f"kept {n_files - 2:,} already intact" in out
    assert "removed 1 partial downloads" in out and "extra: notes.txt: not in the release" in out
    report = verify_tree(DirTree(dest))
    assert [(p.kind, p.path) for p in report.problems] == [("extra", "notes.txt")]
    result = pull(store, "chest@1.0.0", dest, delete_extra=True)
    assert (result.fetched, result.extra, result.extra_removed) == (0, ["notes.txt"], True)
    assert verify_tree(DirTree(dest)).ok


def test_unknown_releases_missing_stores_other_releases_and_uncited_manifests_are_refused(world, tmp_path, capsys):
    catalog, store = world
    sha, _ = publish_chest(catalog, store, series=2)
    build(catalog, store, ReleaseSpec("other"))  # the same series under another name: another manifest
    publish(catalog, store, "other", "1.0.0")
    root = str(store.root)
    assert main(["release", "pull", "chest@2.0.0", str(tmp_path / "a"), "--store", root]) == 2
    assert "chest@2.0.0 is not published" in (err := capsys.readouterr().err) and "chest: 1.0.0" in err
    assert main(["release", "pull", "chest@1.0.0", str(tmp_path / "a"), "--store", str(tmp_path / "nowhere")]) == 2
    assert "store folder" in capsys.readouterr().err and not (tmp_path / "nowhere").exists()
    assert main(["release", "pull", "chest@1.0.0", str(tmp_path / "b"), "--store", root,
                 "--expect-sha256", "0" * 64]) == 1
    assert f"manifest SHA-256 {sha} is not the cited" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
    pull(store, "other@1.0.0", tmp_path / "c")
    assert main(["release", "pull", "chest@1.0.0", str(tmp_path / "c"), "--store", root]) == 2
    assert "holds another release" in capsys.readouterr().err
    assert verify_tree(DirTree(tmp_path / "c")).ok  # left as it was


@pytest.mark.server
def test_a_pull_from_s3_killed_partway_resumes_and_fetches_only_what_was_missing(world, s3_bucket, tmp_path):
    """The acceptance test: `curate release pull` from SeaweedFS killed with SIGKILL, run again."""
    catalog, store = world
    sha, n_files = publish_chest(catalog, store, series=8, files=50)
    copy_to(store, s3_bucket.store, "chest/1.0.0/")
    dest, uri = tmp_path / "copy", f"s3://{s3_bucket.name}"
    args = [sys.executable, "-m", "curate", "release", "pull", "chest@1.0.0", str(dest), "--store", uri, "--jobs", "2"]
    first = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while len(files_in(dest) if dest.is_dir() else {}) < 10 and first.poll() is None:
            time.sleep(0.005)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert first.returncode == -signal.SIGKILL, f"the pull ended (exit {first.returncode}) before it was killed"
    assert not (dest / MANIFEST_JSON).exists()  # killed partway: not a complete copy
    kept = files_in(dest)
    assert 10 <= len(kept) < n_files
    second = curate("release", "pull", "chest@1.0.0", str(dest), "--store", uri, "--jobs", "2", "--json",
                    "--expect-sha256", sha)
    assert second.returncode == 0, second.stderr
    out = json.loads(second.stdout)
    assert (out["kept"], out["fetched"], out["files"], out["extra"]) == (len(kept), n_files - len(kept), n_files, [])
    now = files_in(dest)
    assert {p: now[p] for p in kept} == kept  # the files the killed pull finished were not fetched again
    assert not [p for p in DirTree(dest).paths() if ".fetch-" in p]
    verified = curate("release", "verify", str(dest))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"{n_files} files checked" in verified.stdout and sha in verified.stdout


@pytest.mark.server
def test_an_object_altered_in_s3_is_refused_and_named_and_nothing_claims_completeness(world, s3_bucket, tmp_path):
    catalog, store = world
    _, n_files = publish_chest(catalog, store)
    s3 = s3_bucket.store
    copy_to(store, s3, "chest/1.0.0/")
    target = sorted(k for k in s3.list(Zone.RELEASES, "chest/1.0.0/images/"))[1]
    original = s3.get_bytes(Zone.RELEASES, target)
    s3.put_bytes(Zone.RELEASES, target, original[:-1] + bytes([original[-1] ^ 1]))
    dest = tmp_path / "copy"
    run = curate("release", "pull", "chest@1.0.0", str(dest), "--store", f"s3://{s3_bucket.name}", "--json")
    relative = target.removeprefix("chest/1.0.0/")
    assert run.returncode == 1
    assert f"failed: {relative}: fetched" in run.stderr
    out = json.loads(run.stdout)
    assert [f["path"] for f in out["failed"]] == [relative] and out["fetched"] == n_files - 1
    assert not (dest / MANIFEST_JSON).exists() and not (dest / relative).exists()
    assert not [p for p in DirTree(dest).paths() if ".fetch-" in p]
    s3.put_bytes(Zone.RELEASES, target, original)  # the publisher restores it: the pull completes
    result = pull(f"s3://{s3_bucket.name}", "chest@1.0.0", dest)
    assert (result.fetched, result.kept) == (1, n_files - 1)
    assert verify_tree(DirTree(dest)).ok


@pytest.mark.server
def test_an_unreachable_s3_store_is_named(s3_bucket, tmp_path):
    closed = f"http://127.0.0.1:{free_ports(1)[0]}"  # nothing listens there
    store = S3Store(s3_bucket.name, client=make_s3_client(closed, retries={"max_attempts": 1}, connect_timeout=2))
    with pytest.raises(StoreUnreachable, match=f"cannot read s3://{s3_bucket.name}"):
        pull(store, "chest@1.0.0", tmp_path / "copy")
    assert not (tmp_path / "copy").exists()
