"""Helpers shared by the sub-command modules."""
from __future__ import annotations

import json
import sys
from typing import Any


class CliError(Exception):
    """An error the user can fix (bad path, bad option); printed without a traceback."""


def print_json(obj: Any) -> None:
    """Print one JSON document on stdout (machine-readable output of `--json`)."""
    json.dump(obj, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")
