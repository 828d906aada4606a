"""`curate receive`: a DICOM C-STORE receiver (Storage SCP) feeding the catalog and curate_source."""
from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path

from curate._common import CliError
from curation.settings import DEFAULT_SITE


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "receive",
        help="receive images from a PACS or modality by DICOM C-STORE and curate each series once complete",
        description="Listen as a DICOM Storage SCP. Every received object is validated, stored by content hash "
                    "and catalogued exactly as `curate ingest` does (bad ones quarantined and refused with "
                    "status C000); a series is complete after --quiet-seconds without a new instance, and "
                    "curation of it is then started through Airflow's REST API. Stop with SIGTERM or Ctrl-C.",
    )
    p.add_argument("--aet", default="CURATE", help="our AE title; associations must call it (default CURATE)")
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (default all interfaces)")  # noqa: S104
    p.add_argument("--port", type=int, default=11112, help="TCP port (default 11112)")
    p.add_argument("--accept-aet", action="append", default=[], metavar="AET",
                   help="calling AE title allowed to send; repeatable (default: any)")
    p.add_argument("--quiet-seconds", type=float, default=30.0,
                   help="a series is complete after this long without a new instance (default 30)")
    p.add_argument("--site", default=None, help=f"site name (default: CURATE_SITE or {DEFAULT_SITE!r})")
    p.add_argument("--store", default=None, help="store URI (default: CURATE_STORE_URI or CURATE_HOME/store)")
    p.add_argument("--db", default=None, help="catalog URL (default: CURATE_DB_URL or CURATE_HOME/catalog.sqlite)")
    p.add_argument("--spool", type=Path, default=None,
                   help="spool folder, shared with the Airflow workers (default CURATE_HOME/receive)")
    p.add_argument("--spool-retention-hours", type=float, default=168.0,
                   help="remove a curated series' spool folder this long after its run was started (default "
                        "168 = a week; 0 keeps them); the raw zone keeps every object")
    p.add_argument("--trigger", choices=["dag-run", "asset", "none"], default="dag-run",
                   help="how to start curation of a complete series (default dag-run of curate_source)")
    p.add_argument("--airflow-url", default="http://127.0.0.1:8080", help="Airflow API server")
    p.add_argument("--airflow-user", default=None, help="Airflow user allowed to trigger DAG runs / post events")
    p.add_argument("--airflow-password-file", type=Path, default=None,
                   help="file holding that user's password, or a JSON {user: password} file such as Airflow's "
                        "simple auth manager passwords file (a file, so it never shows in `ps`)")
    p.add_argument("--dag", default="curate_source", help="DAG started by --trigger dag-run")
    p.add_argument("--asset", default="received_series", help="asset posted by --trigger asset")
    p.add_argument("--max-associations", type=int, default=8, help="simultaneous associations (default 8)")
    p.add_argument("--max-pdu", type=int, default=65536, help="maximum PDU size we accept, bytes (default 65536)")
    p.add_argument("--tls-cert", type=Path, default=None, help="PEM certificate: listen with DICOM TLS")
    p.add_argument("--tls-key", type=Path, default=None, help="PEM private key of --tls-cert")
    p.add_argument("--tls-ca", type=Path, default=None, help="PEM CA bundle: require client certificates it signed")
    p.set_defaults(func=run)


def _password(path: Path | None, user: str | None) -> str | None:
    """The Airflow password from a file holding just it, or from a JSON {user: password} file (the shape
    of Airflow's simple auth manager passwords file, which docker-compose.yaml mounts)."""
    if path is None:
        return None
    try:
        text = path.read_text()
    except OSError as exc:
        raise CliError(f"cannot read --airflow-password-file: {exc.strerror}") from exc
    try:
        table = json.loads(text)
    except ValueError:
        return text.strip()
    if not isinstance(table, dict) or user not in table:
        raise CliError(f"--airflow-password-file holds JSON without a password for user {user!r}")
    return str(table[user])


def run(args: argparse.Namespace) -> int:
    from curation.catalog import Catalog
    from curation.catalog.db import curate_home
    from curation.config import default_site, default_store_uri
    from curation.receive import AirflowTrigger, Intake, Receiver, ReceiverConfig
    from curation.receive.scp import run_forever
    from curation.settings import settings
    from curation.store import open_store

    if bool(args.tls_cert) != bool(args.tls_key):
        raise CliError("--tls-cert and --tls-key go together")
    password = _password(args.airflow_password_file, args.airflow_user)
    config = ReceiverConfig(aet=args.aet, host=args.host, port=args.port, accept_aets=tuple(args.accept_aet),
                            quiet_seconds=args.quiet_seconds, max_associations=args.max_associations,
                            max_pdu=args.max_pdu, spool_retention_hours=args.spool_retention_hours,
                            tls_cert=args.tls_cert, tls_key=args.tls_key, tls_ca=args.tls_ca)
    intake = Intake(Catalog(args.db), open_store(args.store or default_store_uri()),
                    args.spool or curate_home() / "receive", site=args.site or default_site(),
                    receiver_aet=args.aet, max_file_bytes=settings().max_file_bytes)
    trigger = AirflowTrigger(args.airflow_url, mode=args.trigger, dag_id=args.dag, asset=args.asset,
                             username=args.airflow_user, password=password)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        run_forever(Receiver(config, intake, trigger), stop)
    except OSError as exc:
        raise CliError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from exc
    return 0
