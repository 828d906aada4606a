"""Acceptance on a synthetic site generated with a seed no training used: kinds (with and without
SeriesDescription/ProtocolName), attributes, the model's part, the default static series, the CLI."""
from __future__ import annotations

import json
import warnings
from collections import Counter

import pytest

from curation.classify import choose_default_series, classify_header
from curation.classify.classifier import MODEL_RULE, default_model
from curation.classify.features import header_features
from curation.classify.header import read_headers, summarize
from curation.classify.report import accuracy, format_confusion, truth_kind
from curate.main import main as curate


def _headers(root, s, blank=False):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dss = read_headers([root / f for f in s["files"]])
    if blank:
        for ds in dss:
            for kw in ("SeriesDescription", "ProtocolName"):
                if kw in ds:
                    del ds[kw]
    return summarize(dss)


@pytest.fixture(scope="module")
def results(heldout_site):
    root, truth = heldout_site
    out = []
    for s in truth["series"]:
        out.append((s, classify_header(_headers(root, s)), classify_header(_headers(root, s, blank=True))))
    return out


def test_kinds_at_least_98_percent_with_confusion_matrix(results):
    pairs = [(truth_kind(s["kind"]), r["kind"]) for s, r, _ in results]
    print("\n" + format_confusion(pairs, "held-out site (seed 4242), all series"))
    print("rules that decided:", dict(Counter(r["rule"] for _, r, _ in results).most_common()))
    assert len({t for t, _ in pairs}) >= 14, "the site should hold every kind"
    assert accuracy(pairs) >= 0.98


def test_kinds_at_least_90_percent_with_descriptions_blanked(results):
    pairs = [(truth_kind(s["kind"]), b["kind"]) for s, _, b in results]
    print("\n" + format_confusion(pairs, "held-out site, SeriesDescription and ProtocolName removed"))
    print("rules that decided:", dict(Counter(b["rule"] for _, _, b in results).most_common()))
    assert all(b["stage"] != "naming" for _, _, b in results)
    assert accuracy(pairs) >= 0.90


def test_attributes_match_the_ground_truth(results):
    wrong = Counter()
    for s, r, _ in results:
        for key in ("plane", "dimensions", "contrast", "derived", "body_part"):
            if r[key] != s[key]:
                wrong[key] += 1
    print("\nattribute mismatches:", dict(wrong) or "none", f"of {len(results)} series")
    assert all(n <= 0.02 * len(results) for n in wrong.values()), wrong


def test_header_model_alone_on_mr_series(heldout_site):
    root, truth = heldout_site
    model = default_model()
    assert model is not None, "shipped weights qc_models/weights/series_classifier.pt missing"
    pairs = []
    for s in truth["series"]:
        if s["modality"] == "MR":
            kind, p, _ = model.predict(header_features(_headers(root, s, blank=True))[None])[0]
            pairs.append((truth_kind(s["kind"]), kind))
    print("\n" + format_confusion(pairs, "header-feature model alone, MR series"))
    assert accuracy(pairs) >= 0.95


def test_model_overrides_a_misleading_description(heldout_site):
    """A T2-weighted acquisition labelled as an MPRAGE: physics and model agree it is T2W."""
    root, truth = heldout_site
    s = next(s for s in truth["series"] if s["kind"] == "T2W" and s["vendor"] == "siemens")
    h = _headers(root, s)
    h.series_description = h.protocol_name = "t1_mprage_sag_p2_iso"
    r = classify_header(h)
    assert r["kind"] == "T2W" and r["rule"] == MODEL_RULE, r
    assert "name.t1" in r["detail"]
    print("\nmisleading description:", r["kind"], r["confidence"], r["detail"])


def test_default_static_series_per_mr_study(heldout_site, results):
    root, truth = heldout_site
    by_study = {}
    for s, r, _ in results:
        by_study.setdefault(s["study_instance_uid"], []).append({**r, "id": s["series_instance_uid"]})
    mr_studies = [st for st in truth["studies"] if st["modality"] == "MR"]
    for st in mr_studies:
        choice = choose_default_series(by_study[st["study_instance_uid"]])
        # The synthetic protocols have no 3D T2W: the axial 2D T2W is the sensible fallback.
        assert choice["kind"] == "T2W" and choice["fallback"], choice
        assert "not 3D" in choice["reason"]
    ideal = choose_default_series([
        {"id": "a", "kind": "T2W", "dimensions": "2D", "plane": "axial", "derived": False},
        {"id": "b", "kind": "T2W", "dimensions": "3D", "plane": "axial", "derived": False},
        {"id": "c", "kind": "T1W", "dimensions": "3D", "plane": "axial", "derived": False},
    ])
    assert ideal["id"] == "b" and not ideal["fallback"]


def test_cli_classify_json_on_a_series_folder_and_a_nifti(heldout_site, capsys):
    root, truth = heldout_site
    s = next(s for s in truth["series"] if s["kind"] == "FLAIR")
    folder = (root / s["files"][0]).parent
    assert curate(["classify", str(folder), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"kind", "confidence", "plane", "dimensions", "contrast", "rule"} <= out.keys()
    assert out["kind"] == "FLAIR" and out["plane"] == s["plane"]
    nii = next(n for n in truth["nifti"] if n["kind"] == "T2W")
    assert curate(["classify", str(root / nii["file"]), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "T2W" and out["rule"] == "name.t2"
    assert curate(["classify", str(root / "does-not-exist")]) == 2
