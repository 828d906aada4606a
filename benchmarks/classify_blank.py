"""Series classification with SeriesDescription and ProtocolName blank: confusion matrices on
(1) the held-out physics sample (curation.classify.physics, HELDOUT_SEED: never trained on),
(2) the published vendor/textbook protocols in tests/classify/vendor_protocols.csv,
(3) a synthetic site generated with a seed no training used, descriptions removed from every file.
Each for the shipped rules + model, the rules alone and the model alone (MR series).

    .venv/bin/python benchmarks/classify_blank.py [--site-seed 4242] [--patients 6] [--no-site]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from curation.classify import physics  # noqa: E402
from curation.classify.classifier import classify_header, default_model  # noqa: E402
from curation.classify.features import header_features  # noqa: E402
from curation.classify.header import SeriesHeader, read_headers, summarize  # noqa: E402
from curation.classify.report import format_confusion, truth_kind  # noqa: E402
from curation.vocabulary import MR_KINDS  # noqa: E402

MR = {k.value for k in MR_KINDS}


def evaluate(title: str, items: list[tuple[str, SeriesHeader]]) -> None:
    """Print the three confusion matrices and the rules that decided, for (true kind, header) items."""
    model = default_model()
    full, rules, alone, deciders = [], [], [], Counter()
    mr = [(t, h) for t, h in items if t in MR]
    preds = model.predict(np.stack([header_features(h) for _, h in mr])) if mr and model else []
    for truth, h in items:
        r = classify_header(h)
        full.append((truth, r["kind"]))
        deciders[r["rule"]] += 1
        rules.append((truth, classify_header(h, model=None)["kind"]))
    alone = [(t, p[0]) for (t, _), p in zip(mr, preds)]
    print(format_confusion(full, f"{title}: rules + model"))
    print("decided by:", ", ".join(f"{k} {v}" for k, v in deciders.most_common()))
    wrong = [(t, p) for t, p in full if t != p]
    if wrong:
        print("errors (truth -> predicted):", dict(Counter(wrong)))
    print(format_confusion(rules, f"{title}: rules alone"))
    if alone:
        print(format_confusion(alone, f"{title}: header model alone (MR series)"))
    print()


def site_items(seed: int, patients: int) -> list[tuple[str, SeriesHeader]]:
    from synth import generate_site

    root = Path(tempfile.mkdtemp(prefix=f"classify-blank-{seed}-"))
    truth = generate_site(root, patients=patients, seed=seed, phi_locations=False, progress=lambda m: None)
    items = []
    for s in truth["series"]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dss = read_headers([root / f for f in s["files"]])
        for ds in dss:
            for kw in ("SeriesDescription", "ProtocolName"):
                if kw in ds:
                    del ds[kw]
        items.append((truth_kind(s["kind"]), summarize(dss)))
    return items


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--site-seed", type=int, default=4242)
    ap.add_argument("--patients", type=int, default=6)
    ap.add_argument("--no-site", action="store_true", help="skip generating the synthetic site (~1-2 min)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    sample = physics.sample(physics.HELDOUT_SEED)
    evaluate(f"held-out physics sample (seed {physics.HELDOUT_SEED}, {len(sample)} series)",
             [(a.kind, a.header) for a in sample])
    table = physics.read_protocol_table(ROOT / "tests" / "classify" / "vendor_protocols.csv")
    evaluate(f"published protocols ({len(table)} series)", [(r["kind"], h) for r, h in table])
    if not args.no_site:
        items = site_items(args.site_seed, args.patients)
        evaluate(f"synthetic site (seed {args.site_seed}, {args.patients} patients, {len(items)} series), "
                 "descriptions removed", items)
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
