"""Release of a 10,000-instance site: `build` and the build's verify step (`verify_build`: checksums
plus every content check) on a LocalStore, then `curate release pull` of the published release from a
real S3 server (SeaweedFS on loopback) side by side with a plain `aws s3 sync`-style copy in boto3:
list the prefix, download every object with a thread pool of the same size, verify nothing.

    .venv/bin/python benchmarks/release.py [--series 200 --slices 50] [--jobs 16] [--repeats 2] [--out r.json]

The site is made directly, as tests/release/world.py makes its worlds: catalog rows for each series
(de-identified, classified, approved), and for every instance a real CT file (pydicom's CT_small.dcm,
128 x 128, its pixels varied and a patient's identity put in) written to the raw zone and run through
the platform's de-identifier (`deid.engine.Deidentifier`) into the deid zone; one labels round over a
fifth of the series, so the release has SR objects for verify's dciodvfy. Each timed step runs in a
child process of its own, so its peak RSS (from wait4) is that step's alone.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.fixtures.s3 and tests.release.world: the servers and worlds the tests use

NAME = "bench"
SECRET = b"release-benchmark-secret"


def make_site(work: Path, series: int, slices: int, seed: int) -> dict[str, Any]:
    """The curated site: catalog + raw and deid zones (see the module docstring); two series a patient."""
    import hashlib
    import io

    import numpy as np
    import pydicom
    from pydicom.data import get_testdata_file

    from curation.catalog import Catalog, Instance, StageRecord
    from curation.store import LocalStore
    from curation.vocabulary import SeriesKind, Zone
    from deid.engine import Deidentifier
    from tests.release.world import add_round, add_series

    catalog = Catalog(f"sqlite:///{work / 'catalog.sqlite'}")
    store = LocalStore(work / "store", fsync=False)  # made once, untimed: one sync at the end
    template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    deidentifier, rng = Deidentifier("default", SECRET), np.random.default_rng(seed)
    ids, raw_bytes = [], 0
    for n in range(1, series + 1):
        sid = add_series(catalog, store, n, patient=f"P{n}", kind=SeriesKind.CT, files=slices)
        ids.append(sid)
        study, uid = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
        with catalog.session() as s:
            outputs = []
            for i, inst in enumerate(s.query(Instance).filter_by(series_id=sid).order_by(Instance.id)):
                ds = template.copy()
                ds.PatientName, ds.PatientID = f"Doe^Patient{(n + 1) // 2}", f"MRN{(n + 1) // 2:06d}"
                ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.InstanceNumber = study, uid, i + 1
                ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
                noise = rng.integers(0, 8, size=ds.pixel_array.shape, dtype=np.int16)
                ds.PixelData = (ds.pixel_array + noise).astype(ds.pixel_array.dtype).tobytes()
                buf = io.BytesIO()
                ds.save_as(buf, enforce_file_format=True)
                raw = buf.getvalue()
                inst.raw_key, inst.sha256 = f"site/{n}/{i}.dcm", hashlib.sha256(raw).hexdigest()
                store.put_bytes(Zone.RAW, inst.raw_key, raw)
                raw_bytes += len(raw)
                out = deidentifier.deidentify(raw)
                if out.status != "written":
                    raise RuntimeError(f"the de-identifier refused instance {i} of series {n}: {out.reason}")
                outputs.append(f"{out.pseudonym}/{out.study_uid}/{out.series_uid}/{out.sop_uid}.dcm")
                store.put_bytes(Zone.DEID, outputs[-1], out.data)
            record = s.query(StageRecord).filter_by(stage="deid", subject_id=sid).one()
            for placeholder in record.metrics["outputs"]:  # add_series' stand-in bytes: not DICOM
                store.delete(Zone.DEID, placeholder)
            record.metrics = {"outputs": sorted(outputs)}
    read = ids[::5]
    add_round(catalog, read, {sid: sid % 2 for sid in read})
    store.sync()
    catalog.dispose()
    return {"series": series, "instances": series * slices, "patients": (series + 1) // 2,
            "raw_bytes": raw_bytes, "series_read": len(read)}


def _local(work: Path) -> tuple[Any, Any]:
    from curation.catalog import Catalog
    from curation.store import open_store

    return Catalog(f"sqlite:///{work / 'catalog.sqlite'}"), open_store(str(work / "store"))


def step(name: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One timed step, run in this (child) process; returns its figures."""
    from curation.release.layout import DirTree, StoreTree, release_prefix, staging_prefix
    from curation.store import open_store
    from curation.vocabulary import Zone

    if name == "site":
        t = time.perf_counter()
        out = make_site(work, args.series, args.slices, args.seed)
        return {**out, "seconds": time.perf_counter() - t}
    if name in ("build", "verify_build", "verify_tree", "publish"):
        from curation.release.build import ReleaseSpec, build
        from curation.release.publish import publish
        from curation.release.verify import verify_build, verify_tree

        catalog, store = _local(work)
        t = time.perf_counter()
        if name == "build":
            built = build(catalog, store, ReleaseSpec(NAME, version="1.0.0"))
            out: dict[str, Any] = {"counts": built.counts, "manifest_sha256": built.manifest_sha256}
        elif name == "publish":
            done = publish(catalog, store, NAME, "1.0.0")
            out = {"files": done.files, "manifest_sha256": done.manifest_sha256}
        else:
            report = (verify_build(catalog, store, NAME, "1.0.0") if name == "verify_build" else
                      verify_tree(StoreTree(store, staging_prefix(NAME, "1.0.0"))))
            out = {"ok": report.ok, "files_checked": report.files_checked,
                   "problems": [str(p) for p in report.problems[:5]]}
        return {**out, "seconds": time.perf_counter() - t}
    s3 = open_store(f"s3://{args.bucket}")
    prefix = release_prefix(NAME, "1.0.0")
    if name == "upload":  # the published release, copied to S3 key by key, manifest last
        from concurrent.futures import ThreadPoolExecutor

        _, store = _local(work)
        keys = list(store.list(Zone.RELEASES, prefix))
        t = time.perf_counter()
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(lambda k: s3.put_bytes(Zone.RELEASES, k, store.get_bytes(Zone.RELEASES, k)),
                          [k for k in keys if not k.endswith("/manifest.json")]))
        s3.put_bytes(Zone.RELEASES, prefix + "manifest.json", store.get_bytes(Zone.RELEASES, prefix + "manifest.json"))
        return {"files": len(keys), "seconds": time.perf_counter() - t}
    dest = work / name
    shutil.rmtree(dest, ignore_errors=True)
    if name == "pull":
        from curation.release.pull import pull

        t = time.perf_counter()
        result = pull(s3, f"{NAME}@1.0.0", dest, jobs=args.jobs)
        return {"files": result.fetched, "bytes": result.fetched_bytes, "seconds": time.perf_counter() - t}
    if name == "copy":
        t = time.perf_counter()
        files, size = boto3_copy(s3.client, args.bucket, s3.uri_for(Zone.RELEASES, prefix.rstrip("/")), dest, args.jobs)
        return {"files": files, "bytes": size, "seconds": time.perf_counter() - t}
    if name == "verify_pulled":  # not part of pull: it hashed every file on arrival; a second pass costs this
        from curation.release.verify import verify_tree

        t = time.perf_counter()
        report = verify_tree(DirTree(work / "pull"))
        return {"ok": report.ok, "files_checked": report.files_checked, "seconds": time.perf_counter() - t}
    raise ValueError(f"unknown step {name!r}")


