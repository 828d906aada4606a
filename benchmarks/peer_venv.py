"""Peer tools run from venvs of their own (their imports clash with ours or need other numpy):
made with python3.11 and pip from PyPI on first use, and again when the probe import fails."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def peer_python(venv: Path, packages: tuple[str, ...], probe: str) -> Path:
    """The venv's python; the venv is (re)made with ``packages`` when ``import <probe>`` fails."""
    py = venv / "bin" / "python"
    if not py.exists() or subprocess.run([str(py), "-I", "-c", f"import {probe}"], capture_output=True).returncode != 0:
        print(f"setting up {venv} (pip, PyPI): {' '.join(packages)}", file=sys.stderr)
        subprocess.run(["python3.11", "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *packages], check=True)
    return py


def project_bytecode(root: Path, packages: tuple[str, ...] = ("curate", "deid")) -> None:
    """Compile this project's modules to bytecode before it is timed, as pip compiles an installed
    package's. The peers run from venvs pip compiled, with ``-I`` (which also ignores
    PYTHONDONTWRITEBYTECODE); a checkout run under PYTHONDONTWRITEBYTECODE=1 (as in some
    sandboxes and containers) would otherwise compile ~50 of our modules from source in every
    run, ~0.15 s of start-up that no installed tool pays."""
    import compileall

    for p in packages:
        compileall.compile_dir(str(root / p), quiet=1)
