"""Ingest throughput of a 10,000-instance synthetic site from a local folder, side by side with the
floor any ingest must pay: `cp -r` of the same tree plus a bare `pydicom.dcmread(stop_before_pixels=True)`
loop over it, measured in the same run on the same (warm) page cache.

    .venv/bin/python benchmarks/ingest.py --instances 10000 [--workers 2] [--site DIR] [--out results.json]
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


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name != "ground_truth.json")


def _site(workdir: Path, instances: int, seed: int) -> Path:
    """A synthetic site with at least `instances` files: one patient first, then scaled up."""
    from synth import generate_site

    probe = workdir / "probe"
    generate_site(probe, patients=1, seed=seed)
    per_patient = len(_files(probe))
    shutil.rmtree(probe)
    patients = max(1, -(-instances // per_patient))
    site = workdir / "site"
    print(f"bench: generating {patients} patients x ~{per_patient} files", file=sys.stderr)
    generate_site(site, patients=patients, seed=seed)
    return site


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--instances", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--seed", type=int, default=101)
    ap.add_argument("--site", type=Path, default=None,
                    help="reuse a site made by `curate synth` instead of generating one (not deleted)")
    ap.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temp dir)")
    ap.add_argument("--out", type=Path, default=None, help="write the figures as JSON here too")
    args = ap.parse_args()

    import pydicom

    from curation.catalog import Catalog
    from curation.ingest import ingest
    from curation.store import open_store

    work = Path(tempfile.mkdtemp(prefix="bench-ingest-", dir=args.workdir))
    try:
        site = args.site.resolve() if args.site else _site(work, args.instances, args.seed)
        files = _files(site)
        total_bytes = sum(p.stat().st_size for p in files)
        for p in files:  # warm the page cache so every contender reads from memory
            p.read_bytes()

        t = time.perf_counter()
        subprocess.run(["cp", "-r", str(site), str(work / "copy")], check=True)
        t_cp = time.perf_counter() - t

        t = time.perf_counter()
        read = 0
        for p in files:
            try:
                pydicom.dcmread(p, stop_before_pixels=True)
                read += 1
            except Exception:  # noqa: BLE001 - planted bad files
                pass
        t_read = time.perf_counter() - t

        catalog = Catalog(f"sqlite:///{work / 'catalog.sqlite'}")
        store = open_store(str(work / "store"))
        t = time.perf_counter()
        summary = ingest(str(site), catalog, store, site="bench", workers=args.workers,
                         exclude=["ground_truth.json"])
        t_ingest = time.perf_counter() - t
        t = time.perf_counter()
        again = ingest(str(site), catalog, store, site="bench", workers=args.workers, exclude=["ground_truth.json"])
        t_again = time.perf_counter() - t

        baseline = t_cp + t_read
        n = len(files)
        result = {
            "files": n,
            "instances_ingested": summary.instances_new,
            "quarantined": len(summary.quarantined),
            "bytes": total_bytes,
            "workers": args.workers,
            "cp_r_s": round(t_cp, 2),
            "dcmread_loop_s": round(t_read, 2),
            "baseline_s": round(baseline, 2),
            "ingest_s": round(t_ingest, 2),
            "reingest_s": round(t_again, 2),
            "reingest_bytes_copied": again.bytes_copied,
            "baseline_files_per_s": round(n / baseline, 1),
            "ingest_files_per_s": round(n / t_ingest, 1),
            "ratio_ingest_to_baseline": round(t_ingest / baseline, 2),
            "load_average": os.getloadavg(),
            "cpus": os.cpu_count(),
        }
        print(json.dumps(result, indent=2))
        print(f"\n| contender | seconds | files/s |\n|---|---|---|\n"
              f"| cp -r | {t_cp:.2f} | {n / t_cp:,.0f} |\n"
              f"| dcmread(stop_before_pixels) loop | {t_read:.2f} | {n / t_read:,.0f} |\n"
              f"| baseline (cp + dcmread) | {baseline:.2f} | {n / baseline:,.0f} |\n"
              f"| curate ingest ({args.workers} workers) | {t_ingest:.2f} | {n / t_ingest:,.0f} |\n"
              f"| curate re-ingest (no-op) | {t_again:.2f} | {n / t_again:,.0f} |\n"
              f"\nratio ingest / baseline: {t_ingest / baseline:.2f} (goal <= 2)")
        if args.out:
            args.out.write_text(json.dumps(result, indent=2))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
