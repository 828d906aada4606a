"""`curate demo`'s annotation half on a small world: a real annotation service process, the real
`annotation_round` DAG under dag.test() (its waits deferred to the trigger), five simulated readers
(three careful, one random, one straight-lining) answering from a known truth while it waits, and
three careful reviewers on the series the quality model sent to review; then the demo's release
step: the real `release_dataset` DAG under dag.test() (approval off) publishing `demo@1.0.0` of the
round's series that people did not exclude. The summary (what `curate demo --json` prints) must name
the bad readers, exclude them from rewards, and give a consensus that matches the truth; the release
must verify (checksums and content), with the counts, labels, agreement and next commands the report
prints.

The fixture's images (tests/operators/world.py) show none of the findings its truth file draws at
random, so the round runs without the findings model: a model's calls on them are noise against the
truth, and the QC filter that takes them as pseudo ground truth (`ai_filter`) would fail careful readers
by chance (it did once the shipped model became confident: kappa -0.15 on 'opacity' over 13 items).
The model's part of a round is tested on radiographs that show their findings (tests/ai), and
`make demo` runs it on the synthetic site's chest radiographs.
"""
from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pydicom

from curation.release.layout import DirTree
from curation.release.verify import verify_tree
from tests.operators.world import curated_catalog

RUN = r"""
import json, sys
from pathlib import Path
from curate import demo_annotation, demo_release
from synth.reader_truth import truth_from_json
summary = demo_annotation.run(None, Path(sys.argv[2]), truth=truth_from_json(sys.argv[1]), model="")
print("SUMMARY " + json.dumps(summary))
print(demo_annotation.format_summary(summary))
release = demo_release.run(Path(sys.argv[2]), [summary["annotation_round"]["round_id"]])
print("RELEASE " + json.dumps({"summary": release, "public": demo_release.public(release)}))
print(demo_release.format_summary(release))
"""
N_LABELS = 12
FINDINGS = ("opacity", "effusion", "nodule")


def truth_file(path, keys: list[str], review_key: str) -> None:
    """Each finding present on about 40 % of the items (with a box inside the 64 x 64 image), and
    the review series' quality truth (a planted defect to exclude)."""
    rng = random.Random(14)
    truth = {}
    for key in keys + [review_key]:
        truth[key] = {}
        for n, finding in enumerate(FINDINGS):
            present = rng.random() < 0.4
            truth[key][finding] = {"value": present, "boxes": [[8 + 12 * n, 10 + 8 * n, 14, 12]] if present else []}
    truth[review_key]["quality"] = {"decision": "exclude", "reason": "underexposure (severity 4)"}
    path.write_text(json.dumps(truth))


def as_the_deidentifier_writes(deid_zone: Path) -> None:
    """The de-identifier leaves PatientName empty or the patient's pseudonym and names its method;
    tests.annotation.dicomgen writes ANON^0001 beside PatientID PSEUDO-0001 (the release's content
    check calls it PHI) and no DeidentificationMethod (Type 1C: the labels copying the Patient
    module would fail dciodvfy)."""
    for path in deid_zone.rglob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.PatientName, ds.DeidentificationMethod = "", "test fixture"
        ds.save_as(path, enforce_file_format=True)


