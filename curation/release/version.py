"""Semantic versions of a release and `NAME@VERSION` references, with errors that say what is wrong.

A release's version tells a data scientist what kind of change to expect: `major` when the selection
or the labels changed in a way that breaks comparisons, `minor` when series were added, `patch` for
corrections. The platform does not guess which: the person building the release says `--bump`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

BUMPS = ("major", "minor", "patch")
#: The first version of a release, whatever the bump (IDC and TCIA number first versions 1.0).
FIRST = "1.0.0"

_VERSION = re.compile(r"^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})$")
#: Release names are store-key and file-name safe: lower case letters, digits, '.', '_' and '-'.
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass(frozen=True, order=True)
class Version:
    """MAJOR.MINOR.PATCH (no pre-release or build suffix: a published release is final)."""

    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> Version:
        match = _VERSION.match(text.strip()) if isinstance(text, str) else None
        if match is None:
            raise ValueError(f"version {text!r} is not MAJOR.MINOR.PATCH (e.g. 1.2.0; no 'v', no leading zeros)")
        return cls(*(int(g) for g in match.groups()))

    def bump(self, part: str) -> Version:
        if part == "major":
            return Version(self.major + 1, 0, 0)
        if part == "minor":
            return Version(self.major, self.minor + 1, 0)
        if part == "patch":
            return Version(self.major, self.minor, self.patch + 1)
        raise ValueError(f"unknown version bump {part!r}; expected one of {', '.join(BUMPS)}")

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


def check_name(name: str) -> str:
    """Return `name` if it is a valid release name, else raise ValueError saying the rule."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"release name {name!r} must be 1-64 characters of a-z, 0-9, '.', '_', '-' "
                         "starting with a letter or digit")
    return name


@dataclass(frozen=True)
class ReleaseRef:
    """`NAME@VERSION` as typed on the command line (`demo@1.0.0`)."""

    name: str
    version: Version

    @classmethod
    def parse(cls, text: str) -> ReleaseRef:
        if not isinstance(text, str) or text.count("@") != 1:
            raise ValueError(f"release {text!r} must be written NAME@VERSION (e.g. demo@1.0.0)")
        name, version = text.split("@")
        return cls(check_name(name), Version.parse(version))

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


def next_version(previous: Version | None, bump: str) -> Version:
    """The version a new build gets: the bump of the newest published one, or 1.0.0 for the first."""
    if bump not in BUMPS:
        raise ValueError(f"unknown version bump {bump!r}; expected one of {', '.join(BUMPS)}")
    return Version.parse(FIRST) if previous is None else previous.bump(bump)


__all__ = ["BUMPS", "FIRST", "ReleaseRef", "Version", "check_name", "next_version"]
