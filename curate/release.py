"""`curate release build|publish|list|show|diff|pull|verify`: versioned dataset releases without Airflow.

`build` selects series from the catalog (kinds, final quality decisions, rounds), writes them into a
staging prefix and, with `--publish`, publishes them immutably; `pull` copies a published version to a
local folder (parallel, resumable, each file verified on arrival); `verify` recomputes every checksum of
a published release or of a local copy and exits non-zero naming each missing, extra or altered file.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from curate._common import CliError, print_json
from curation.vocabulary import QualityDecision

_DB_HELP = "catalog URL (default: CURATE_DB_URL or the embedded SQLite)"
_STORE_HELP = "store root, a folder or s3://bucket/prefix (default: CURATE_STORE_URI or $CURATE_HOME/store)"


def _words(text: str | None) -> tuple[str, ...]:
    return tuple(w.strip() for w in (text or "").split(",") if w.strip())


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("release", help="versioned dataset releases: build, publish, list, show, diff, pull, verify")
    rsub = p.add_subparsers(dest="release_command", metavar="ACTION")
    rsub.required = True

    def common(parser: argparse.ArgumentParser, db: bool = True) -> None:
        if db:
            parser.add_argument("--db", default=None, help=_DB_HELP)
        parser.add_argument("--store", default=None, help=_STORE_HELP)
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    b = rsub.add_parser("build", help="build a release into its staging prefix (and publish it with --publish)")
    b.add_argument("--name", required=True, help="release name (a-z, 0-9, '.', '_', '-')")
    b.add_argument("--bump", choices=("major", "minor", "patch"), default="minor",
                   help="how the version follows the newest published one (the first is 1.0.0)")
    b.add_argument("--version", default=None, help="an explicit MAJOR.MINOR.PATCH instead of --bump")
    b.add_argument("--kinds", default=None, help="series kinds, comma-separated (default: any)")
    b.add_argument("--decisions", default=str(QualityDecision.APPROVE),
                   help="final quality decisions, comma-separated (default: approve)")
    b.add_argument("--rounds", default=None, help="annotation round ids, comma-separated (default: any)")
    b.add_argument("--sites", default=None, help="source sites, comma-separated (default: any)")
    b.add_argument("--formats", default="dicom",
                   help="image formats, comma-separated: dicom (always) and nifti (volumes as .nii.gz)")
    b.add_argument("--license", default=None,
                   help="license the datasheet and croissant.json state (SPDX id or URL; default: ask the owner)")
    b.add_argument("--description", default="", help="one paragraph on the dataset's purpose, for its datasheet")
    b.add_argument("--splits", default="train=0.7,validation=0.15,test=0.15", help="NAME=RATIO,... by patient")
    b.add_argument("--seed", type=int, default=0, help="seed of the patient split hash")
    b.add_argument("--publish", action="store_true", help="publish the build once it verifies")
    common(b)
    b.set_defaults(func=run_build)
    pub = rsub.add_parser("publish", help="publish the staged build of NAME@VERSION (refused if that version exists)")
    pub.add_argument("release", metavar="NAME@VERSION")
    common(pub)
    pub.set_defaults(func=run_publish)
    readers = (("list", "published releases and their versions", (), run_list),
               ("show", "one published version: manifest hash, counts, provenance", (("release", "NAME@VERSION"),),
                run_show),
               ("diff", "series added, removed, revised and labels changed between two versions",
                (("old", "NAME@A"), ("new", "NAME@B")), run_diff),
               ("verify", "recompute every checksum and check every DICOM's content; exit 1 naming each "
                          "missing, extra, altered, invalid or identifying file",
                (("target", "NAME@VERSION|PATH"),), run_verify))
    for action, text, positionals, func in readers:
        parser = rsub.add_parser(action, help=text)
        for dest, metavar in positionals:
            parser.add_argument(dest, metavar=metavar)
        if action == "verify":
            parser.add_argument("--checksums-only", action="store_true",
                                help="skip the content checks (dciodvfy on SEG/SR, label references, residual "
                                     "PHI in every image): only sizes and SHA-256")
        common(parser, db=False)
        parser.set_defaults(func=func)
    _register_pull(rsub, common)


def _register_pull(rsub: argparse._SubParsersAction, common: Any) -> None:
    pl = rsub.add_parser("pull", help="copy a published version into a local folder: parallel, resumable, every "
                                      "file verified on arrival, manifest.json written last")
    pl.add_argument("release", metavar="NAME@VERSION")
    pl.add_argument("dest", metavar="DEST", type=Path, help="local folder (created; a re-run resumes a killed pull)")
    # the default stays in curation.release.pull: importing it here would load pandas for every command
    pl.add_argument("--jobs", type=int, default=None, help="downloads in flight, 1-32 (default 16)")
    pl.add_argument("--expect-sha256", default=None, metavar="HASH",
                    help="refuse the release unless its manifest has this SHA-256 (the one a paper cites)")
    pl.add_argument("--delete-extra", action="store_true",
                    help="remove files in DEST that the release does not list (default: only name them)")
    pl.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    common(pl, db=False)
    pl.set_defaults(func=run_pull)


def _store(args: argparse.Namespace) -> Any:
    from curation.settings import settings
    from curation.store import open_store

    return open_store(args.store or settings().store_location)


def _catalog(args: argparse.Namespace) -> Any:
    from curation.catalog import Catalog

    return Catalog(args.db)


def _ref(text: str) -> Any:
    from curation.release.version import ReleaseRef

    try:
        return ReleaseRef.parse(text)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _published(store: Any, text: str) -> Any:
    """The StoreTree of a published NAME@VERSION, or CliError naming the versions there are."""
    from curation.release.layout import StoreTree, published_versions, release_prefix

    ref = _ref(text)
    versions = published_versions(store, ref.name)
    if ref.version not in versions:
        have = ", ".join(str(v) for v in versions) or "none"
        raise CliError(f"release {ref} is not published in {store.uri} (published versions of {ref.name}: {have})")
    return StoreTree(store, release_prefix(ref.name, ref.version))


def run_build(args: argparse.Namespace) -> int:
    from curation.release.build import ReleaseSpec, build
    from curation.release.publish import publish
    from curation.release.splits import SplitPlan

    try:
        rounds = tuple(int(r) for r in _words(args.rounds))
        spec = ReleaseSpec(name=args.name, bump=args.bump, version=args.version, kinds=_words(args.kinds),
                           decisions=_words(args.decisions), rounds=rounds, sites=_words(args.sites),
                           formats=_words(args.formats), description=args.description,
                           splits=SplitPlan.parse(args.splits, args.seed),
                           **({"license": args.license} if args.license else {}))
        catalog, store = _catalog(args), _store(args)
        result = build(catalog, store, spec)
        out: dict[str, Any] = {"build": result.to_json()}
        if args.publish:
            out["publish"] = publish(catalog, store, result.name, result.version).to_json()
    except ValueError as exc:  # ReleaseError and bad versions, names, splits
        raise CliError(str(exc)) from None
    if args.json:
        print_json(out)
        return 0
    print(f"built {result.name}@{result.version} (previous: {result.previous or 'none'}) in {result.prefix}")
    print(f"  manifest SHA-256 {result.manifest_sha256}")
    print("  " + ", ".join(f"{k} {v}" for k, v in result.counts.items()))
    if "publish" in out:
        print(f"published at {out['publish']['location']}")
    else:
        print(f"publish with: curate release publish {result.name}@{result.version}")
    return 0


def run_publish(args: argparse.Namespace) -> int:
    from curation.release.publish import publish

    ref = _ref(args.release)
    try:
        done = publish(_catalog(args), _store(args), ref.name, ref.version)
    except ValueError as exc:  # ReleaseExists, a build that no longer matches its manifest
        raise CliError(str(exc)) from None
    if args.json:
        print_json(done.to_json())
    else:
        print(f"published {ref} at {done.location} ({done.files} files, manifest SHA-256 {done.manifest_sha256})")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from curation.release.layout import published_versions, release_names

    store = _store(args)
    rows = [{"name": n, "versions": [str(v) for v in published_versions(store, n)]} for n in release_names(store)]
    if args.json:
        print_json(rows)
        return 0
    for r in rows:
        print(f"{r['name']:24s} {', '.join(r['versions'])}")
    print(f"{len(rows)} releases in {store.uri}")
    return 0


def release_summary(tree: Any) -> dict[str, Any]:
    """Manifest hash, file counts by role, headline counts and provenance of a release folder."""
    import hashlib
    import json

    from curation.release.diff import diff_trees
    from curation.release.manifest import Manifest

    data = tree.read("manifest.json")
    manifest = Manifest.from_bytes(data)
    counts = {k: v["new"] for k, v in diff_trees(None, tree).counts.items()}
    provenance = json.loads(tree.read("provenance.json")) if tree.exists("provenance.json") else None
    return {"name": manifest.name, "version": manifest.version, "location": tree.location,
            "manifest_sha256": hashlib.sha256(data).hexdigest(), "files": len(manifest.entries),
            "bytes": sum(e.size for e in manifest.entries), "files_by_role": manifest.role_counts(),
            "counts": counts, "provenance": provenance}


def run_show(args: argparse.Namespace) -> int:
    summary = release_summary(_published(_store(args), args.release))
    if args.json:
        print_json(summary)
        return 0
    print(f"{summary['name']}@{summary['version']}  {summary['location']}")
    print(f"  manifest SHA-256 {summary['manifest_sha256']}")
    print(f"  {summary['files']} files, {summary['bytes']} bytes: "
          + ", ".join(f"{k} {v}" for k, v in summary["files_by_role"].items()))
    print("  " + ", ".join(f"{k} {v}" for k, v in summary["counts"].items()))
    prov = summary["provenance"] or {}
    code = prov.get("code") or {}
    print(f"  code {code.get('package') or '?'} (commit {code.get('commit') or 'unknown'}), "
          f"lineage head {prov.get('lineage_head')}, rounds {[r['id'] for r in prov.get('rounds', [])] or 'none'}")
    return 0


def run_diff(args: argparse.Namespace) -> int:
    from curation.release.diff import changes_markdown, diff_trees

    store = _store(args)
    diff = diff_trees(_published(store, args.old), _published(store, args.new), args.old, args.new)
    if args.json:
        print_json(diff.to_json())
    else:
        print(changes_markdown(diff), end="")
    return 0


def run_pull(args: argparse.Namespace) -> int:
    import sys

    from curation.release.pull import DEFAULT_JOBS, PullError, PullFailed, print_summary, pull
    from curation.release.reader import ReleaseIntegrityError
    from curation.settings import settings

    try:
        jobs = DEFAULT_JOBS if args.jobs is None else args.jobs
        result = pull(args.store or settings().store_location, args.release, args.dest, jobs=jobs,
                      expected_sha256=args.expect_sha256, delete_extra=args.delete_extra,
                      progress=None if args.quiet else sys.stderr)
    except PullFailed as exc:  # altered or missing objects in the store: each named, exit 1
        if args.json:
            print_json(exc.result.to_json())
        for _path, detail in sorted(exc.result.failed.items()):
            print(f"failed: {detail}", file=sys.stderr)  # the detail begins with the file's path
        print(f"curate: error: {len(exc.result.failed)} files did not arrive intact; nothing else is wrong with "
              f"{args.dest} (no manifest.json is written until every file has)", file=sys.stderr)
        return 1
    except PullError as exc:  # unknown release, unreachable store, DEST holding another release: exit 2
        raise CliError(str(exc)) from None
    except ReleaseIntegrityError as exc:  # not the cited manifest
        print(f"curate: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print_json(result.to_json())
    else:
        print_summary(result)
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from curation.release.layout import DirTree
    from curation.release.verify import verify_tree

    if "@" in args.target and not Path(args.target).exists():
        tree = _published(_store(args), args.target)
    elif Path(args.target).is_dir():
        tree = DirTree(Path(args.target))
    else:
        raise CliError(f"{args.target!r} is neither NAME@VERSION nor a release folder")
    report = verify_tree(tree, checksums_only=args.checksums_only)
    if args.json:
        print_json(report.to_json())
    else:
        for problem in report.problems:
            print(problem)
        verdict = "OK" if report.ok else f"FAILED ({len(report.problems)} problems)"
        print(f"{verdict}: {report.files_checked} files checked in {report.location}, "
              f"manifest SHA-256 {report.manifest_sha256}")
    return 0 if report.ok else 1
