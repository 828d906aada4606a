"""One vocabulary: no series kind, modality, quality decision or quarantine reason code is spelled as a
string literal outside curation/vocabulary.py.

The rule, read on the syntax tree (``ast``), so comments never count:

* Scanned: the Python sources of curation, curate, synth, training, operators, dags and plugins.
  Not scanned: tests and benchmarks (they state expected values literally, on purpose), annotation
  (its own process with its own words), and deid: a standalone library that must not import curation,
  so its reason codes are its own literals; instead every code deid writes must be a value of
  ``QuarantineReason`` (checked below), so the catalog's words still have one list.
* A word is a value of ``SeriesKind``, ``Modality``, ``QualityDecision`` or ``QuarantineReason``.
  A string constant equal to a word is a hit, wherever it stands (argument, comparison, dict key,
  default value), except:
  1. docstrings (a string standing alone as a statement) and the literal parts of f-strings;
  2. a constant inside a tuple/list/set display that also holds at least two other non-empty strings:
     such a display is a list of something else that happens to share a spelling (DICOM ImageType
     terms such as ``("DERIVED", "PRIMARY", "ADC")``, value representations such as ``("UI", "US", "SS")``).
     One other string is not enough: ``("T1W", "spin echo", rule)`` is a row keyed by a kind;
  3. an ORDINARY word (one the code also uses as a plain English name: ``review``, ``exclude``,
     ``quarantined``, ``empty``, ``link``, ``corrupt``, ``truncated``, ``conflict``, ``unreadable``)
     where it names something rather than being a value: a subscript (``cfg["review"]``), a key of a
     dict display, the first argument of ``.get``/``.setdefault``/``.pop``, or an operand of ``/``
     (a path segment such as ``out / "review"``). As a value (``decision = "review"``) it is a hit;
  4. a constant whose last line carries a comment starting ``# not-vocabulary`` (a real comment token,
     optionally followed by why): for a DICOM value that shares a spelling (Value Representation ``"US"``,
     ScanOptions ``"OTHER"``, a description ``"FLAIR"``), said where it stands.
"""
from __future__ import annotations

import ast
import io
import tokenize
from collections.abc import Iterator
from pathlib import Path

import pytest

from curation.vocabulary import Modality, QualityDecision, QuarantineReason, SeriesKind

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("curation", "curate", "synth", "training", "operators", "dags", "plugins")
VOCABULARY = ROOT / "curation" / "vocabulary.py"
WORDS: dict[str, str] = {}
for _enum in (SeriesKind, Modality, QualityDecision, QuarantineReason):
    for _member in _enum:
        WORDS.setdefault(_member.value, _enum.__name__)
ORDINARY = frozenset({"review", "exclude", "quarantined", "empty", "link", "corrupt", "truncated", "conflict",
                      "unreadable"})
MARKER = "# not-vocabulary"