def boto3_copy(client: Any, bucket: str, uri: str, dest: Path, jobs: int) -> tuple[int, int]:
    """The baseline: what `aws s3 sync s3://.../bench/1.0.0 DEST` does into an empty folder, in boto3:
    list the prefix, GET every object on `jobs` threads, stream it to its file; nothing verified."""
    from concurrent.futures import ThreadPoolExecutor

    prefix = uri.removeprefix(f"s3://{bucket}/") + "/"
    keys = [item["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for item in page.get("Contents", [])]

    def get(key: str) -> int:
        target = dest / key[len(prefix):]
        target.parent.mkdir(parents=True, exist_ok=True)
        body, size = client.get_object(Bucket=bucket, Key=key)["Body"], 0
        with open(target, "wb") as out:
            for chunk in body.iter_chunks(1 << 20):
                size += out.write(chunk)
        return size

    with ThreadPoolExecutor(jobs) as pool:
        sizes = list(pool.map(get, keys))
    return len(keys), sum(sizes)


def run_step(name: str, work: Path, args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    """Run `name` in a child process: its figures and its own peak RSS (wait4's rusage)."""
    cmd = [sys.executable, __file__, "--step", name, "--work", str(work), "--bucket", args.bucket or "",
           "--jobs", str(args.jobs), "--series", str(args.series), "--slices", str(args.slices),
           "--seed", str(args.seed)]
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, stdout=out, env=env, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode()
    if proc.returncode != 0:
        raise RuntimeError(f"step {name} exited {proc.returncode}: {text[-2000:]}")
    figures = json.loads(text.strip().splitlines()[-1])
    figures["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)  # kB on Linux
    print(f"bench: {name}: {figures['seconds']:.1f} s, peak RSS {figures['peak_rss_mb']} MB", file=sys.stderr)
    return figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=int, default=200)
    ap.add_argument("--slices", type=int, default=50, help="instances per series (default: 200 x 50 = 10,000)")
    ap.add_argument("--jobs", type=int, default=16, help="threads of pull and of the boto3 copy alike")
    ap.add_argument("--repeats", type=int, default=2, help="copy and pull alternate this many times each")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temp dir)")
    ap.add_argument("--out", type=Path, default=None, help="write the figures as JSON here too")
    ap.add_argument("--step", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--bucket", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.step:
        figures = step(args.step, args.work, args)
        print(json.dumps(figures, default=str))
        return 0

    from tests.fixtures.s3 import start_s3

    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="bench-release-", dir=args.workdir))
    server = start_s3(work / "s3")
    try:
        args.bucket = server.new_bucket("bench")
        env = {**os.environ, **server.env()}
        res: dict[str, Any] = {"jobs": args.jobs, "cpus": os.cpu_count(), "load_before": load_before}
        for name in ("site", "build", "verify_tree", "verify_build", "publish", "upload"):
            res[name] = run_step(name, work, args, env)
        for r in range(args.repeats):
            for name in ("copy", "pull"):
                res[f"{name}_{r}"] = run_step(name, work, args, env)
        res["verify_pulled"] = run_step("verify_pulled", work, args, env)
        res["load_after"] = os.getloadavg()
        print(json.dumps(res, indent=2, default=str))
        print(table(res, args.repeats))
        if args.out:
            args.out.write_text(json.dumps(res, indent=2, default=str))
        return 0
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def table(res: dict[str, Any], repeats: int) -> str:
    """The markdown rows of docs/benchmarks.md."""
    files, size = res["publish"]["files"] + 1, res["copy_0"]["bytes"]
    rows = ["| step | seconds | files/s | MB/s | peak RSS |", "|---|---|---|---|---|"]
    for key in ("build", "verify_tree", "verify_build", "publish", "upload",
                *(f"{n}_{r}" for r in range(repeats) for n in ("copy", "pull")), "verify_pulled"):
        s = res[key]["seconds"]
        rows.append(f"| {key} | {s:.1f} | {files / s:,.0f} | {size / 1e6 / s:,.1f} | {res[key]['peak_rss_mb']} MB |")
    best = {n: min(res[f"{n}_{r}"]["seconds"] for r in range(repeats)) for n in ("copy", "pull")}
    rows.append(f"\n{files:,} files, {size / 1e6:,.1f} MB; best pull / best copy: {best['pull'] / best['copy']:.2f} "
                f"(goal <= 1.5); load average before {res['load_before']}, after {res['load_after']}")
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())
