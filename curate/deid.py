"""`curate deid SRC DST`: de-identify a folder of DICOM files (PS3.15 Annex E profile + options,
pixel text masking, verification); `curate deid keys create|migrate`: the data protection
officer's key pair and the move off the old symmetric map; `curate deid reidentify`: open one
entry of the sealed map with the officer's private key, recorded in the audit ledger."""
from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path

from curate._common import CliError, print_json

DEFAULT_VAULT = Path("var/vault")


def register(subparsers: argparse._SubParsersAction) -> None:
    from deid.profile import SUPPORTED_OPTIONS, available_profiles

    p = subparsers.add_parser(
        "deid",
        help="de-identify DICOM files (Annex E profile, burned-in text masking, verification)",
        description="De-identify every DICOM file under SRC_DIR into DST_DIR. Exit status 0 when the run "
        "completed (quarantined files are listed in the report), non-zero only when it could not run. "
        "`curate deid keys create --out FILE` makes the data protection officer's key pair, "
        "`curate deid keys migrate --public-key FILE` re-seals an old symmetric map, "
        "`curate deid reidentify PSEUDONYM --private-key FILE` opens one entry (and records it in the ledger).",
    )
    p.add_argument("src", metavar="SRC_DIR", help="folder with raw DICOM files (or 'reidentify', 'keys')")
    p.add_argument("dst", metavar="DST_DIR", nargs="?",
                   help="output folder (or the pseudonym after 'reidentify', 'create'/'migrate' after 'keys')")
    p.add_argument("--profile", default="default", help=f"profile name or YAML path ({', '.join(available_profiles())})")
    p.add_argument("--option", action="append", default=[], metavar="NAME",
                   help=f"add an option (repeatable): {', '.join(sorted(SUPPORTED_OPTIONS))}")
    p.add_argument("--secret-file", type=Path, default=DEFAULT_VAULT / "deid_secret",
                   help="HMAC site secret in the vault zone, created (0600) if missing (default var/vault/deid_secret)")
    p.add_argument("--map", type=Path, default=None,
                   help="sealed re-identification map, or a folder of per-series fragments (default: beside the secret)")
    p.add_argument("--public-key", type=Path, default=None,
                   help="the officer's public key the map is sealed for (default: reid_public_key.pem beside the secret)")
    p.add_argument("--private-key", type=Path, default=None, help="reidentify: the officer's private key file")
    p.add_argument("--passphrase-env", default=None, metavar="VAR",
                   help="keys create / reidentify: environment variable holding the private key's passphrase")
    p.add_argument("--out", type=Path, default=None, help="keys create: where to write the private key (0600)")
    p.add_argument("--public-key-out", type=Path, default=None,
                   help="keys create: also write the public key to this file (e.g. a folder vault's reid_public_key.pem)")
    p.add_argument("--store", default=None,
                   help="keys create/migrate, reidentify: the pipeline's store (default: CURATE_STORE_URI or the embedded one)")
    p.add_argument("--replace", action="store_true", help="keys create: replace the store's existing public key")
    p.add_argument("--actor", default=None, help="reidentify: who asks, recorded in the ledger (default: the OS user)")
    p.add_argument("--reason", default=None, help="reidentify: why (recorded in the ledger; never the identity)")
    p.add_argument("--db", default=None, help="reidentify: catalog URL of the ledger (default: CURATE_DB_URL or the embedded SQLite)")
    p.add_argument("--report", type=Path, default=None, help="write the run report (JSON) here")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: 2, the machine's cores)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.src == "reidentify":
        return _reidentify(args)
    if args.src == "keys":
        return _keys(args)
    _one_blas_thread()
    _import_pydicom_lean()
    from deid.batch import deidentify_tree
    from deid.profile import ProfileError

    if not args.dst:
        raise CliError("DST_DIR is required")
    src = Path(args.src)
    if not src.is_dir():
        raise CliError(f"source folder {src} does not exist")

    def progress(done: int, total: int, quarantined: int) -> None:
        if not args.quiet and (done % 50 == 0 or done == total):
            print(f"\rdeid: {done}/{total} files, {quarantined} quarantined", end="", file=sys.stderr, flush=True)

    try:
        report = deidentify_tree(
            src, args.dst, profile=args.profile, options=tuple(args.option), secret_file=args.secret_file,
            reid_map=args.map, reid_public_key=args.public_key, workers=args.workers, progress=progress,
        )
    except (ProfileError, ValueError, FileNotFoundError, PermissionError) as exc:
        raise CliError(str(exc)) from exc
    if not args.quiet:
        print(file=sys.stderr)
    if args.report:
        report.write(args.report)
    summary = report.as_dict()
    short = {k: summary[k] for k in ("profile", "options", "files_seen", "written", "unchanged", "duplicates",
                                     "quarantined_count", "patients", "seconds", "files_per_second")}
    if args.json:
        print_json(short)
    else:
        print(f"deid: {short['files_seen']} files, {short['written']} written, {short['unchanged']} unchanged, "
              f"{short['duplicates']} duplicates, {short['quarantined_count']} quarantined, {short['patients']} patients, "
              f"{short['files_per_second']} files/s (profile {short['profile']}: {', '.join(short['options'])})")
        for q in summary["quarantined"][:20]:
            print(f"  quarantined {q['file']}: {q['reason']}")
        if len(summary["quarantined"]) > 20:
            print(f"  ... {len(summary['quarantined']) - 20} more in the report")
    # the pool is joined, the map sealed and closed, the report written: nothing is left for
    # the interpreter's teardown to do (see curate.main)
    args.exit_now = True
    return 0