def _exempt(tree: ast.AST) -> tuple[set[int], set[int], set[int]]:
    """ids of constants that are (text: docstrings, f-string parts), (lists of other things), (names)."""
    text: set[int] = set()
    mixed: set[int] = set()
    names: set[int] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant):
            text.add(id(n.value))
        elif isinstance(n, ast.JoinedStr):
            text.update(id(v) for v in n.values)
        elif isinstance(n, (ast.Tuple, ast.List, ast.Set)):
            strs = [e for e in n.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            if sum(1 for e in strs if e.value and e.value not in WORDS) >= 2:
                mixed.update(id(e) for e in strs)
        elif isinstance(n, ast.Subscript) and isinstance(n.slice, ast.Constant):
            names.add(id(n.slice))
        elif isinstance(n, ast.Dict):
            names.update(id(k) for k in n.keys if isinstance(k, ast.Constant))
        elif (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in ("get", "setdefault", "pop")
              and n.args and isinstance(n.args[0], ast.Constant)):
            names.add(id(n.args[0]))
        elif isinstance(n, ast.BinOp) and isinstance(n.op, ast.Div):
            names.update(id(s) for s in (n.left, n.right) if isinstance(s, ast.Constant))
    return text, mixed, names


def stray_words(source: str, filename: str = "<source>") -> Iterator[tuple[int, str, str]]:
    """(line, word, enum name) of every vocabulary word spelled as a literal in ``source``, by the rule above."""
    tree = ast.parse(source, filename)
    marked = {tok.start[0] for tok in tokenize.generate_tokens(io.StringIO(source).readline)
              if tok.type == tokenize.COMMENT and tok.string.startswith(MARKER)}
    text, mixed, names = _exempt(tree)
    for n in ast.walk(tree):
        if not (isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in WORDS):
            continue
        if id(n) in text or id(n) in mixed or (n.value in ORDINARY and id(n) in names):
            continue
        if n.end_lineno in marked:
            continue
        yield n.lineno, n.value, WORDS[n.value]


def _sources() -> list[Path]:
    files = [p for d in SCANNED for p in sorted((ROOT / d).rglob("*.py")) if ".venv" not in p.parts]
    return [p for p in files if p != VOCABULARY]


def test_no_vocabulary_word_is_spelled_outside_the_vocabulary() -> None:
    hits = [f"{p.relative_to(ROOT)}:{line}: {word!r} (use {enum})"
            for p in _sources() for line, word, enum in stray_words(p.read_text(encoding="utf-8"), str(p))]
    assert not hits, f"{len(hits)} vocabulary words spelled as literals:\n" + "\n".join(hits)


@pytest.mark.parametrize(("planted", "found"), [
    ('kind = "T1W"', ["T1W"]),
    ('if h.modality in ("MR", "CT"):\n    pass', ["MR", "CT"]),
    ('decision = "review"', ["review"]),  # an ordinary word as a value
    ('d = {"decision": "exclude"}', ["exclude"]),  # dict value, not key
    ('insp.refuse("phi_leak", "why")', ["phi_leak"]),
    ('order = {"approve": 0}', ["approve"]),  # a word that is not ordinary counts as a key too
    ('cfg["review"]["tile_px"]', []),  # an ordinary word naming a config section
    ('p = out / "review"', []),  # a folder
    ('x = counts.get("quarantined", 0)', []),
    ('t = ("DERIVED", "PRIMARY", "ADC")', []),  # DICOM ImageType terms
    ('rows = [("T1W", "spin echo", f)]', ["T1W"]),  # a row keyed by a kind
    ('m = ("MR", "")', ["MR"]),
    ('ds.add_new(tag, "US", 1)  # not-vocabulary', []),
    ('ds.add_new(tag, "US", 1)  # not-vocabulary: a value representation', []),
    ('s = ("US", "# not-vocabulary")', ["US"]),  # the marker inside a string is no comment
    ('"""T1W"""', []),
    ('s = f"{kind}T1W"', []),
])
def test_the_rule_catches_planted_literals(planted: str, found: list[str]) -> None:
    assert [w for _, w, _ in stray_words(planted)] == found


def test_the_scan_covers_the_platform() -> None:
    """A scan that silently read nothing would pass: the pipeline's own files must be among those read."""
    names = {str(p.relative_to(ROOT)) for p in _sources()}
    assert {"curation/quality/decision.py", "curation/ingest/inspect.py", "synth/site.py"} <= names
    assert not any(n.startswith(("tests/", "annotation/", "deid/")) for n in names)


def _deid_codes() -> set[tuple[str, int, str]]:
    """(file, line, code) of each reason code deid writes: ``x.quarantine(code, ...)``, the 4th argument of
    ``FileResult(...)``, ``reason_code=code`` and assignments to ``.reason_code``."""
    out: set[tuple[str, int, str]] = set()
    for p in sorted((ROOT / "deid").rglob("*.py")):
        tree = ast.parse(p.read_text(encoding="utf-8"))
        rel = str(p.relative_to(ROOT))

        def take(node: ast.AST | None, rel: str = rel) -> None:
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value:
                out.add((rel, node.lineno, node.value))

        for n in ast.walk(tree):
            if isinstance(n, ast.Call):
                fn = n.func.attr if isinstance(n.func, ast.Attribute) else getattr(n.func, "id", "")
                if fn == "quarantine" and n.args:
                    take(n.args[0])
                if fn == "FileResult" and len(n.args) >= 4:
                    take(n.args[3])
                for kw in n.keywords:
                    if kw.arg == "reason_code":
                        take(kw.value)
            elif isinstance(n, ast.Assign):
                for target in n.targets:
                    pairs = (zip(target.elts, n.value.elts) if isinstance(target, ast.Tuple)
                             and isinstance(n.value, ast.Tuple) else [(target, n.value)])
                    for t, v in pairs:
                        if isinstance(t, ast.Attribute) and t.attr == "reason_code":
                            take(v)
    return out


def test_every_reason_code_deid_writes_is_in_the_vocabulary() -> None:
    codes = _deid_codes()
    assert len({c for _, _, c in codes}) >= 8, "the deid scan found too few codes: has deid's API changed?"
    unknown = [f"{f}:{line}: {code!r}" for f, line, code in sorted(codes) if code not in QuarantineReason._value2member_map_]
    assert not unknown, "deid writes reason codes that curation.vocabulary.QuarantineReason lacks:\n" + "\n".join(unknown)


def test_members_serialise_and_hash_as_their_strings() -> None:
    """Replacing a literal by a member must not change a stored value or an idempotency key."""
    import json

    from curation.confighash import config_hash
    from curation.vocabulary import StageStatus, Zone

    with_members = {"kinds": list(SeriesKind), SeriesKind.T1W: QualityDecision.REVIEW, "zone": Zone.DERIVED,
                    "status": StageStatus.EXCLUDED, "code": QuarantineReason.PHI_LEAK}
    plain = {"kinds": [k.value for k in SeriesKind], "T1W": "review", "zone": "derived", "status": "excluded",
             "code": "phi_leak"}
    assert config_hash(with_members) == config_hash(plain)
    assert json.dumps(with_members, sort_keys=True) == json.dumps(plain, sort_keys=True)
    assert f"{Modality.CT}/{SeriesKind.US}" == "CT/US" and str(QualityDecision.EXCLUDE) == "exclude"
