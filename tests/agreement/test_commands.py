"""`curate agreement` and `curate reward`: the MarkIt acceptance figures through the real command
(a subprocess, as a user runs it), the JSON contract, the text tables, and clear errors (exit 2, one
line, no traceback)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from curate.main import main

ROOT = Path(__file__).parents[2]
MARKIT = ROOT.parent / "shared" / "reference" / "markit"
RADIOLOGISTS = ["Annotator A", "Annotator B", "Annotator C"]
RANDOM = [f"Malicious annotator {c}" for c in "ABCDE"]
STATISTICS = ("fleiss_kappa", "krippendorff_alpha", "gwet_ac1")
BLOCK_FIELDS = ("n_items", "n_readers", "unanimous_positive", "unanimous_negative", "disagreements",
                "unanimous_share", *STATISTICS, *(f"{s}_ci95" for s in STATISTICS))


def strict(text: str):
    """JSON that a strict parser accepts (no NaN or Infinity)."""
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


def curate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "curate", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def markit_csv() -> Path:
    path = MARKIT / "agreement_list.csv"
    if not path.exists():
        pytest.skip(f"MarkIt reference data absent: {MARKIT} (see its README)")
    return path


@pytest.fixture(scope="module")
def markit_report(markit_csv):
    done = curate("agreement", str(markit_csv), "--bootstrap", "200", "--json")
    assert done.returncode == 0, done.stderr
    return strict(done.stdout)


def test_published_mode_on_all_eight_markit_readers(markit_csv):
    """QC excludes the five random readers (AI filter), published mode splits between the rest."""
    done = curate("reward", str(markit_csv), "--budget", "1000", "--mode", "published", "--json")
    assert done.returncode == 0, done.stderr
    out = strict(done.stdout)
    assert set(out) == {"mode", "rewards", "excluded"} and out["mode"] == "published"
    assert out["rewards"] == {"Annotator A": 371.01, "Annotator B": 346.85, "Annotator C": 282.12,
                              **dict.fromkeys(RANDOM, 0.0)}
    assert sorted(out["excluded"]) == RANDOM
    assert all("ai_filter" in why for why in out["excluded"].values())


def test_general_mode_with_markit_times(markit_csv):
    """The times file feeds the label weights: the radiologists' split quoted in docs/agreement.md."""
    done = curate("reward", str(markit_csv), "--budget", "1000", "--times", str(MARKIT / "time_duration.csv"),
                  "--json")
    assert done.returncode == 0, done.stderr
    out = strict(done.stdout)
    assert out["mode"] == "general"
    assert {a: out["rewards"][a] for a in RADIOLOGISTS} == pytest.approx(
        {"Annotator A": 334.670, "Annotator B": 334.415, "Annotator C": 330.915}, abs=1e-3)
    assert sum(out["rewards"].values()) == pytest.approx(1000)


def test_agreement_on_markit_reproduces_the_paper(markit_report):
    """Overall figures are on the readers QC kept, the three radiologists: 370/5954/676, Fleiss 0.638.
    The all-readers figures sit alongside."""
    out = markit_report
    assert out["readers_kept"] == RADIOLOGISTS and sorted(out["readers_excluded"]) == RANDOM
    overall = out["overall"]
    assert (overall["unanimous_positive"], overall["unanimous_negative"], overall["disagreements"]) == (370, 5954, 676)
    assert round(overall["fleiss_kappa"], 3) == 0.638
    assert overall["n_readers"] == 3 and out["all_readers"]["overall"]["n_readers"] == 8
    assert out["all_readers"]["overall"]["unanimous_positive"] == 0
    for block in [overall, *out["per_label"].values(), out["all_readers"]["overall"]]:
        for name in BLOCK_FIELDS:
            assert name in block, name
        for statistic in STATISTICS:
            low, high = block[f"{statistic}_ci95"]
            assert low <= block[statistic] <= high
    assert len(out["per_label"]) == 7
    assert sum(b["disagreements"] for b in out["per_label"].values()) == 676
    assert set(out["pairwise"]) == {"Annotator A|Annotator B", "Annotator A|Annotator C", "Annotator B|Annotator C"}
    assert all(-1 <= p["cohen_kappa"] <= 1 for p in out["pairwise"].values())


def test_agreement_on_markit_per_annotator(markit_report):
    readers = markit_report["per_annotator"]
    assert sorted(readers) == sorted(RADIOLOGISTS + RANDOM)
    for name in RADIOLOGISTS:
        entry = readers[name]
        assert entry["passes_ai_filter"] is True and entry["excluded"] is None
        assert all(k > 0.05 for k in entry["ai_kappa"].values()) and len(entry["ai_kappa"]) == 7
        assert "ai_filter" not in entry["qc_flags"]
        assert entry["gold_accuracy"] is None
        assert entry["feedback"]["overall"]["n_read"] == 7000
        assert set(entry["feedback"]["per_label"]) == set(markit_report["labels"])
    for name in RANDOM:
        entry = readers[name]
        assert entry["passes_ai_filter"] is False and "ai_filter" in entry["qc_flags"] and entry["excluded"]
    # feedback compares everyone with the radiologists' majority; a careful reader agrees far more often
    agreement = {a: readers[a]["feedback"]["overall"]["agreement"] for a in readers}
    assert min(agreement[a] for a in RADIOLOGISTS) > 0.95 > max(agreement[a] for a in RANDOM)


