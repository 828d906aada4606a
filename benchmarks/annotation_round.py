"""A whole annotation round under load: the simulated readers of `curate annotators simulate`
(synth.reader_client: accounts through the admin API, next task -> every instance fetched as the viewer
does -> loaded -> the profile's reading time, scaled -> submit) work a round to completion on the
annotation service backed by PostgreSQL; prints p50/p95/p99 of next-task, frame (instance file) and
submit latency and the round's wall time (first next-task to the last reader's empty queue).

    .venv/bin/python benchmarks/annotation_round.py [--readers careful:30,hasty:10,random:5,flat:5]
        [--items 300] [--readers-per-item 5] [--time-scale 0.05] [--db URL] [--json OUT]

The service is `curate annotation serve` (one worker, access log on) in a subprocess on 127.0.0.1,
as the tests start it (tests/annotation/conftest.py). Without --db it makes a fresh database on the local PostgreSQL (tests/fixtures/servers.py: the
server the tests use, started if down) and drops it at the end. Items are 512x512 16-bit CT images
(benchmarks/annotation_load.py's), three instances per item; the truth is drawn per item (nodule in
2 of 3, effusion in 1 of 3).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from annotation_load import write_images  # noqa: E402 - this folder's sibling benchmark

from synth.reader_client import simulate  # noqa: E402
from synth.reader_truth import ItemLabelTruth, TruthRegion  # noqa: E402
from synth.readers import parse_readers  # noqa: E402

PASSWORD = "round-bench-password"
SCHEMA = {"labels": [
    {"id": "nodule", "name": "Nodule", "kind": "boolean"}, {"id": "effusion", "name": "Effusion", "kind": "boolean"},
    {"id": "nodule_box", "name": "Nodule region", "kind": "box"}]}


def fresh_postgres() -> tuple[str, str]:
    """A new database on the tests' local PostgreSQL: (SQLAlchemy URL, name)."""
    from tests.fixtures.servers import _ensure_postgres, _pg_connect

    _ensure_postgres()
    name = f"curate_bench_{uuid.uuid4().hex[:12]}"
    with _pg_connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", name


def drop_postgres(name: str) -> None:
    from tests.fixtures.servers import _pg_connect

    with _pg_connect() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_round(url: str, db_url: str, uris: list[str], items: int, k: int, seed: int) -> tuple[str, int, dict]:
    """Admin, project, one round of `items` items (3 instances each); the admin token, round number, truth."""
    from annotation.admin import create_admin

    create_admin(db_url, "admin", PASSWORD)
    rng = np.random.default_rng(seed)
    truth: dict[str, dict[str, ItemLabelTruth]] = {}
    bodies = []
    for i in range(items):
        external_id = f"bench-{i:05d}"
        x, y = rng.uniform(60, 400, 2)
        truth[external_id] = {
            "nodule": ItemLabelTruth(i % 3 != 2, (TruthRegion((float(x), float(y), 30.0, 26.0), 1),) if i % 3 != 2 else ()),
            "effusion": ItemLabelTruth(i % 3 == 1)}
        bodies.append({"external_id": external_id, "uris": [uris[(3 * i + n) % len(uris)] for n in range(3)],
                       "modality": "CT", "body_part": "CHEST"})
    with httpx.Client(base_url=url, timeout=300) as c:
        token = c.post("/api/auth/login", json={"username": "admin", "password": PASSWORD}).json()["token"]
        h = {"Authorization": f"Bearer {token}"}
        pid = c.post("/api/projects", headers=h, json={"name": "round-bench", "readers_per_item": k,
                                                        "schema": SCHEMA}).raise_for_status().json()["id"]
        number = None
        for start in range(0, items, 1000):
            r = c.post(f"/api/projects/{pid}/rounds", headers=h, json={
                "name": "bench-round", "readers_per_item": k, "items": bodies[start:start + 1000]})
            r.raise_for_status()
            number = r.json()["round"]["number"]
    return token, number, truth


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--readers", default="careful:30,hasty:10,random:5,flat:5", help="simulated reader spec (50)")
    ap.add_argument("--items", type=int, default=300)
    ap.add_argument("--readers-per-item", type=int, default=5)
    ap.add_argument("--time-scale", type=float, default=0.05,
                    help="share of each profile's reading time waited (0.05: careful about 2.5 s per item)")
    ap.add_argument("--fetch", choices=("all", "first", "none"), default="all")
    ap.add_argument("--images", type=int, default=120, help="distinct 512x512 16-bit images")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--db", default=None, help="database URL (default: a fresh database on the local PostgreSQL)")
    ap.add_argument("--json", default=None, help="also write the result to this file")
    args = ap.parse_args(argv)
    readers = parse_readers(args.readers)
    if args.readers_per_item > len(readers):
        ap.error("more readers per item than readers: the round could never complete")
    db_name = None
    db_url = args.db
    if db_url is None:
        db_url, db_name = fresh_postgres()
    load_before = os.getloadavg()
    try:
        with tempfile.TemporaryDirectory(prefix="annotation-round-") as tmp:
            tmpd = Path(tmp)
            uris = write_images(tmpd / "deid", args.images)
            from tests.annotation.conftest import LiveServer

            server = LiveServer(db_url, tmpd / "service.log")  # `curate annotation serve`, one worker
            url = server.url
            try:
                token, number, truth = make_round(url, db_url, uris, args.items, args.readers_per_item, args.seed)
                print(f"round {number}: {args.items} items x {args.readers_per_item} readers; "
                      f"{len(readers)} simulated readers start", file=sys.stderr)
                result = simulate(url, "round-bench", readers, args.seed, truth, admin_token=token, fetch=args.fetch,
                                  time_scale=args.time_scale, progress=lambda message: None)
                status = httpx.get(f"{url}/api/projects/{result.project_id}/rounds/{number}",
                                   headers={"Authorization": f"Bearer {token}"}, timeout=60).json()
            finally:
                server.stop()
            tracebacks = (tmpd / "service.log").read_text().count("Traceback")
    finally:
        if db_name is not None:
            drop_postgres(db_name)
    lat = result.latencies
    ops = {op: {"count": len(lat.calls.get(op, [])),
                **{f"p{q}_ms": round((lat.percentile(op, q) or float("nan")) * 1000, 1) for q in (50, 95, 99)}}
           for op in ("next_task", "frame", "loaded", "submit")}
    out = {"round_state": status["state"], "round_wall_s": round(result.wall_s, 1),
           "readings": status["readings_submitted"], "readings_required": status["readings_required"],
           "readers": len(readers), "ops": ops,
           "empty_answers_retried": sum(r.empty_answers for r in result.readers), "service_tracebacks": tracebacks,
           "per_profile": {p: sum(r.tasks_done for r in result.readers if r.profile == p)
                           for p in sorted({r.profile for r in result.readers})},
           "config": {k: v for k, v in vars(args).items() if k not in ("json", "db")}
           | {"db": "postgresql" if args.db is None else args.db.split(":")[0]},
           "load_average": [load_before, os.getloadavg()]}
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0 if status["state"] == "complete" and not tracebacks else 1


if __name__ == "__main__":
    raise SystemExit(main())
