"""`curate ingest SOURCE`: bring a folder, archive, S3 prefix or DICOMweb server into the catalog."""
from __future__ import annotations

import argparse
import sys
import time

from curate._common import CliError, print_json
from curation.settings import DEFAULT_SITE


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ingest",
        help="ingest a source (folder, zip/tar archive, s3://bucket/prefix, dicomweb+http://host/dicom-web)",
        description="Validate every file of SOURCE, keep good ones in the raw zone by content hash, record "
                    "them in the catalog and quarantine bad ones with a specific reason. Re-running is a no-op.",
    )
    p.add_argument("source", help="folder, archive (.zip .tar .tar.gz ...), s3://bucket/prefix or "
                                  "dicomweb+http(s)://host/dicom-web (credentials: CURATE_DICOMWEB_USERNAME/PASSWORD)")
    p.add_argument("--site", default=None, help=f"site name (default: CURATE_SITE or {DEFAULT_SITE!r})")
    p.add_argument("--store", default=None, help="store URI (default: CURATE_STORE_URI or CURATE_HOME/store)")
    p.add_argument("--db", default=None, help="catalog URL (default: CURATE_DB_URL or CURATE_HOME/catalog.sqlite)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: CPU count, at most 4)")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                   help="skip files whose path (or name) matches GLOB; repeatable (e.g. 'Thumbs.db')")
    p.add_argument("--show-paths", action="store_true",
                   help="name quarantined files by their path in the source (paths of hospital exports can "
                        "hold patient names; by default files are named by content hash and file name)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


class _Progress:
    """One updating line on stderr: done/total, rate, ETA."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self.last < (0.2 if self.tty else 5.0):
            return
        self.last = now
        rate = done / max(now - self.start, 1e-6)
        eta = (total - done) / rate if rate > 0 else 0.0
        line = f"ingest: {done}/{total} files  {rate:,.0f} files/s  ETA {eta:,.0f} s"
        print(("\r" + line) if self.tty else line, end="" if self.tty and done < total else "\n",
              file=sys.stderr, flush=True)


def describe_file(path: str, sha256: str, show_paths: bool) -> str:
    """How a quarantined file is named in output: its path, or its hash and bare file name."""
    if show_paths:
        return path
    return f"sha256:{(sha256 or 'unreadable')[:12]} ({path.rsplit('/', 1)[-1][:40]})"  # not-vocabulary


def print_summary(summary, out=sys.stdout, show_paths: bool = False) -> None:  # noqa: ANN001 - IngestSummary
    d = summary.as_dict()
    rows = [
        ("patients", d["patients"]), ("studies", d["studies"]), ("series", d["series"]),
        ("instances", d["instances"]), ("  new", d["instances_new"]), ("  already in catalog", d["instances_known"]),
        ("duplicates skipped", d["duplicates"]), ("excluded", d["excluded"]), ("bytes copied", d["bytes_copied"]),
        ("quarantined files", d["quarantined"]), ("seconds", d["seconds"]),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"Ingest summary (source #{d['source_id']}, {d['source_kind']})", file=out)
    for k, v in rows:
        print(f"  {k:<{width}}  {v:>12,}" if isinstance(v, int) else f"  {k:<{width}}  {v:>12}", file=out)
    if summary.quarantined:
        print("Quarantined (file: reason):", file=out)
        for q in summary.quarantined:
            print(f"  {describe_file(q['file'], q['sha256'], show_paths)}: [{q['reason_code']}] {q['reason']}",
                  file=out)


def run(args: argparse.Namespace) -> int:
    from curation.catalog import Catalog
    from curation.config import default_site, default_store_uri
    from curation.ingest import SourceError, ingest
    from curation.store import open_store

    catalog = Catalog(args.db)
    store = open_store(args.store or default_store_uri())
    try:
        summary = ingest(args.source, catalog, store, site=args.site or default_site(),
                         workers=args.workers, exclude=args.exclude, progress=None if args.json else _Progress())
    except SourceError as exc:
        raise CliError(str(exc)) from exc
    if args.json:
        d = summary.as_dict()
        d["quarantine"] = [{"file": describe_file(q["file"], q["sha256"], args.show_paths),
                            "sha256": q["sha256"], "reason_code": q["reason_code"], "reason": q["reason"]}
                           for q in summary.quarantined]
        print_json(d)
    else:
        print_summary(summary, show_paths=args.show_paths)
    return 0