def test_agreement_on_markit_consensus(markit_report):
    majority = markit_report["consensus"]["majority"]
    assert majority["n_item_labels"] == 7000 and majority["ties"] == 0
    # 2-of-3 or 3-of-3 yes: the 370 unanimous positives plus the disagreements decided yes
    assert majority["positive"] + majority["negative"] == 7000 and majority["positive"] >= 370
    ds = markit_report["consensus"]["dawid_skene"]
    assert ds["positive"] == 868 and ds["converged"]
    assert [r["annotator"] for r in ds["readers"]] == RADIOLOGISTS


def test_agreement_text_tables_on_markit(markit_csv):
    done = curate("agreement", str(markit_csv), "--bootstrap", "50")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    overall = next(line for line in lines if line.startswith("overall"))
    assert overall.split()[1:6] == ["1000", "3", "370", "5954", "676"]
    assert "0.638" in overall
    assert "readers excluded by QC: " + ", ".join(RANDOM) in lines
    header = next(i for i, line in enumerate(lines) if line.startswith("reader ") and "QC flags" in line)
    rule, rows = lines[header + 1], lines[header + 2:header + 10]
    assert set(rule) <= {"-", " "}
    for row in rows:  # every column starts where the header's dashes start
        starts = [i for i in range(len(rule)) if rule[i] == "-" and (i == 0 or rule[i - 1] == " ")]
        assert all(i == 0 or row[i - 1] == " " for i in starts)


def long_table(tmp_path: Path) -> Path:
    """Four readers on 60 items of two labels over two modalities; d answers at random. Every reading
    has ai_probability (the truth, blurred), seconds and, on 20 items, gold."""
    rng = np.random.default_rng(7)
    rows = []
    for label, prevalence in (("nodule", 0.3), ("effusion", 0.5)):
        truth = rng.random(60) < prevalence
        for reader in "abcd":
            says = rng.random(60) < 0.5 if reader == "d" else np.where(rng.random(60) < 0.9, truth, ~truth)
            for j in range(60):
                rows.append({"item": f"i{j:02d}", "label": label, "annotator": reader, "value": int(says[j]),
                             "seconds": round(float(rng.uniform(3, 9)), 2),
                             "ai_probability": 0.8 if truth[j] else 0.2,
                             "gold": int(truth[j]) if j < 20 else None,
                             "modality": "CT" if j % 2 else "CR", "body_part": "CHEST"})
    path = tmp_path / "readings.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_long_table_in_process(tmp_path, capsys):
    path = long_table(tmp_path)
    assert main(["agreement", str(path), "--bootstrap", "100", "--seed", "3", "--json"]) == 0
    out = strict(capsys.readouterr().out)
    assert out["n_boot"] == 100 and out["seed"] == 3 and out["readers_kept"] == ["a", "b", "c"]
    assert list(out["readers_excluded"]) == ["d"]
    d, a = out["per_annotator"]["d"], out["per_annotator"]["a"]
    assert d["passes_ai_filter"] is False and d["gold_accuracy"] < a["gold_accuracy"]
    assert a["gold_accuracy"] == pytest.approx(a["feedback"]["overall"]["gold_accuracy"])
    groups = {(g["modality"], g["label"]) for g in a["feedback"]["per_group"]}
    assert groups == {(m, k) for m in ("CR", "CT") for k in ("(all)", "nodule", "effusion")}
    assert a["feedback"]["overall"]["median_seconds"] is not None
    assert main(["reward", str(path), "--budget", "100", "--json"]) == 0
    reward = strict(capsys.readouterr().out)
    assert reward["rewards"]["d"] == 0.0 and list(reward["excluded"]) == ["d"]
    assert sum(reward["rewards"].values()) == pytest.approx(100)
    assert main(["reward", str(path), "--budget", "100"]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0] == "mode general, budget 100" and lines[1].split() == ["reader", "tokens", "QC"]
    assert lines[3].split()[0] == "a" and lines[6].split() == ["d", "0.00", "excluded"]
    assert lines[8] == "Why QC excluded readers" and lines[9] == "d" and lines[10].startswith("  ")


def test_without_bootstrap_the_intervals_are_null(tmp_path, capsys):
    path = long_table(tmp_path)
    out = agreement_json(path, capsys, "--bootstrap", "0")
    with_intervals = agreement_json(path, capsys, "--bootstrap", "20")
    for name in STATISTICS:
        assert out["overall"][name] == with_intervals["overall"][name]
        assert out["overall"][f"{name}_ci95"] is None and with_intervals["overall"][f"{name}_ci95"] is not None
    assert all(p["cohen_kappa_ci95"] is None for p in out["pairwise"].values())


