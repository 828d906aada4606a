"""A DAG file's shape read in a fresh interpreter (tasks and their order, operator classes, outlets,
Params, schedule), as the DAG tests compare it; `extra` adds entries (Python expressions over `d`)."""
from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_SCRIPT = r"""
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("d", sys.argv[1])
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
d = m.dag
print("SHAPE" + json.dumps({
    "tasks": {t.task_id: sorted(t.downstream_task_ids) for t in d.tasks},
    "classes": {t.task_id: type(t).__name__ for t in d.tasks},
    "outlets": {t.task_id: [a.name for a in t.outlets] for t in d.tasks if t.outlets},
    "params": {k: {"default": p.value if p.has_value else None, "description": p.description}
               for k, p in d.params.items()},
    "schedule": str(d.timetable.asset_condition),
EXTRA}))
"""


def dag_shape(dag_file: Path, env: Mapping[str, str], extra: Mapping[str, str] = {}, timeout: float = 180
              ) -> dict[str, Any]:
    entries = "".join(f"    {json.dumps(key)}: {expression},\n" for key, expression in extra.items())
    res = subprocess.run([sys.executable, "-c", _SCRIPT.replace("EXTRA", entries), str(dag_file)], env=dict(env),
                         capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, res.stderr[-4000:]
    return json.loads(next(line for line in res.stdout.splitlines() if line.startswith("SHAPE"))[5:])
