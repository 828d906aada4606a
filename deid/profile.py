"""De-identification profiles: the Basic Profile plus options, read from YAML data in
``include/deid/profiles/`` and compiled once into a tag -> action lookup for the single pass."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from deid._paths import include_dir
from deid.table import OPTION_COLUMNS, AnnexETable, load_table

#: CID 7050 (De-identification Method) codes, scheme DCM, for the profile and each option.
CID_7050 = {
    "basic": ("113100", "Basic Application Confidentiality Profile"),
    "clean_pixel_data": ("113101", "Clean Pixel Data Option"),
    "clean_graphics": ("113103", "Clean Graphics Option"),
    "clean_structured_content": ("113104", "Clean Structured Content Option"),
    "clean_descriptors": ("113105", "Clean Descriptors Option"),
    "retain_full_dates": ("113106", "Retain Longitudinal Temporal Information Full Dates Option"),
    "retain_modified_dates": ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    "retain_patient_characteristics": ("113108", "Retain Patient Characteristics Option"),
    "retain_device_identity": ("113109", "Retain Device Identity Option"),
    "retain_uids": ("113110", "Retain UIDs Option"),
    "retain_safe_private": ("113111", "Retain Safe Private Option"),
    "retain_institution_identity": ("113112", "Retain Institution Identity Option"),
}

#: Options this implementation supports (selectable per run).
SUPPORTED_OPTIONS = frozenset(
    {
        "clean_descriptors",
        "retain_modified_dates",
        "retain_full_dates",
        "retain_patient_characteristics",
        "retain_device_identity",
        "retain_institution_identity",
        "retain_safe_private",
        "clean_structured_content",
        "clean_graphics",
        "clean_comments",
    }
)

#: Options of this implementation that are no column of Table E.1-1: ``clean_comments`` keeps the
#: free-text comments of ``include/deid/comments.yaml`` (cleaned) that every profile removes.
EXTRA_OPTIONS = frozenset({"clean_comments"})
COMMENTS_FILE = "comments.yaml"

# Composite table codes resolved to one concrete action. No IOD module knowledge is available in a
# single pass, so the choice that keeps Type 2 attributes present (Z over X) and references
# consistent (U for X/Z/U*) is taken.
_RESOLVE = {"X/Z": "Z", "X/D": "X", "Z/D": "Z", "X/Z/D": "Z", "X/Z/U*": "U"}


class ProfileError(ValueError):
    """A profile or option name that does not exist."""


@dataclass(frozen=True)
class Profile:
    name: str
    options: tuple[str, ...]
    description: str = ""
    pseudonymise: tuple[str, ...] = ("PatientID", "PatientName")
    clean_pixel_data: bool = True

    def with_options(self, extra: tuple[str, ...] | list[str]) -> "Profile":
        opts = tuple(dict.fromkeys([*self.options, *extra]))
        _check_options(opts)
        return Profile(self.name, opts, self.description, self.pseudonymise, self.clean_pixel_data)

    @property
    def method_codes(self) -> list[tuple[str, str]]:
        opts = set(self.options)
        if "clean_comments" in opts:  # comments kept and cleaned: Clean Descriptors (DCM 113105)
            opts = (opts - {"clean_comments"}) | {"clean_descriptors"}
        keys = ["basic", *sorted(opts)]
        if self.clean_pixel_data:
            keys.append("clean_pixel_data")
        return [CID_7050[k] for k in keys]

    @property
    def method_text(self) -> str:
        return "; ".join(meaning for _, meaning in self.method_codes)


def _check_options(options: tuple[str, ...]) -> None:
    unknown = [o for o in options if o not in SUPPORTED_OPTIONS]
    if unknown:
        raise ProfileError(f"unknown option(s) {unknown}; choose from {sorted(SUPPORTED_OPTIONS)}")
    if "retain_full_dates" in options and "retain_modified_dates" in options:
        raise ProfileError("retain_full_dates and retain_modified_dates exclude each other")


def available_profiles() -> list[str]:
    return sorted(p.stem for p in (include_dir() / "profiles").glob("*.yaml"))


def profile_path(name_or_path: str) -> Path:
    """The file of a profile given by name (``include/deid/profiles/NAME.yaml``) or by path."""
    p = Path(name_or_path)
    return p if p.suffix else include_dir() / "profiles" / f"{name_or_path}.yaml"


def load_profile(name_or_path: str = "default", options: tuple[str, ...] | list[str] = ()) -> Profile:
    """Load a profile by name (``include/deid/profiles/NAME.yaml``) or path, plus extra options."""
    p = profile_path(name_or_path)
    if not p.is_file():
        raise ProfileError(f"no profile {name_or_path!r}; available: {available_profiles()}")
    data = yaml.safe_load(p.read_text()) or {}
    prof = Profile(
        name=str(data.get("name", p.stem)),
        options=tuple(data.get("options") or ()),
        description=str(data.get("description", "")),
        pseudonymise=tuple(data.get("pseudonymise") or ()),
        clean_pixel_data=bool(data.get("clean_pixel_data", True)),
    )
    _check_options(prof.options)
    return prof.with_options(tuple(options))


@dataclass(frozen=True)
class Plan:
    """Compiled actions: ``exact`` maps a tag to one of X Z D K C U P, ``repeating`` holds
    (value, mask, action) for 50xx/60xx rows, ``source`` tells which column decided each tag,
    ``comments`` the kept comment attributes that get the name-finding cleaner."""

    exact: dict[int, str]
    repeating: tuple[tuple[int, int, str], ...]
    private: str
    source: dict[int, str] = field(default_factory=dict)
    options: frozenset[str] = frozenset()
    comments: frozenset[int] = frozenset()
    #: the header walk's per-(tag, VR) decisions, filled as elements are met (deid.header._dispatch)
    dispatch: dict = field(default_factory=dict, compare=False, repr=False)


@lru_cache(maxsize=4)
def comment_keywords(path: str | None = None) -> tuple[str, ...]:
    """The free-text comment attributes (``include/deid/comments.yaml``, all groups)."""
    p = Path(path) if path else include_dir() / COMMENTS_FILE
    data = yaml.safe_load(p.read_text()) or {}
    return tuple(kw for group in data.values() for kw in group)


def _decide(actions: dict[str, str], options: tuple[str, ...]) -> tuple[str, str]:
    """An option's K beats its C, and any selected option beats the Basic Profile."""
    chosen = [(actions[o], o) for o in options if o in actions]
    for code in ("K", "C"):
        for a, o in chosen:
            if a == code:
                return a, o
    if chosen:
        return chosen[0]
    basic = actions.get("basic", "X")
    return _RESOLVE.get(basic, basic), "basic"


