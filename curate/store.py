"""`curate store init`: make the configured store ready (its S3 bucket, its folder), once per stack."""
from __future__ import annotations

import argparse

from curate._common import CliError, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("store", help="prepare the store (S3 bucket or folder)",
                       description="Store housekeeping. `init` creates the store's S3 bucket when it is missing "
                                   "(a no-op when it exists), so a fresh production stack can start from nothing.")
    actions = p.add_subparsers(dest="action", required=True)
    init = actions.add_parser("init", help="create the store's bucket or folder when missing")
    init.add_argument("--store", default=None, help="store URI (default: CURATE_STORE_URI or CURATE_HOME/store)")
    init.add_argument("--json", action="store_true", help="print {store, state} as JSON")
    init.set_defaults(func=run_init)


def run_init(args: argparse.Namespace) -> int:
    from curation.config import default_store_uri
    from curation.store import open_store
    from curation.store.provision import StoreNotReady, ensure_store

    store = open_store(args.store or default_store_uri())
    try:
        state = ensure_store(store)
    except StoreNotReady as exc:
        raise CliError(str(exc)) from exc
    if args.json:
        print_json({"store": store.uri, "state": state})
    else:
        print(f"store {store.uri}: {state}")
    return 0
