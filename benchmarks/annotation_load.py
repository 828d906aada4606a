"""Load test of the annotation service on loopback: N simulated annotators (default 50) fetch their
next task, fetch the image (a 512x512 16-bit DICOM frame), mark it loaded, think (2-6 s), and submit, for a
fixed time (default 120 s); then it stops by itself and prints latency percentiles and errors.

    .venv/bin/python benchmarks/annotation_load.py [--annotators 50] [--duration 120] [--db URL] [--json OUT]

Targets (issue 6): 0 errors; p95 <= 150 ms for next-task and submit, <= 250 ms for a frame.
The service runs as `curate annotation serve` in a subprocess on 127.0.0.1 with its own temporary
SQLite database (or --db, e.g. a PostgreSQL URL), and is stopped at the end.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "load-test-password"
SCHEMA = {"labels": [
    {"id": "nodule", "name": "Nodule", "kind": "boolean"}, {"id": "effusion", "name": "Effusion", "kind": "boolean"},
    {"id": "box", "name": "Lesion box", "kind": "box"}, {"id": "outline", "name": "Lesion outline", "kind": "freehand"}]}
TARGETS_MS = {"next": 150.0, "submit": 150.0, "frame": 250.0}


def write_images(folder: Path, n: int, seed: int = 0) -> list[str]:
    """n de-identified 512x512 16-bit CT images (signed, HU via rescale)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:512, 0:512]
    disc = ((yy - 256) ** 2 + (xx - 256) ** 2 < 200 ** 2) * 1064
    uris = []
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    for i in range(n):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientName, ds.PatientID, ds.PatientIdentityRemoved = "ANON", "PSEUDO-LOAD", "YES"
        ds.Modality, ds.InstanceNumber = "CT", i + 1
        ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, float(i)], [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing, ds.SliceThickness = [0.7, 0.7], 1.0
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.Rows, ds.Columns = 1, "MONOCHROME2", 512, 512
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.WindowCenter, ds.WindowWidth = -1024, 1, 40, 400
        ds.PixelData = (disc + rng.normal(0, 20, (512, 512))).astype("<i2").tobytes()
        path = folder / f"{i:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        uris.append(path.as_uri())
    return uris


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(db_url: str, log: Path, workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "ANNOTATION_DATABASE_URL": db_url}
    proc = subprocess.Popen([sys.executable, "-m", "curate.main", "annotation", "serve", "--host", "127.0.0.1",
                             "--port", str(port), "--no-access-log", "--workers", str(workers)],
                            cwd=ROOT, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/api/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
        if proc.poll() is not None:
            raise SystemExit(f"service exited: {log.read_text()[-2000:]}")
    proc.terminate()
    raise SystemExit("service did not start")


def setup(url: str, db_url: str, annotators: int, uris: list[str], items: int, readers: int) -> tuple[int, list[str]]:
    from annotation.admin import create_admin

    create_admin(db_url, "admin", PASSWORD)
    with httpx.Client(base_url=url, timeout=120) as c:
        tok = c.post("/api/auth/login", json={"username": "admin", "password": PASSWORD}).json()["token"]
        h = {"Authorization": f"Bearer {tok}"}
        pid = c.post("/api/projects", headers=h, json={"name": "load", "readers_per_item": readers, "schema": SCHEMA}).json()["id"]
        batch = []
        for i in range(items):
            batch.append({"external_id": f"item-{i}", "uris": [uris[i % len(uris)]], "modality": "CT", "body_part": "CHEST",
                          "context": {"age_bracket": "60-69", "sex": "F", "report_text": "Load test case."}})
            if len(batch) == 500 or i == items - 1:
                r = c.post(f"/api/projects/{pid}/items", headers=h, json={"items": batch})
                r.raise_for_status()
                batch = []
        tokens = []
        for n in range(annotators):
            uid = c.post("/api/users", headers=h, json={"username": f"reader{n:03d}", "password": PASSWORD}).json()["id"]
            c.post(f"/api/projects/{pid}/members", headers=h, json={"user_id": uid, "role": "annotator"}).raise_for_status()
            tokens.append(c.post("/api/auth/login", json={"username": f"reader{n:03d}", "password": PASSWORD}).json()["token"])
    return pid, tokens


async def annotator(n: int, url: str, token: str, pid: int, stop_at: float, think: tuple[float, float],
                    frame_path: str, lat: dict[str, list[float]], errors: list[str], done: list[int]) -> None:
    rng = random.Random(n)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as c:
        async def timed(op: str, method: str, path: str, **kw) -> httpx.Response | None:
            t0 = time.perf_counter()
            try:
                r = await c.request(method, path, **kw)
            except httpx.HTTPError as exc:
                errors.append(f"{op}: {type(exc).__name__}")
                return None
            lat[op].append((time.perf_counter() - t0) * 1000)
            if r.status_code >= 400:
                errors.append(f"{op}: HTTP {r.status_code}")
                return None
            return r

        await asyncio.sleep(rng.uniform(0, think[1]))  # readers do not all start in the same millisecond
        while time.monotonic() < stop_at:
            r = await timed("next", "POST", f"/api/tasks/next?project_id={pid}")
            if r is None:
                continue
            task = r.json()["task"]
            if task is None:
                return
            item = task["item"]["id"]
            path = frame_path.format(item=item)
            if await timed("frame", "GET", path) is None:
                continue
            await timed("loaded", "POST", f"/api/tasks/{task['id']}/loaded")
            await asyncio.sleep(rng.uniform(*think))
            x, y = rng.uniform(50, 400), rng.uniform(50, 400)
            body = {"labels": [{"label": "nodule", "value": rng.random() < 0.4, "confidence": rng.choice([60, 80, 100])},
                               {"label": "effusion", "value": rng.random() < 0.2, "confidence": rng.choice([40, 80])}],
                    "rois": [{"label": "box", "kind": "box", "points": [[x, y], [x + 30, y + 25]]},
                             {"label": "outline", "kind": "freehand", "points": [[x, y], [x + 20, y + 2], [x + 18, y + 22], [x + 2, y + 20]]}],
                    "active_ms": 5000, "idle_ms": 0, "label_ms": {"nodule": 2000}}
            if await timed("submit", "POST", f"/api/tasks/{task['id']}/submit", json=body) is not None:
                done[0] += 1


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    return float(np.percentile(np.asarray(values), p))


async def run(args: argparse.Namespace, url: str, pid: int, tokens: list[str]) -> dict:
    lat: dict[str, list[float]] = {"next": [], "frame": [], "loaded": [], "submit": []}
    errors: list[str] = []
    done = [0]
    frame_path = ("/api/items/{item}/instances/0/frames/0" if args.frame_endpoint == "raw"
                  else "/api/items/{item}/instances/0/file")
    t0 = time.monotonic()
    stop_at = t0 + args.duration
    await asyncio.gather(*(annotator(n, url, tok, pid, stop_at, (args.think_min, args.think_max), frame_path, lat, errors, done)
                           for n, tok in enumerate(tokens)))
    wall = time.monotonic() - t0
    ops = {op: {"count": len(v), "p50_ms": round(pct(v, 50), 1), "p95_ms": round(pct(v, 95), 1),
                "p99_ms": round(pct(v, 99), 1), "max_ms": round(max(v), 1) if v else None,
                "mean_ms": round(statistics.fmean(v), 1) if v else None} for op, v in lat.items()}
    return {"annotators": len(tokens), "duration_s": round(wall, 1), "submitted": done[0],
            "requests": sum(len(v) for v in lat.values()), "requests_per_s": round(sum(len(v) for v in lat.values()) / wall, 1),
            "errors": len(errors), "error_kinds": sorted(set(errors))[:10], "ops": ops,
            "targets_met": {op: (ops[op]["p95_ms"] <= t) for op, t in TARGETS_MS.items()} | {"zero_errors": not errors}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--annotators", type=int, default=50)
    ap.add_argument("--duration", type=float, default=120.0, help="seconds of load (the run stops by itself)")
    ap.add_argument("--think-min", type=float, default=2.0, help="seconds a simulated reader looks before submitting")
    ap.add_argument("--think-max", type=float, default=6.0)
    ap.add_argument("--images", type=int, default=300, help="distinct 512x512 16-bit images")
    ap.add_argument("--items", type=int, default=2500)
    ap.add_argument("--readers-per-item", type=int, default=3)
    ap.add_argument("--frame-endpoint", choices=["file", "raw"], default="file",
                    help="file: the DICOM object the browser decodes; raw: stored pixel values")
    ap.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    ap.add_argument("--db", default=None, help="database URL (default: a temporary SQLite file)")
    ap.add_argument("--json", default=None, help="also write the result to this file")
    args = ap.parse_args(argv)
    if not (1 <= args.annotators <= 500 and 1 <= args.duration <= 600):
        ap.error("at most 500 annotators and 600 s")
    with tempfile.TemporaryDirectory(prefix="annotation-load-") as tmp:
        tmpd = Path(tmp)
        t0 = time.perf_counter()
        uris = write_images(tmpd / "deid", args.images)
        db_url = args.db or f"sqlite:///{tmpd / 'annotation.db'}"
        proc, url = start_service(db_url, tmpd / "service.log", args.workers)
        try:
            pid, tokens = setup(url, db_url, args.annotators, uris, args.items, args.readers_per_item)
            print(f"setup: {args.images} images, {args.items} items, {args.annotators} annotators in "
                  f"{time.perf_counter() - t0:.1f} s; load for {args.duration:.0f} s ...", file=sys.stderr)
            result = asyncio.run(run(args, url, pid, tokens))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        log = (tmpd / "service.log").read_text()
        result["service_tracebacks"] = log.count("Traceback")
        if result["service_tracebacks"]:
            errs = sorted({line[:300] for line in log.splitlines()
                           if line and not line.startswith((" ", "INFO", "Traceback", "20", "(Background"))})
            print("service errors:\n" + "\n".join(errs[:20]), file=sys.stderr)
    result["config"] = {k: v for k, v in vars(args).items() if k != "json"} | {"db": "sqlite" if not args.db else args.db.split(":")[0]}
    result["load_average"] = os.getloadavg()
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0 if all(result["targets_met"].values()) and not result["service_tracebacks"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
