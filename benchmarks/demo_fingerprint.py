"""Behaviour fingerprint of a `curate demo --fresh` run: capture it, compare two.

Why: a refactor that moves code must leave every output of the pipeline as it was. `capture`
reads the state a finished demo run left in ``$CURATE_HOME`` (the catalog database
``catalog.sqlite`` and the store's ``deid/`` and ``derived/`` zones) and writes a canonical JSON
file; `compare` says whether two such files are identical and, if not, where they differ.

    python benchmarks/demo_fingerprint.py capture --run --home /tmp/fp-before --out before.json
    ... refactor ...
    python benchmarks/demo_fingerprint.py capture --run --home /tmp/fp-after --out after.json
    python benchmarks/demo_fingerprint.py compare before.json after.json

The catalog is read with ``sqlite3`` and table names only (no project import), so the script keeps
working while the code that writes the catalog moves.

What the fingerprint holds
- per series, keyed by its content identity (``c:`` + SHA-256 of the sorted raw instance hashes,
  first 20 hex digits): format, modality, SOP class, the patient key (already a keyed hash), the
  study key, the instances (hash, size, format, transfer syntax, rows, columns, frames) and every
  stage result (stage, version, input and config hashes, status, reason, output URI, metrics: the
  kind, attributes, quality metrics and decision, the pseudonymous output paths);
- per study (key: hash of its series keys): its stage results (registration, derived series);
- the quarantine records (stage, reason code and sentence, content hash, raw key, a hash of the
  source-relative path: the path itself is restricted);
- the audit ledger as a sorted multiset of events (stage, action, subject by key, inputs,
  outputs, details);
- the SHA-256 of every file of the ``deid`` and ``derived`` zones (path relative to the zone);
- the demo site's input (one digest over its files), and counts.

Floats anywhere in metrics are rounded to ``FLOAT_DIGITS`` significant digits. The home folder is
written as ``$CURATE_HOME`` and temporary folders (``/tmp/curate-*``) as ``<tmp>`` in every string.

Excluded by name, because they legitimately change from run to run:
- columns ``id`` and every ``*_id`` foreign key (autoincrement ids: the order parallel tasks reach
  the database), ``created_at``, ``resolved_at`` (timestamps);
- ledger columns ``id``, ``at`` (event time), ``hash``, ``prev_hash`` (they chain the times; the
  ledger's integrity is checked by ``curate audit``, not here), and the event order;
- metric keys ``seconds``, ``level_seconds``, ``setup_seconds`` (durations) and ``source``,
  ``path``, ``review_png`` (paths in per-run temporary folders named after catalog ids);
- the ``vault`` zone (site secret, sealed re-identification map: random keys by design) and the
  ``raw`` and ``releases`` zones (raw is covered by the instance hashes);
- Airflow's run ids and logs (not read at all).

`capture --run` first runs the demo with ``CURATE_HOME=DIR``, a private ``AIRFLOW_HOME=DIR/airflow``
(``airflow db migrate`` first), a fixed pseudonym secret (``CURATE_PSEUDONYM_SECRET``, unless one
is set: a fresh store otherwise draws a random secret, and every pseudonym would differ) and the
registration on one SimpleITK thread (``CURATE_REGISTRATION_CONFIG``: a copy of the defaults with
``threads: 1``; ``--registration-threads 0`` keeps the configured 2). With two threads the Mattes
MI registration is not reproducible bit for bit: the same DWI series motion-corrected three times
gave framewise displacements 9.928265 / 9.928266 / 9.927727 mm, and every derived file differs.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FORMAT = "curate-demo-fingerprint/1"
FLOAT_DIGITS = 6
#: Catalog columns never fingerprinted (autoincrement ids, foreign keys to them, timestamps).
EXCLUDED_COLUMNS = frozenset({"id", "created_at", "resolved_at", "at", "hash", "prev_hash"})
#: Keys dropped wherever they occur inside metrics / ledger details (durations, temp paths).
EXCLUDED_KEYS = frozenset({"seconds", "level_seconds", "setup_seconds", "source", "path", "review_png"})
ZONES = ("deid", "derived")
#: Used by `capture --run` when the environment has no pseudonym secret (see the docstring).
DEMO_SECRET = "curate-demo-fingerprint-secret-0001"
REGISTRATION_DEFAULTS = REPO / "include" / "registration" / "default.yaml"
_TMP = re.compile(r"/tmp/curate-[A-Za-z0-9_.-]+")
_SUBJECT = re.compile(r"^(series|study|instance|source):(\d+)$")


# --- normalisation ----------------------------------------------------------------------------

def _round(x: float) -> float | str:
    if math.isnan(x) or math.isinf(x):
        return repr(x)
    return float(f"{x:.{FLOAT_DIGITS}g}")


def normalise(value: Any, home: str = "") -> Any:
    """Canonical JSON value: floats rounded, excluded keys dropped, run paths replaced."""
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return _round(value)
    if isinstance(value, str):
        if home:
            value = value.replace(home, "$CURATE_HOME")
        return _TMP.sub("<tmp>", value)
    if isinstance(value, dict):
        return {str(k): normalise(v, home) for k, v in sorted(value.items()) if k not in EXCLUDED_KEYS}
    if isinstance(value, (list, tuple)):
        return [normalise(v, home) for v in value]
    return normalise(str(value), home)


def _json(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _digest(parts: Iterable[str], n: int = 20) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\n")
    return h.hexdigest()[:n]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def zone_hashes(root: Path) -> dict[str, str]:
    if not root.is_dir():
        return {}
    return {p.relative_to(root).as_posix(): sha256_file(p)
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


# --- capture ----------------------------------------------------------------------------------

def _rows(db: sqlite3.Connection, table: str) -> list[dict[str, Any]]:
    cur = db.execute(f"SELECT * FROM {table}")  # noqa: S608 - fixed table names
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def _keep(row: dict[str, Any], home: str, drop: Iterable[str] = ()) -> dict[str, Any]:
    skip = set(drop)
    return {k: normalise(_json(v), home) for k, v in sorted(row.items())
            if k not in EXCLUDED_COLUMNS and not k.endswith("_id") and k not in skip}


def capture(home: Path, patients: int | None = None, seed: int | None = None) -> dict[str, Any]:
    """The fingerprint of the demo state under `home` (see the module docstring)."""
    home = home.resolve()
    h = str(home)
    db_path = home / "catalog.sqlite"
    if not db_path.exists():
        raise FileNotFoundError(f"no catalog at {db_path}: run the demo first (or pass --run)")
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        tables = {name: _rows(db, name) for name in
                  ("source", "patient", "study", "series", "instance", "stage_result",
                   "quarantine_record", "lineage_event")}
    finally:
        db.close()

    instances_of: dict[int, list[dict[str, Any]]] = {}
    for i in tables["instance"]:
        instances_of.setdefault(i["series_id"], []).append(i)
    series_key: dict[int, str] = {}
    for s in tables["series"]:
        shas = sorted(i["sha256"] for i in instances_of.get(s["id"], []))
        series_key[s["id"]] = "c:" + _digest(shas)
    study_members: dict[int, list[str]] = {}
    for s in tables["series"]:
        if s["study_id"] is not None:
            study_members.setdefault(s["study_id"], []).append(series_key[s["id"]])
    study_key = {st["id"]: "c:" + _digest(sorted(study_members.get(st["id"], []))) for st in tables["study"]}
    patient_of_study = {st["id"]: st["patient_id"] for st in tables["study"]}
    patient_key = {p["id"]: p["patient_key"] for p in tables["patient"]}
    source_key = {s["id"]: f"{s['kind']}:{normalise(s['uri'], h)}" for s in tables["source"]}
    subject_key = {"series": series_key, "study": study_key, "source": source_key}

    def subject(kind: str, sid: Any) -> str:
        return f"{kind}:{subject_key.get(kind, {}).get(sid, f'?{sid}')}"

    results: dict[str, list[dict[str, Any]]] = {}
    for r in tables["stage_result"]:
        row = _keep(r, h, drop=("subject_type",))
        results.setdefault(subject(r["subject_type"], r["subject_id"]), []).append(row)
    for rows in results.values():
        rows.sort(key=lambda x: json.dumps(x, sort_keys=True))

    series: dict[str, Any] = {}
    for s in tables["series"]:
        key = series_key[s["id"]]
        rec = _keep(s, h, drop=("series_instance_uid",))  # a source UID: restricted
        rec["study"] = study_key.get(s["study_id"])
        rec["patient_key"] = patient_key.get(patient_of_study.get(s["study_id"]))
        rec["instances"] = sorted(
            (_keep(i, h, drop=("sop_instance_uid", "source_path")) for i in instances_of.get(s["id"], [])),
            key=lambda x: json.dumps(x, sort_keys=True))
        rec["stages"] = results.get(f"series:{key}", [])
        if key in series:  # two series with the same content: keep both, in a stable order
            key = f"{key}#{sum(k.startswith(key) for k in series)}"
        series[key] = rec

    studies = {k: {"patient_key": patient_key.get(patient_of_study.get(sid)),
                   "series": sorted(study_members.get(sid, [])),
                   "stages": results.get(f"study:{k}", [])}
               for sid, k in study_key.items()}

    quarantine = sorted(
        ({**_keep(q, h, drop=("file",)), "file_sha256": hashlib.sha256(q["file"].encode()).hexdigest(),
          "source": source_key.get(q["source_id"])} for q in tables["quarantine_record"]),
        key=lambda x: json.dumps(x, sort_keys=True))

    ledger = []
    for e in tables["lineage_event"]:
        row = _keep(e, h)
        m = _SUBJECT.match(e["subject"] or "")
        if m:
            row["subject"] = subject(m.group(1), int(m.group(2)))
        ledger.append(row)
    ledger.sort(key=lambda x: json.dumps(x, sort_keys=True))

    zones = {z: zone_hashes(home / "store" / z) for z in ZONES}
    fp: dict[str, Any] = {
        "format": FORMAT,
        "float_significant_digits": FLOAT_DIGITS,
        "counts": {**{t: len(rows) for t, rows in tables.items()},
                   **{f"{z}_files": len(files) for z, files in zones.items()}},
        "series": series,
        "studies": studies,
        "quarantine": quarantine,
        "ledger": ledger,
        "zones": zones,
    }
    if patients is not None and seed is not None:
        site = home / "demo" / f"site-p{patients}-s{seed}"
        files = zone_hashes(site)
        fp["site"] = {"patients": patients, "seed": seed, "files": len(files),
                      "digest": _digest(f"{k} {v}" for k, v in sorted(files.items()))}
    return fp


def registration_config(path: Path, threads: int) -> Path:
    """A copy of the registration defaults (``CURATE_REGISTRATION_CONFIG`` or the shipped file)
    with every section's SimpleITK ``threads`` set to `threads`, written to `path`."""
    import yaml

    source = Path(os.environ.get("CURATE_REGISTRATION_CONFIG") or REGISTRATION_DEFAULTS)
    cfg = yaml.safe_load(source.read_text())
    for section in cfg.values():
        if isinstance(section, dict) and "threads" in section:
            section["threads"] = threads
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def run_demo(home: Path, patients: int, seed: int, registration_threads: int = 1) -> None:
    """`curate demo --fresh` into `home`, with its own Airflow home, a fixed pseudonym secret and
    (`registration_threads` > 0) the registration pinned to that many SimpleITK threads."""
    home = home.resolve()
    airflow_home = home / "airflow"
    airflow_home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(CURATE_HOME=str(home), AIRFLOW_HOME=str(airflow_home),
               AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{airflow_home / 'airflow.db'}")
    if not env.get("CURATE_PSEUDONYM_SECRET"):
        env["CURATE_PSEUDONYM_SECRET"] = DEMO_SECRET
    if registration_threads > 0:
        env["CURATE_REGISTRATION_CONFIG"] = str(
            registration_config(home / "registration-config.yaml", registration_threads))
    script = ("source include/airflow/env.sh && airflow db migrate > \"$AIRFLOW_HOME/migrate.log\" 2>&1 && "
              f"curate demo --fresh --patients {int(patients)} --seed {int(seed)}")
    subprocess.run(["bash", "-c", script], cwd=REPO, env=env, check=True)


# --- compare ----------------------------------------------------------------------------------

def _flatten(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(value, dict) and value:
        for k in sorted(value):
            yield from _flatten(value[k], (*path, str(k)))
    elif isinstance(value, list) and value:
        for i, v in enumerate(value):
            yield from _flatten(v, (*path, f"[{i}]"))
    else:
        yield path, value


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, str, Any, Any]]:
    """(where, field, value in a, value in b) for each leaf that differs; `where` is the section
    and its key (``series c:…``, ``zones deid``), `field` the rest of the path. A key present on
    one side only is one difference (``<absent>`` on the other), not one per leaf below it."""
    out: list[tuple[str, str, Any, Any]] = []
    absent = "<absent>"

    def walk(x: Any, y: Any, path: tuple[str, ...]) -> None:
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y), key=str):
                if k not in x or k not in y:
                    where, field = _split((*path, str(k)))
                    out.append((where, field, x.get(k, absent), y.get(k, absent)))
                else:
                    walk(x[k], y[k], (*path, str(k)))
        elif isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
            for i, (u, v) in enumerate(zip(x, y)):
                walk(u, v, (*path, f"[{i}]"))
        elif x != y:
            where, field = _split(path)
            out.append((where, field, x, y))

    walk(a, b, ())
    return out


