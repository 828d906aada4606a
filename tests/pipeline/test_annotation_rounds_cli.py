"""`curate rounds list / show`: a manager reads an analysed round from the catalog, with readers by
pseudonym only."""
from __future__ import annotations

import json

import numpy as np
import pytest

from curate.main import main as curate
from curation.annotation_schema import load_schema
from curation.catalog import Catalog
from curation.pipeline import analyse as analysis
from curation.pipeline import dispatch
from curation.pipeline.collect import collect, reader_pseudonym
from curation.pipeline.select import Selection, select_series
from tests.pipeline.test_annotation_round import READERS, SECRET, make_truth, simulate_export
from tests.pipeline.test_annotation_select import add_series


def test_a_manager_lists_rounds_and_reads_one_rounds_agreement_qc_and_rewards(tmp_path, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    catalog = Catalog(url)
    for i in range(60):
        add_series(catalog, i)
    refs = select_series(catalog, Selection())
    truth = make_truth([r.item_key for r in refs], np.random.default_rng(3))
    rnd = dispatch.plan_round(catalog, project="chest", name="manual__7", schema=load_schema("chest_findings_v1"),
                              items=refs)
    collect(catalog, rnd.round_id, simulate_export([r.item_key for r in refs], [], truth, seed=3), SECRET)
    analysis.analyse(catalog, rnd.round_id, analysis.AnalysisConfig(n_boot=50))
    catalog.dispose()

    assert curate(["rounds", "list", "--db", url, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["project"], r["state"], r["items"], r["readers"]) for r in rows] == \
        [(rnd.round_id, "chest", "analysed", 60, 5)]
    assert -1 <= rows[0]["fleiss_kappa"] <= 1

    assert curate(["rounds", "show", str(rnd.round_id), "--db", url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    excluded = {reader_pseudonym(name, SECRET) for name in ("random-1", "flat-1")}
    assert {r for r, v in report["readers"].items() if not v["passes_qc"]} == excluded
    assert report["summary"]["fleiss_kappa_ci95"][0] <= report["summary"]["fleiss_kappa"]

    assert curate(["rounds", "show", str(rnd.round_id), "--db", url]) == 0
    text = capsys.readouterr().out
    assert "Fleiss' kappa" in text and "EXCLUDED" in text and "straight_lining" in text
    assert not any(name in text for name in READERS)  # pseudonyms only

    assert curate(["rounds", "show", "999", "--db", url]) != 0
    assert "no annotation round 999" in capsys.readouterr().err