@lru_cache(maxsize=16)
def _compile(options: tuple[str, ...], pseudonymise: tuple[str, ...], table_path: str | None) -> Plan:
    from pydicom.datadict import tag_for_keyword

    table: AnnexETable = load_table(table_path)
    exact: dict[int, str] = {}
    source: dict[int, str] = {}
    for tag, row in table.exact().items():
        action, col = _decide(row.actions, options)
        exact[tag] = action
        source[tag] = col
    for kw in pseudonymise:
        t = tag_for_keyword(kw)
        if t is not None:
            exact[t] = "P"
            source[t] = "pseudonymise"
    comments = set()
    rows = table.exact()
    for kw in comment_keywords():
        t = tag_for_keyword(kw)
        if t is None or t not in rows:
            raise ProfileError(f"comment attribute {kw!r} is not in Table E.1-1")
        if "clean_comments" in options:
            exact[t], source[t] = "C", "clean_comments"
            comments.add(t)
        else:  # the Basic Profile's own action, whatever option would keep the text
            exact[t], source[t] = _decide(rows[t].actions, ())[0], "comments"
    repeating = tuple((r.tag, r.mask, _decide(r.actions, options)[0]) for r in table.repeating())
    private = "C" if "retain_safe_private" in options else "X"
    return Plan(exact, repeating, private, source, frozenset(options), frozenset(comments))


def compile_plan(profile: Profile, table_path: str | None = None) -> Plan:
    assert set(profile.options) <= set(OPTION_COLUMNS) | EXTRA_OPTIONS
    return _compile(tuple(sorted(profile.options)), tuple(profile.pseudonymise), table_path)