def _split(path: tuple[str, ...]) -> tuple[str, str]:
    n = 2 if path and path[0] in ("series", "studies", "zones") else 1
    return " ".join(path[:n]), ".".join(path[n:]) or "(value)"


def _short(v: Any, width: int = 100) -> str:
    s = json.dumps(v, sort_keys=True) if not isinstance(v, str) else v
    return s if len(s) <= width else s[: width - 3] + "..."


def compare(a: dict[str, Any], b: dict[str, Any], limit: int = 40, out=sys.stdout) -> int:  # noqa: ANN001
    """0 when identical; else print each difference (at most `limit` lines, then a count) and 1."""
    diffs = differences(a, b)
    if not diffs:
        print("identical", file=out)
        return 0
    for where, field, x, y in diffs[:limit]:
        print(f"{where} | {field}: {_short(x)} vs {_short(y)}", file=out)
    if len(diffs) > limit:
        print(f"... and {len(diffs) - limit} more differences", file=out)
    sections: dict[str, int] = {}
    for where, *_ in diffs:
        sections[where.split(" ")[0]] = sections.get(where.split(" ")[0], 0) + 1
    print(f"{len(diffs)} differences ({', '.join(f'{k} {v}' for k, v in sorted(sections.items()))})", file=out)
    return 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("capture", help="fingerprint the demo state of a CURATE_HOME")
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--home", type=Path, default=None, help="CURATE_HOME (default: $CURATE_HOME, else ./var)")
    c.add_argument("--patients", type=int, default=3)
    c.add_argument("--seed", type=int, default=7)
    c.add_argument("--run", action="store_true", help="first run `curate demo --fresh` into --home")
    c.add_argument("--registration-threads", type=int, default=1,
                   help="with --run: SimpleITK threads of the registration (default 1: more are not "
                        "reproducible bit for bit; 0 keeps the configured value)")
    k = sub.add_parser("compare", help="exit 0 when two fingerprints are identical, else 1 with the differences")
    k.add_argument("a", type=Path)
    k.add_argument("b", type=Path)
    k.add_argument("--limit", type=int, default=40, help="differences printed at most (default 40)")
    args = ap.parse_args(argv)
    if args.cmd == "compare":
        return compare(json.loads(args.a.read_text()), json.loads(args.b.read_text()), args.limit)
    home = args.home or Path(os.environ.get("CURATE_HOME") or REPO / "var")
    if args.run:
        run_demo(home, args.patients, args.seed, args.registration_threads)
    fp = capture(home, args.patients, args.seed)
    args.out.write_text(json.dumps(fp, indent=1, sort_keys=True) + "\n")
    print(f"{args.out}: {len(fp['series'])} series, {len(fp['studies'])} studies, "
          f"{fp['counts']['deid_files']} deid files, {fp['counts']['derived_files']} derived files",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
