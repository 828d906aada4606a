"""`curate annotation serve`, `admin create` and `token create|revoke|list`: run and administer the annotation service."""
from __future__ import annotations

import argparse
import getpass
import logging
import os
import re
import sys

from curate._common import CliError, print_json

_TOKEN_PATH = re.compile(r"(/api/invites/)[^/\s?\"]+")


class _RedactInviteTokens(logging.Filter):
    """Access logs must not carry invite tokens (they are credentials)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_TOKEN_PATH.sub(r"\1<token>", a) if isinstance(a, str) else a for a in record.args)
        return True


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("annotation", help="run the annotation service (REST API + web viewer)")
    sub = p.add_subparsers(dest="annotation_command", metavar="ACTION")
    sub.required = True

    s = sub.add_parser("serve", help="start the service (SQLite by default, PostgreSQL with --db)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--db", default=None, help="database URL (default: $ANNOTATION_DATABASE_URL or var/annotation/annotation.db)")
    s.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    s.add_argument("--no-access-log", action="store_true")
    s.add_argument("--keep-alive", type=int, default=75,
                   help="seconds an idle HTTP connection stays open (uvicorn's 5 s default races clients that reuse it)")
    s.set_defaults(func=run_serve)

    a = sub.add_parser("admin", help="manage site admins")
    asub = a.add_subparsers(dest="admin_command", metavar="ACTION")
    asub.required = True
    c = asub.add_parser("create", help="create the first (or another) site admin")
    c.add_argument("--username", required=True)
    c.add_argument("--display-name", default="")
    c.add_argument("--db", default=None)
    c.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    c.add_argument("--update", action="store_true", help="reset an existing user's password and make it admin")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=run_admin_create)

    t = sub.add_parser("token", help="service-account API tokens (the pipeline's credentials)")
    tsub = t.add_subparsers(dest="token_command", metavar="ACTION")
    tsub.required = True
    tc = tsub.add_parser("create", help="create a token scoped to projects and roles; the secret is shown once")
    tc.add_argument("--project", action="append", required=True, help="project name or id (repeat for several)")
    tc.add_argument("--role", action="append", choices=["pipeline", "data_owner"], default=None,
                    help="role the token acts in (repeat for several; default pipeline)")
    tc.add_argument("--name", default=None, help="token name (default: pipeline-<first project>)")
    tc.add_argument("--db", default=None)
    tc.add_argument("--json", action="store_true")
    tc.set_defaults(func=run_token_create)
    tr = tsub.add_parser("revoke", help="revoke a token by name or id (idempotent)")
    tr.add_argument("token", help="token name or id")
    tr.add_argument("--db", default=None)
    tr.add_argument("--json", action="store_true")
    tr.set_defaults(func=run_token_revoke)
    tl = tsub.add_parser("list", help="list tokens and their scopes (never the secret)")
    tl.add_argument("--db", default=None)
    tl.add_argument("--json", action="store_true")
    tl.set_defaults(func=run_token_list)


def _db_url(arg: str | None) -> str:
    from annotation.config import Settings

    return arg or os.environ.get("ANNOTATION_DATABASE_URL") or Settings().database_url


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    os.environ["ANNOTATION_DATABASE_URL"] = _db_url(args.db)
    from annotation.migrate import upgrade

    upgrade(os.environ["ANNOTATION_DATABASE_URL"])  # once, before workers start
    logging.getLogger("uvicorn.access").addFilter(_RedactInviteTokens())
    uvicorn.run("annotation.app:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
                access_log=not args.no_access_log, log_level="info", timeout_keep_alive=args.keep_alive)
    return 0


def run_admin_create(args: argparse.Namespace) -> int:
    from annotation.admin import AdminError, create_admin

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif os.environ.get("ANNOTATION_ADMIN_PASSWORD"):
        password = os.environ["ANNOTATION_ADMIN_PASSWORD"]
    else:
        password = getpass.getpass("password: ")
    try:
        user_id = create_admin(_db_url(args.db), args.username, password, display_name=args.display_name, update=args.update)
    except AdminError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print_json({"user_id": user_id, "username": args.username, "is_admin": True})
    else:
        print(f"admin '{args.username}' ready (id {user_id})")
    return 0


def _token_json(info) -> dict:
    return {"id": info.id, "name": info.name, "account": info.account,
            "scopes": [{"project_id": s.project_id, "project": s.project_name, "role": s.role} for s in info.scopes],
            "created_at": info.created_at.isoformat(), "created_by": info.created_by,
            "revoked_at": info.revoked_at.isoformat() if info.revoked_at else None,
            **({"token": info.token} if info.token else {})}


def _scope_text(info) -> str:
    return ", ".join(f"{s.project_name}:{s.role}" for s in info.scopes)


def _token_action(args: argparse.Namespace, action):
    """Run action(db) on the migrated database; refusals become CLI errors."""
    from annotation.admin import database
    from annotation.service_accounts import ServiceAccountError

    try:
        with database(_db_url(args.db)) as db:
            return action(db)
    except ServiceAccountError as exc:
        raise CliError(str(exc)) from None


def run_token_create(args: argparse.Namespace) -> int:
    from annotation.service_accounts import create_token

    name = args.name or re.sub(r"[^A-Za-z0-9_.\-]", "-", f"pipeline-{args.project[0]}")[:59]
    info = _token_action(args, lambda db: create_token(db, name, list(args.project), args.role or ["pipeline"],
                                                       created_by=_cli_user()))
    if args.json:
        print_json(_token_json(info))
    else:
        print(f"token '{info.name}' ({_scope_text(info)}); shown once, store it now:")
        print(info.token)
    return 0


def run_token_revoke(args: argparse.Namespace) -> int:
    from annotation.service_accounts import revoke_token

    info = _token_action(args, lambda db: revoke_token(db, args.token))
    if args.json:
        print_json(_token_json(info))
    else:
        print(f"token '{info.name}' revoked at {info.revoked_at:%Y-%m-%d %H:%M:%S} UTC")
    return 0


def run_token_list(args: argparse.Namespace) -> int:
    from annotation.service_accounts import list_tokens

    infos = _token_action(args, list_tokens)
    if args.json:
        print_json([_token_json(i) for i in infos])
        return 0
    for i in infos:
        state = f"revoked {i.revoked_at:%Y-%m-%d}" if i.revoked_at else "active"
        print(f"{i.id:>4}  {i.name:<32} {state:<18} {_scope_text(i)}")
    return 0


def _cli_user() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name in a bare container
        return "cli"
