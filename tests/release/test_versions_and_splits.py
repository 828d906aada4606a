"""Versions and NAME@VERSION parse strictly and bump by the rules; patient splits are disjoint, near
their ratios, and do not move when patients are added."""
from __future__ import annotations

import pytest

from curation.release.splits import SplitPlan, assign, assign_all, counts
from curation.release.version import ReleaseRef, Version, next_version


def test_versions_parse_bump_and_order():
    v = Version.parse("1.2.3")
    assert (str(v.bump("major")), str(v.bump("minor")), str(v.bump("patch"))) == ("2.0.0", "1.3.0", "1.2.4")
    assert Version.parse("1.10.0") > Version.parse("1.9.9")
    assert str(next_version(None, "patch")) == "1.0.0" and str(next_version(v, "minor")) == "1.3.0"
    for bad in ("1.2", "v1.2.3", "01.2.3", "1.2.3-rc1", ""):
        with pytest.raises(ValueError, match="MAJOR.MINOR.PATCH"):
            Version.parse(bad)
    with pytest.raises(ValueError, match="unknown version bump 'huge'"):
        v.bump("huge")
    assert str(ReleaseRef.parse("demo@1.0.0")) == "demo@1.0.0"
    with pytest.raises(ValueError, match="NAME@VERSION"):
        ReleaseRef.parse("demo-1.0.0")
    with pytest.raises(ValueError, match="release name 'Demo'"):
        ReleaseRef.parse("Demo@1.0.0")


def test_splits_are_stable_when_patients_are_added_and_near_their_ratios():
    plan = SplitPlan(seed=7)
    first = assign_all([f"ANON{i:05d}" for i in range(2000)], plan)
    later = assign_all([f"ANON{i:05d}" for i in range(3000)], plan)
    assert all(later[p] == s for p, s in first.items())
    n = counts(later, plan)
    assert set(n) == {"train", "validation", "test"} and sum(n.values()) == 3000
    assert abs(n["train"] / 3000 - 0.7) < 0.03 and abs(n["test"] / 3000 - 0.15) < 0.03
    # another seed deals differently; a patient is in exactly one split by construction
    other = assign_all(first, SplitPlan(seed=8))
    assert sum(other[p] != s for p, s in first.items()) > 500
    assert assign("ANON00001", plan) == first["ANON00001"]


def test_split_plans_are_checked():
    assert SplitPlan.parse("train=0.8,test=0.2", seed=3).ratios == (("train", 0.8), ("test", 0.2))
    with pytest.raises(ValueError, match="sum to 1"):
        SplitPlan.parse("train=0.8,test=0.3")
    with pytest.raises(ValueError, match="NAME=RATIO"):
        SplitPlan.parse("train")
    with pytest.raises(ValueError, match="once each"):
        SplitPlan.parse("a=0.5,a=0.5")
