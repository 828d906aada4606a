"""Helpers shared by the sub-command modules."""
from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any, NoReturn


class CliError(Exception):
    """An error the user can fix (bad path, bad option); printed without a traceback."""


def print_json(obj: Any) -> None:
    """Print one JSON document on stdout (machine-readable output of `--json`)."""
    json.dump(obj, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def exit_now(code: int) -> NoReturn:
    """End the process at once with ``code``, after flushing logging, stdout and stderr: the
    interpreter's teardown (freeing every module, numpy's and OpenCV's state, the OCR engine)
    costs ~0.07-0.1 s CPU that a command which has written and closed everything does not need
    (a 978-file `curate deid` run spends ~0.5 s in its parent). atexit handlers do not run:
    only for commands that leave none with work to do (see curate.main)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can be written
            pass
    os._exit(code)
