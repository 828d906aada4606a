"""Entry point of the `curate` console script."""
from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence

import curate as cli_pkg
from curate._common import CliError, exit_now


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with ``command`` (a module of this package that registers the
    command of that name) only that command's module is imported: a run then pays no start-up
    for the others' imports (`curate agreement` imports pandas, ~0.3 s of every `curate deid`)."""
    parser = argparse.ArgumentParser(
        prog="curate",
        description="Curate medical images: ingest, de-identify, classify, score, register, annotate, release.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(cli_pkg.__path__), key=lambda m: m.name):
        if info.name in {"main", "__main__"} or info.name.startswith("_"):
            continue
        if command is not None and info.name != command:
            continue
        module = importlib.import_module(f"{cli_pkg.__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def _command_module(argv: Sequence[str]) -> str | None:
    """The module named by the first word of the command line when it is one that registers a
    command of its own name (``deid``, ``ingest``...); None otherwise (help, an unknown word, a
    command registered by a module of another name): then every module is imported."""
    words = [a for a in argv if not a.startswith("-")]
    if not words or words[0] in {"main", "__main__"} or words[0].startswith("_"):
        return None
    if not any(info.name == words[0] for info in pkgutil.iter_modules(cli_pkg.__path__)):
        return None
    probe = argparse.ArgumentParser(add_help=False)
    sub = probe.add_subparsers(dest="command")
    getattr(importlib.import_module(f"{cli_pkg.__name__}.{words[0]}"), "register", lambda s: None)(sub)
    return words[0] if words[0] in sub.choices else None


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. From the command line (``argv`` None: the `curate` script, ``python -m
    curate``), a command that sets ``args.exit_now`` (everything written, closed and joined) ends
    the process without the interpreter's teardown; called with ``argv`` (tests, other code) it
    always returns."""
    from_command_line = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_module(argv))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        code = int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except CliError as exc:
        print(f"curate: error: {exc}", file=sys.stderr)
        return 2
    if from_command_line and getattr(args, "exit_now", False):
        exit_now(code)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