#: what pydicom imports at start-up for its test-data downloader only (pydicom.data.download:
#: ``requests``, ``tqdm``), ~50-80 ms of a run's start-up; a de-identification run downloads nothing
_DOWNLOADER_ONLY = ("requests", "tqdm")


def _one_blas_thread() -> None:
    """One OpenBLAS thread, set before numpy is first imported (pydicom imports it): the process
    pool is the parallelism (as OMP_THREAD_LIMIT for tesseract and OpenCV's one thread in
    deid.pixels), and the parent's idle OpenBLAS thread otherwise spins (sched_yield) through the
    run: ~0.1 s CPU of a 978-file run. A value the user set is kept."""
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _import_pydicom_lean() -> None:
    """Import pydicom with its downloader's optional libraries absent (it falls back to urllib
    and no progress bar); they are importable again afterwards for anything that needs them."""
    if "pydicom" in sys.modules:
        return
    blocked = [m for m in _DOWNLOADER_ONLY if m not in sys.modules]
    for m in blocked:
        sys.modules[m] = None  # type: ignore[assignment]  # makes `import m` raise ImportError
    try:
        import pydicom  # noqa: F401
    finally:
        for m in blocked:
            if sys.modules.get(m, 0) is None:
                del sys.modules[m]


def _passphrase(args: argparse.Namespace) -> bytes | None:
    if not args.passphrase_env:
        return None
    value = os.environ.get(args.passphrase_env)
    if not value:
        raise CliError(f"{args.passphrase_env} is not set (it holds the private key's passphrase)")
    return value.encode()


def _local_root(store) -> Path | None:  # noqa: ANN001 - a curation.store.Store
    from curation.store import Zone

    vault = store.local_path(Zone.VAULT, "x")
    return vault.parent.parent.resolve() if vault is not None else None


def _is_vault(public_key_out: Path) -> bool:
    """Is the public key being installed into a folder vault (where the platform reads)?"""
    from deid.vault import LEGACY_MAP_NAME, PUBLIC_KEY_NAME, SEALED_MAP_NAME

    folder = public_key_out.resolve().parent
    return public_key_out.name == PUBLIC_KEY_NAME or any(
        (folder / n).exists() for n in ("deid_secret", SEALED_MAP_NAME, LEGACY_MAP_NAME))


def _keys(args: argparse.Namespace) -> int:
    """`keys create`: a new pair for the officer; `keys migrate`: re-seal an old Fernet map."""
    from curation.store import open_store
    from deid.vault import VaultKeyError

    try:
        if args.dst == "create":
            return _keys_create(args, open_store)
        if args.dst == "migrate":
            return _keys_migrate(args, open_store)
    except VaultKeyError as exc:
        raise CliError(str(exc)) from exc
    raise CliError("usage: curate deid keys create --out FILE | curate deid keys migrate --public-key FILE")


def _keys_create(args: argparse.Namespace, open_store) -> int:  # noqa: ANN001
    from curation.config import default_store_uri
    from curation.reid_vault import PUBLIC_KEY_KEY, put_public_key
    from curation.store import Zone
    from deid.vault import fingerprint, generate_key_pair, load_public_key, write_private_key

    if args.out is None:
        raise CliError("keys create needs --out FILE: where the officer's private key goes (never the platform)")
    out = args.out.resolve()
    stores = [] if args.public_key_out and not args.store else [open_store(args.store or default_store_uri())]
    forbidden = [r for r in (_local_root(s) for s in stores) if r is not None]
    if args.public_key_out and _is_vault(args.public_key_out):
        forbidden.append(args.public_key_out.resolve().parent)
    forbidden += [args.secret_file.resolve().parent]
    for root in forbidden:
        if out == root or root in out.parents:
            raise CliError(f"--out {args.out} is inside {root}, which the platform reads: the private key must "
                           "live with the data protection officer, outside the store and the vault")
    priv, pub = generate_key_pair(_passphrase(args))
    for store in stores:  # the store first: an existing key there stops us before anything is written
        if store.exists(Zone.VAULT, PUBLIC_KEY_KEY) and not args.replace:
            raise CliError(f"the vault of {store.uri} already has a public key (entries sealed for it need its "
                           "private key); --replace only for a deliberate change of officer key")
    if args.public_key_out and args.public_key_out.exists() and not args.replace:
        raise CliError(f"{args.public_key_out} exists; --replace only for a deliberate change of officer key")
    write_private_key(out, priv)
    for store in stores:
        put_public_key(store, pub, replace=args.replace)
    if args.public_key_out:
        args.public_key_out.parent.mkdir(parents=True, exist_ok=True)
        args.public_key_out.write_bytes(pub)
    where = [s.uri for s in stores] + ([str(args.public_key_out)] if args.public_key_out else [])
    print(pub.decode(), end="")
    print(f"private key written to {out} (mode 0600): give it to the data protection officer and keep no copy "
          f"here; public key {fingerprint(load_public_key(pub))} installed in {', '.join(where)}", file=sys.stderr)
    return 0