def agreement_json(path: Path, capsys, *options: str) -> dict:
    assert main(["agreement", str(path), *options, "--json"]) == 0
    return strict(capsys.readouterr().out)


def test_bootstrap_seed_gives_the_same_intervals(tmp_path, capsys):
    path = long_table(tmp_path)
    runs = []
    for seed in ("1", "1", "2"):
        assert main(["agreement", str(path), "--bootstrap", "50", "--seed", seed, "--json"]) == 0
        runs.append(strict(capsys.readouterr().out)["overall"]["fleiss_kappa_ci95"])
    assert runs[0] == runs[1] != runs[2]


def test_progress_goes_to_stderr_when_the_bootstrap_is_large(tmp_path, capsys, monkeypatch):
    import curate.agreement
    path = long_table(tmp_path)
    assert main(["agreement", str(path), "--bootstrap", "10", "--json"]) == 0
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(curate.agreement, "SLOW_WORK", 10 * 480 - 1)  # 480 readings x 10 resamples
    assert main(["agreement", str(path), "--bootstrap", "10", "--json"]) == 0
    captured = capsys.readouterr()
    steps = captured.err.splitlines()
    assert len(steps) == 4 and all(line.startswith("curate agreement [") for line in steps)
    assert "10 bootstrap resamples" in steps[1] and strict(captured.out)["n_boot"] == 10


def test_a_stricter_ai_filter_excludes_more(tmp_path, capsys):
    path = long_table(tmp_path)
    assert main(["reward", str(path), "--budget", "10", "--kappa-min", "0.99", "--json"]) == 2
    assert "every reader is excluded" in capsys.readouterr().err
    # the agreement report still says what QC found, with nothing computed on kept readers
    assert main(["agreement", str(path), "--kappa-min", "0.99", "--bootstrap", "10", "--json"]) == 0
    out = strict(capsys.readouterr().out)
    assert out["readers_kept"] == [] and out["overall"] is None and out["consensus"] is None
    assert sorted(out["readers_excluded"]) == list("abcd") and out["all_readers"]["overall"]["n_readers"] == 4
    assert all(a["feedback"]["overall"]["n_compared"] == 0 for a in out["per_annotator"].values())
    assert main(["agreement", str(path), "--kappa-min", "0.99", "--bootstrap", "10"]) == 0
    assert "Agreement, readers kept by QC: none (QC kept no reader)" in capsys.readouterr().out


@pytest.mark.parametrize("content, message", [
    ("item,label,annotator\n1,k,a\n", "missing required column(s) ['value']"),
    ("item,label,annotator,value\n1,k,a,1\n1,k,b,maybe\n", "column 'value' must be 0/1"),
    ("case,label,Reader 1\n1,k,True\n1,k2,perhaps\n", "column 'value' must be 0/1"),
    ("", "No columns to parse"),
])
def test_bad_input_is_one_clear_line(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    for command in (["agreement", str(path), "--json"], ["reward", str(path), "--budget", "1", "--json"]):
        done = curate(*command)
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr.startswith(f"curate: error: {path}: ") and message in done.stderr
        assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1


def test_bad_options_and_paths_exit_2(tmp_path, capsys):
    path = long_table(tmp_path)
    times = tmp_path / "times.csv"
    times.write_text("Label,Mean time\nnodule,4.5\n")
    cases = [(["agreement", str(tmp_path / "absent.csv")], "no such file"),
             (["agreement", str(path), "--bootstrap", "-1"], "--bootstrap"),
             (["agreement", str(path), "--ai-threshold", "1.5"], "--ai-threshold"),
             (["reward", str(path), "--budget", "-5"], "budget"),
             (["reward", str(path), "--budget", "5", "--times", str(tmp_path / "none.csv")], "no such file"),
             (["reward", str(path), "--budget", "5", "--times", str(times)], "no reading time for label(s) ['effusion']")]
    for argv, message in cases:
        assert main(argv) == 2, argv
        assert message in capsys.readouterr().err


def test_the_reports_reuse_a_qc_report_made_earlier(tmp_path):
    """The annotation round runs QC as its own task: handing its report in gives the same figures."""
    from curation.agreement.qc import QcConfig, check
    from curation.agreement.report import agreement_report, reward_report
    from curation.agreement.table import read_long
    readings = read_long(long_table(tmp_path))
    config = QcConfig(kappa_min=0.1)
    qc = check(readings, config)
    fresh = agreement_report(readings, config, n_boot=20)
    reused = agreement_report(readings, n_boot=20, qc=qc)
    assert fresh["qc_config"] == {"ai_threshold": 0.5, "kappa_min": 0.1} and reused["qc_config"] is None
    assert {k: v for k, v in fresh.items() if k != "qc_config"} == {k: v for k, v in reused.items() if k != "qc_config"}
    assert reward_report(readings, 50, qc=qc) == reward_report(readings, 50, config=config)
