"""`curate demo`'s annotation half on a small world: a real annotation service process, the real
`annotation_round` DAG under dag.test() (its waits deferred to the trigger), five simulated readers
(three careful, one random, one straight-lining) answering from a known truth while it waits, and
three careful reviewers on the series the quality model sent to review. The summary (what
`curate demo --json` prints) must name the bad readers, exclude them from rewards, and give a
consensus that matches the truth."""
from __future__ import annotations

import json
import random
import subprocess
import sys

from tests.operators.world import curated_catalog

RUN = r"""
import json, sys
from pathlib import Path
from curate import demo_annotation
from synth.reader_truth import truth_from_json
summary = demo_annotation.run(None, Path(sys.argv[2]), truth=truth_from_json(sys.argv[1]))
print("SUMMARY " + json.dumps(summary))
print(demo_annotation.format_summary(summary))
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


def test_demo_round_flags_the_bad_readers_and_matches_the_truth(tmp_path, airflow_env):
    home = tmp_path / "curate"
    catalog, _labels, review = curated_catalog(home, n_labels=N_LABELS, n_review=1)
    catalog.dispose()
    # the item keys add_series gives its de-identified series (tests/pipeline/test_annotation_select.py)
    keys = [f"2.25.{1000 + n}" for n in range(N_LABELS)]
    truth_file(tmp_path / "truth.json", keys, "2.25.1100")
    env = dict(airflow_env, CURATE_HOME=str(home))
    res = subprocess.run([sys.executable, "-c", RUN, str(tmp_path / "truth.json"), str(home)], env=env,
                         capture_output=True, text=True, timeout=300)
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
