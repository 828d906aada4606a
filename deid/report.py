"""The run report: counts per action, per option, pixel work, and every quarantined file with its
hash and reason (never a value)."""
from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deid.profile import Profile
from deid.table import load_table


@dataclass
class RunReport:
    profile: Profile
    started: float = field(default_factory=time.time)
    files_seen: int = 0
    written: int = 0
    unchanged: int = 0
    duplicates: int = 0
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    actions: Counter = field(default_factory=Counter)
    findings: Counter = field(default_factory=Counter)
    patients: set[str] = field(default_factory=set)
    seconds: float = 0.0
    files: list[dict[str, Any]] = field(default_factory=list)

    def add(self, rec: dict[str, Any]) -> None:
        self.files_seen += 1
        self.files.append({k: rec.get(k) for k in ("file", "sha256", "status", "output", "pixels") if rec.get(k) is not None})
        self.actions.update(rec.get("counts", {}))
        status = rec["status"]
        if status == "written":
            self.written += 1
            self.patients.add(rec.get("pseudonym", ""))
        elif status == "unchanged":
            self.unchanged += 1
        elif status == "duplicate":
            self.duplicates += 1
        else:
            self.quarantined.append({k: rec.get(k) for k in ("file", "sha256", "reason_code", "reason", "findings")})
            for f in rec.get("findings") or ():
                self.findings[f["kind"]] += 1

    def as_dict(self) -> dict[str, Any]:
        table = load_table()
        return {
            "schema": "curate-deid-report/1",
            "profile": self.profile.name,
            "options": list(self.profile.options),
            "method": [{"code": c, "scheme": "DCM", "meaning": m} for c, m in self.profile.method_codes],
            "standard": {"table": "PS3.15 E.1-1", "edition": table.edition,
                         "options_columns_edition": table.edition_options_columns},
            "files_seen": self.files_seen,
            "written": self.written,
            "unchanged": self.unchanged,
            "duplicates": self.duplicates,
            "quarantined_count": len(self.quarantined),
            "quarantined": sorted(self.quarantined, key=lambda q: str(q.get("file"))),
            "patients": len(self.patients - {""}),
            "actions": {k: v for k, v in sorted(self.actions.items()) if not k.startswith("by:")},
            # elements decided by each column of Table E.1-1 (an option's name when it overrode
            # the Basic Profile), by pseudonymisation, or by the rules for unlisted attributes
            "per_option": {k[3:]: v for k, v in sorted(self.actions.items()) if k.startswith("by:")},
            "findings": dict(self.findings),
            "seconds": round(self.seconds, 3),
            "files_per_second": round(self.files_seen / self.seconds, 2) if self.seconds else None,
            "files": sorted(self.files, key=lambda r: str(r.get("file"))),
        }

    def write(self, path: str | Path) -> None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.as_dict(), indent=2, sort_keys=True) + "\n")