def test_demo_round_flags_the_bad_readers_matches_the_truth_and_is_released(tmp_path, airflow_env):
    home = tmp_path / "curate"
    catalog, _labels, review = curated_catalog(home, n_labels=N_LABELS, n_review=1)
    catalog.dispose()
    as_the_deidentifier_writes(home / "store" / "deid")
    # the item keys add_series gives its de-identified series (tests/pipeline/test_annotation_select.py)
    keys = [f"2.25.{1000 + n}" for n in range(N_LABELS)]
    truth_file(tmp_path / "truth.json", keys, "2.25.1100")
    env = dict(airflow_env, CURATE_HOME=str(home))
    res = subprocess.run([sys.executable, "-c", RUN, str(tmp_path / "truth.json"), str(home)], env=env,
                         capture_output=True, text=True, timeout=420)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-5000:]
    summary = json.loads(next(l for l in res.stdout.splitlines() if l.startswith("SUMMARY "))[8:])
    assert summary["dag_state"].endswith("success"), out[-5000:]

    labels = summary["annotation_round"]
    assert labels["items"] == N_LABELS + 1 and labels["readings"] == 5 * (N_LABELS + 1), labels
    assert labels["wait_deferred_while_reading"] and labels["reader_errors"] is None
    readers = labels["readers"]
    assert {r["profile"] for r in readers.values()} == {"careful", "random", "flat"} and len(readers) == 5
    for name, r in readers.items():
        assert {"profile", "qc_flags", "passes_qc", "reward"} <= set(r), r
        assert r["pseudonym"].startswith("rdr-") and name not in r["pseudonym"]
        if r["profile"] == "careful":
            assert r["passes_qc"] and r["reward"] > 0, (name, r)
        else:
            assert r["passes_qc"] is False and r["reward"] == 0 and r["reasons"], (name, r)
    assert "straight_lining" in readers["sim-flat-1"]["qc_flags"]
    assert {"random_answering", "time_outlier"} & set(readers["sim-random-1"]["qc_flags"])
    assert labels["consensus_accuracy"] >= 0.9 and labels["consensus_answers"] == 3 * (N_LABELS + 1)
    assert labels["fleiss_kappa"] is not None and len(labels["fleiss_kappa_ci95"]) == 2
    assert labels["krippendorff_alpha"] is not None
    assert labels["box_iou_median"] is not None and labels["box_iou_median"] >= 0.7
    assert sum(r["reward"] for r in readers.values()) > 99

    qr = summary["quality_review"]
    assert qr["items"] == 1 and qr["readings"] == 3
    assert qr["series"] == [{"series": f"series #{review[0]}", "kind": "CR", "model": "review", "human": "exclude",
                             "reason": "underexposure (severity 4)", "reviewers": 3, "truth": "exclude"}]
    viewer = summary["viewer"]
    assert viewer["url"].startswith("http://127.0.0.1:") and viewer["username"] and viewer["password"]
    # summary and report name readers by their demo accounts and series by catalog id, never a UID
    assert "sim-random-1" in res.stdout and "EXCLUDED" in res.stdout
    assert not [k for k in keys + ["2.25.1100"] if k in res.stdout]

    # the release step: demo@1.0.0 of the 12 approved series read (the reviewed one was excluded by people)
    release = json.loads(next(l for l in res.stdout.splitlines() if l.startswith("RELEASE "))[8:])
    r = release["summary"]
    assert r["dag_state"].endswith("success"), out[-5000:]
    assert release["public"] == {"name": "demo", "version": "1.0.0", "path": r["path"],
                                 "manifest_sha256": r["manifest_sha256"]}
    report = verify_tree(DirTree(Path(r["path"])), r["manifest_sha256"], checksums_only=False)
    assert report.ok, report.problems
    assert r["path"] == str(home / "store" / "releases" / "demo" / "1.0.0") and r["previous"] is None
    assert r["series"] == N_LABELS and sum(v["series"] for v in r["splits"].values()) == N_LABELS
    assert set(r["labels"]) == set(FINDINGS) and all(v["decided"] == N_LABELS for v in r["labels"].values())
    assert r["readings"] > 0 and r["readers"] == 5 and r["consensus_boxes"] > 0
    (agreement,) = r["agreement"].values()
    assert agreement["fleiss_kappa"] == labels["fleiss_kappa"]
    assert [c.split()[:3] for c in r["next"]] == [["curate", "release", "show"], ["curate", "release", "verify"],
                                                  ["python", "-c", "'from"]]
    assert all("demo@1.0.0" in c for c in r["next"])
    printed = res.stdout[res.stdout.index("== Release demo@1.0.0"):]
    assert r["manifest_sha256"] in printed and r["path"] in printed and "curate release verify demo@1.0.0" in printed
    assert not [k for k in keys + ["2.25.1100"] if k in printed], "the release report names series by count only"