def _keys_migrate(args: argparse.Namespace, open_store) -> int:  # noqa: ANN001
    """Re-seal an old symmetric map for the officer's public key, then remove the old map and its key."""
    from curation.reid_vault import PUBLIC_KEY_KEY, migrate_fernet_store, put_public_key
    from deid.vault import (
        LEGACY_KEY_NAME,
        PUBLIC_KEY_NAME,
        fingerprint,
        load_public_key,
        migrate_fernet_folder,
    )

    folder = args.secret_file.parent
    if args.public_key is not None:
        pem = args.public_key.read_bytes()
    elif args.store is None and (folder / PUBLIC_KEY_NAME).exists():
        pem = (folder / PUBLIC_KEY_NAME).read_bytes()
    else:
        raise CliError("keys migrate needs --public-key FILE (written by `curate deid keys create`)")
    public_key = load_public_key(pem)
    if args.store is None and (folder / LEGACY_KEY_NAME).exists():
        target = (folder / PUBLIC_KEY_NAME)
        if target.exists() and target.read_bytes().strip() != pem.strip():
            raise CliError(f"{target} holds another public key")
        target.write_bytes(pem)
        n, where = migrate_fernet_folder(folder, public_key), str(folder)
    else:
        from curation.config import default_store_uri

        store = open_store(args.store or default_store_uri())
        put_public_key(store, pem)
        n, where = migrate_fernet_store(store, public_key), f"{store.uri} ({PUBLIC_KEY_KEY})"
    print(f"migrated {n} map entries in {where} to the sealed map for key {fingerprint(public_key)}; "
          "the old map and its key are deleted (backups and snapshots of the vault still hold them)")
    return 0


def _map_records(args: argparse.Namespace) -> tuple[list[dict], str]:
    """The sealed records and where they came from: --map (file or folder), --store, the folder
    vault beside --secret-file, else the pipeline's default store."""
    from deid.vault import SEALED_MAP_NAME, SEALED_SUFFIX, SealedMap, parse_records

    folder_map = args.secret_file.parent / SEALED_MAP_NAME
    if args.map is not None:
        if not args.map.exists():
            raise CliError(f"no re-identification map at {args.map}")
        if args.map.is_dir():
            return [r for p in sorted(args.map.rglob(f"*{SEALED_SUFFIX}")) for r in parse_records(p.read_bytes())], str(args.map)
        return SealedMap(args.map).records(), str(args.map)
    if args.store is None and folder_map.exists():
        return SealedMap(folder_map).records(), str(folder_map)
    from curation.config import default_store_uri
    from curation.reid_vault import store_records
    from curation.store import open_store

    store = open_store(args.store or default_store_uri())
    return store_records(store), store.uri


def _reidentify(args: argparse.Namespace) -> int:
    """Print the original identifiers of one pseudonym: the only command that shows PHI, only to
    whoever holds the officer's private key, and only after the ledger has recorded who asked."""
    from curation.catalog import Catalog
    from curation.catalog.lineage import record_reidentification
    from deid.vault import VaultKeyError, fingerprint, load_private_key, open_records

    if not args.dst or args.private_key is None:
        raise CliError("usage: curate deid reidentify PSEUDONYM --private-key FILE [--map FILE|DIR | --store URI]")
    if not args.private_key.is_file():
        raise CliError(f"no private key file at {args.private_key}")
    try:
        key = load_private_key(args.private_key.read_bytes(), _passphrase(args))
    except VaultKeyError as exc:
        raise CliError(str(exc)) from exc
    records, source = _map_records(args)
    os_user = getpass.getuser()
    try:
        entry, outcome = open_records(records, key, args.dst).get(args.dst), None
    except VaultKeyError as exc:
        entry, outcome, problem = None, "refused", str(exc)
    outcome = outcome or ("found" if entry is not None else "not_found")
    details = {"os_user": os_user, "key": fingerprint(key.public_key()), "map": source}
    if args.reason:
        details["reason"] = args.reason
    record_reidentification(Catalog(args.db), pseudonym=args.dst, actor=args.actor or os_user,
                            outcome=outcome, details=details)
    if outcome == "refused":
        raise CliError(problem)
    if entry is None:
        raise CliError(f"pseudonym {args.dst} is not in the map")
    print(json.dumps({args.dst: entry}, indent=2, sort_keys=True))
    return 0
