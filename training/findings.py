"""A release to train the findings model on, built with the platform's own stages, and the training,
evaluation and model card of `curate train findings` (docs/ai.md).

Why a cohort of its own: a `synth` site gives each patient one radiograph beside ~320 MR/CT/US
instances (the demo's release holds 3 radiographs), and its findings follow the patient index
(nodule in 2 of 3, opacity and effusion never together and never without a nodule), so a model could
call "nodule" from an effusion. `write_cohort` draws chest radiographs only (CR for even patients,
DX for odd), each finding present independently with probability 1/2, from the same distributions
as the site, with `synth`'s renderer and ground-truth format. `build_release` then runs the stages
in process (no Airflow, no annotation service): ingest -> deid -> classify -> quality -> a labels
round of simulated readers (`synth.readers`, answers exported as the service exports them) ->
collect -> analyse (QC, Dawid-Skene consensus) -> release build -> publish. The release's consensus,
not the synthetic truth, is what the model learns from; the truth only measures it.
"""
from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from curation.vocabulary import Modality, QualityDecision, SeriesKind

#: Label schema the cohort's round reads (its boolean labels are the model's labels).
SCHEMA = "chest_findings_v1"
PROJECT = "chest-findings-train"
#: Readers of the simulated round: three careful readers (0.9 sensitivity/specificity) and one at random.
READERS = "careful:3,random:1"
COHORT_SEED = 1801
COHORT_PATIENTS = 300


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- the cohort --------------------------------------------------------------------------------------
def cohort_findings(seed: int, index: int):  # noqa: ANN201 - synth.chest.ChestFindings
    """Patient `index`'s findings: each present with probability 1/2 from its own stream, geometry
    drawn as `synth.site` and `synth.findings.chest_findings` draw it."""
    from synth.chest import ChestFindings, Effusion, Nodule, Opacity
    from synth.identity import rng_for

    rng = rng_for(seed, "findings-cohort", index)
    present = rng.random(3) < 0.5
    nodule = Nodule((float(rng.uniform(-95, -55)), float(rng.uniform(-20, 30)), float(rng.uniform(0, 70))),
                    float(round(rng.uniform(6, 11), 1)))
    opacity = Opacity((float(rng.uniform(62, 86)), float(rng.uniform(-10, 30)), float(rng.uniform(45, 85))),
                      (float(rng.uniform(14, 20)), float(rng.uniform(18, 26)), float(rng.uniform(18, 26))))
    effusion = Effusion("right" if rng.integers(2) else "left", float(round(rng.uniform(25, 45), 1)))
    return ChestFindings(nodule=nodule if present[0] else None, opacity=opacity if present[1] else None,
                         effusion=effusion if present[2] else None)


def write_cohort(out: Path, patients: int, seed: int = COHORT_SEED, matrix: int = 256) -> dict:
    """Chest radiographs of `patients` synthetic patients under `out` with `ground_truth.json` in the
    format of `synth.generate_site` (series, files, findings). Same arguments, same bytes."""
    from pydicom.uid import ExplicitVRLittleEndian

    from synth.findings import chest_geometry, section
    from synth.identity import make_patient, make_site
    from synth.site import VENDOR_ORDER, _study
    from synth.writer import SCHEMA as SITE_SCHEMA, SiteWriter
    from synth.xray import chest_radiograph

    out.mkdir(parents=True, exist_ok=True)
    site = make_site(seed)
    writer = SiteWriter(out, record_phi_locations=False)
    chests = []
    for i in range(patients):
        patient = make_patient(seed, i, site)
        modality = Modality.CR if i % 2 == 0 else Modality.DX
        study = _study(patient, site, seed, 3, modality, VENDOR_ORDER[i % 3], 130, "XR CHEST PA", "CHEST")
        writer.add_study(study)
        findings = cohort_findings(seed, i)
        chests.append(chest_geometry(i, findings))
        chest_radiograph(writer, study, modality, matrix, findings, ExplicitVRLittleEndian, None)
    truth = {"schema": SITE_SCHEMA, "seed": seed, "options": {"patients": patients, "xray_matrix": matrix,
                                                             "cohort": "findings"},
             "series": writer.series, "studies": writer.studies, "images": [], "nifti": [],
             "files": dict(sorted(writer.files.items()))}
    truth["findings"] = section(seed, truth, chests)
    (out / "ground_truth.json").write_text(json.dumps(truth, indent=1, sort_keys=True) + "\n")
    return truth


# -- the release, through the platform's stages --------------------------------------------------------
def _export_rows(items: Sequence[tuple[str, int, int]], truth: dict, seed: int) -> list[dict[str, Any]]:
    """The simulated readers' answers as the annotation service exports them (one row per yes/no
    answer, one per box) for items (external id, columns, rows); task ids as the service numbers them."""
    from synth.reader_truth import ItemLabelTruth, label_truth
    from synth.readers import item_reading, parse_readers

    schema_labels, box_of = _schema_labels()
    rows: list[dict[str, Any]] = []
    task = 0
    when = datetime(2026, 12, 5, tzinfo=timezone.utc).isoformat()
    for reader in parse_readers(READERS):
        for external_id, cols, nrows in items:
            task += 1
            labelled = {label: t for label, t in truth[external_id].items() if isinstance(t, ItemLabelTruth)}
            # a radiograph is one instance: the (de-identified) SOP UID its regions name
            uids = sorted({r.instance for t in labelled.values() for r in t.regions if isinstance(r.instance, str)})
            placed = {label: label_truth(t, uids[:1]) for label, t in labelled.items()}
            answers = item_reading(reader.profile, reader.username, seed, external_id, placed, schema_labels,
                                   (cols, nrows), 1)
            base = {"external_id": external_id, "annotator": reader.username, "task_id": task, "task_kind": "annotate",
                    "status": "submitted", "submitted_at": when}
            for label, a in answers.items():
                rows.append({**base, "record": "label", "label": label, "value": int(a.value),
                             "confidence": a.confidence, "time_label_s": a.seconds})
                for b in a.boxes if label in box_of else ():
                    rows.append({**base, "record": "roi", "label": box_of[label], "roi_kind": "box", "instance": 0,
                                 "frame": 0, "x_min": b.x, "y_min": b.y, "x_max": b.x + b.w, "y_max": b.y + b.h})
    return rows


def _schema_labels() -> tuple[list[str], dict[str, str]]:
    """The schema's yes/no labels and, per yes/no label, its box label."""
    from curation.annotation_schema import load_schema

    schema = load_schema(SCHEMA)
    return schema.yes_no_labels, {v: k for k, v in schema.regions.items()}


def _officer_key(store: Any, workdir: Path) -> None:
    """The re-identification key pair de-identification seals its map for, as `curate deid keys create`
    makes it: public key into the store's vault, private key beside the store (a training sandbox has
    no data protection officer; synthetic patients have nothing to re-identify)."""
    from curation.reid_vault import PUBLIC_KEY_KEY, put_public_key
    from curation.vocabulary import Zone
    from deid.vault import generate_key_pair, write_private_key

    if not store.exists(Zone.VAULT, PUBLIC_KEY_KEY):
        private, public = generate_key_pair()
        write_private_key(workdir / "officer-private-key.pem", private)
        put_public_key(store, public)


def build_release(workdir: Path, name: str, patients: int = COHORT_PATIENTS, seed: int = COHORT_SEED,
                  say: Callable[[str], None] = _say) -> dict[str, Any]:
    """Cohort -> stages -> published release `name` in the store `workdir/store` (catalog
    `workdir/catalog.sqlite`). Returns {"release": name@version, "store", "site", counts...}.
    Idempotent like the stages: a second call reuses what the first did (a new version is not
    published when the release exists)."""
    import time

    from curation.annotation_schema import load_schema
    from curation.catalog import Catalog
    from curation.pipeline import analyse, classify, collect, deid, dispatch, ingest, quality
    from curation.pipeline.select import Selection, select_series
    from curation.release.build import ReleaseSpec, build
    from curation.release.layout import published_versions
    from curation.release.publish import publish
    from curation.reid_vault import store_secret
    from curation.store import LocalStore
    from synth.reader_truth import truth_from_site

    workdir = Path(workdir).resolve()
    site, store_dir = workdir / f"cohort-p{patients}-s{seed}", workdir / "store"
    store = LocalStore(store_dir, fsync=False)
    published = published_versions(store, name)
    if published:
        return {"release": f"{name}@{published[-1]}", "store": str(store_dir), "site": str(site), "reused": True}
    t0 = time.monotonic()
    if not (site / "ground_truth.json").exists():
        write_cohort(site, patients, seed)
    say(f"findings release: cohort of {patients} radiographs in {site} ({time.monotonic() - t0:.0f} s)")
    _officer_key(store, workdir)
    catalog = Catalog(f"sqlite:///{workdir / 'catalog.sqlite'}")
    try:
        refs = ingest.run(str(site / "dicom"), store, catalog, {"site": "findings-cohort"}).refs
        for n, ref in enumerate(refs, 1):
            ref = deid.run(ref, store, catalog).refs[0]
            ref = classify.run(ref, store, catalog).refs[0]
            quality.run(ref, store, catalog)
            if n % 50 == 0:
                say(f"findings release: {n}/{len(refs)} series through deid, classify, quality "
                    f"({time.monotonic() - t0:.0f} s)")
        schema = load_schema(SCHEMA)
        items = select_series(catalog, Selection(series_kinds=(SeriesKind.CR, SeriesKind.DX),
                                                 quality_decisions=(QualityDecision.APPROVE,), project=PROJECT))
        round_ref = dispatch.plan_round(catalog, project=PROJECT, name="train-1", schema=schema, items=items)
        secret = store_secret(store)
        truth = truth_from_site(site, secret)
        rows = _export_rows([(i.item_key, i.width or 0, i.height or 0) for i in items], truth, seed)
        collect.collect(catalog, round_ref.round_id, rows, secret)
        analysed = analyse.analyse(catalog, round_ref.round_id)
        say(f"findings release: round {round_ref.round_id} of {len(items)} items analysed "
            f"(kappa {analysed.metrics.get('fleiss_kappa')}) ({time.monotonic() - t0:.0f} s)")
        spec = ReleaseSpec(name=name, version="1.0.0", kinds=(SeriesKind.CR, SeriesKind.DX),
                           rounds=(round_ref.round_id,), description="Synthetic chest radiographs with "
                           "simulated readers' consensus on nodule, opacity and effusion (findings model training).")
        built = build(catalog, store, spec)
        publish(catalog, store, name, built.version)
    finally:
        catalog.dispose()
    say(f"findings release: {name}@{built.version} published ({time.monotonic() - t0:.0f} s)")
    return {"release": f"{name}@{built.version}", "store": str(store_dir), "site": str(site), "items": len(items),
            "counts": built.counts, "seconds": round(time.monotonic() - t0, 1), "reused": False}


# -- training, evaluation and the model card -------------------------------------------------------------
MODEL_NAME = "chest"
MODEL_VERSION = "1.0.0"
EPOCHS = 40
BATCH = 16
LEARNING_RATE = 3e-3
WEIGHT_DECAY = 1e-4
#: Weight of the localisation loss (consensus boxes vs the pool's weights) beside the image-level BCE.
LOCALISATION = 0.1
#: Largest shift of the training augmentation, as a fraction of the input's side (16 px at 256, ~28 mm).
SHIFT = 1 / 16
HELD_OUT = ("validation", "test")
INTENDED_USE = ("Research and workflow demonstration: suggest nodule / opacity / effusion with a heatmap and box "
                "proposals to readers of synthetic chest radiographs (CR, DX, PA) on this platform, and serve as "
                "pseudo ground truth for the annotation QC's better-than-random rule. Not a medical device; not for "
                "diagnosis; never a replacement for a reader's answer.")
LIMITS = ("Trained and measured on synthetic radiographs only (synth.xray renderer: one phantom family, PA view, "
          "256 x 256, clean exposures); real radiographs, other views, children, devices and lines are out of "
          "distribution and its numbers say nothing about them.",
          "Targets are simulated readers' consensus (Dawid-Skene), not truth: reader errors the consensus keeps "
          "are learned too.",
          "Findings are drawn independently at prevalence 1/2: probabilities are calibrated to that prevalence, "
          "not to a clinical one.",
          "Heatmaps are the network's cell logit map on a 32 x 32 grid (14 mm cells on a 450 mm field): they "
          "point at the cells that made the call, they do not outline the finding; boxes come from them and are "
          "proposals.",
          "Sees one image at 256 x 256: small nodules (6 mm radius, ~3.4 pixels there) are the hardest label.")


#: Heatmap methods training compares by default (cam.METHODS less occlusion: too slow to predict with).
COMPARED_HEATMAPS = ("logit_map", "gradcam")
#: What each heatmap method draws (the card's `heatmap.means`; docs/ai.md).
HEATMAP_MEANS = {
    "logit_map": "the network's own cell logits (1x1 conv on the last conv block; the image's logit is their "
                 "log-sum-exp pool), above the image's median cell, rectified and scaled to [0, 1] per image",
    "gradcam": "Grad-CAM of the last conv block (monai.visualize.GradCAM), scaled to [0, 1] per image",
    "occlusion": "drop of the label's probability when a patch (1/8 of the side, stride 1/16) is replaced by a "
                 "blurred copy of the image, scaled to [0, 1] per image",
}


@dataclass
class Split:
    """One split as the network sees it: inputs (n, 1, S, S), targets (n, labels; NaN: no consensus),
    the images on their own grids (for heatmaps), the de-identified SOPInstanceUID of each and, where
    the release has consensus boxes, `regions` (n, labels, S, S): where a label's boxes put the finding
    on the input grid (a tent over each box, 1 at its centre: `_box_regions`), all 0 where the image has
    none."""

    name: str
    inputs: Any
    targets: np.ndarray
    images: list[np.ndarray]
    sop_uids: list[str]
    regions: Any = None


def model_labels(release: Any) -> tuple[list[str], list[str]]:
    """The schema's yes/no labels the release has consensus on, and those of them with regions."""
    labels, box_of = _schema_labels()
    found = set(release.consensus["label"].dropna())
    labels = [label for label in labels if label in found]
    if not labels:
        raise ValueError(f"{release.name}@{release.version} has no consensus on the labels of {SCHEMA}")
    return labels, [label for label in labels if label in box_of]


def load_split(release: Any, split: str, labels: Sequence[str], size: int | None = None) -> Split:
    """The split's instances through `ReleaseDataset` (what a data scientist loads), as model inputs."""
    import pydicom
    import torch

    from curation.release.torch import ReleaseDataset
    from qc_models.findings.network import INPUT_SIZE
    from qc_models.findings.preprocess import to_input

    size = size or INPUT_SIZE
    _, box_of = _schema_labels()
    data = ReleaseDataset(release, split=split, unit="instance", labels=list(labels))
    inputs, targets, images, uids, regions = [], [], [], [], []
    for image, target in data:
        pixels = image.numpy()
        if pixels.ndim != 2:  # a multi-frame object: not what this model reads
            continue
        images.append(pixels)
        inputs.append(to_input(pixels, size))
        targets.append(target["labels"].numpy())
        uids.append(str(pydicom.dcmread(release.path(target["instance"]), stop_before_pixels=True).SOPInstanceUID))
        regions.append(_box_regions(release.boxes(target["series"]), [box_of.get(lab) for lab in labels],
                                    pixels.shape, size))
    stacked = torch.stack(inputs) if inputs else torch.zeros((0, 1, 1, 1))
    masks = torch.stack(regions) if regions else None
    return Split(split, stacked, np.asarray(targets, dtype=np.float64).reshape(len(targets), len(labels)), images, uids,
                 masks)


def _box_regions(boxes: Any, box_labels: Sequence[str | None], shape: tuple[int, int], size: int) -> Any:
    """(labels, size, size) float32: where each label's consensus boxes say the finding is, on the
    network's input grid: a tent over each box, 1 at its centre and falling to 0 at its edges (a box is
    drawn around its finding, so its centre is the likeliest place of it: an effusion's box corner lies
    beside the meniscus-shaped fluid, not on it), the larger value where boxes overlap."""
    import torch

    out = torch.zeros((len(box_labels), size, size))
    if boxes is None or not len(boxes):
        return out
    sy, sx = size / shape[0], size / shape[1]
    centres = torch.arange(size, dtype=torch.float32) + 0.5
    for k, name in enumerate(box_labels):
        for row in boxes[boxes["label"] == name].itertuples() if name else ():
            y0, y1, x0, x1 = (float(row.y0) * sy, float(row.y1) * sy, float(row.x0) * sx, float(row.x1) * sx)
            ty = (1 - (centres - (y0 + y1) / 2).abs() / max((y1 - y0) / 2, 0.5)).clamp(min=0)
            tx = (1 - (centres - (x0 + x1) / 2).abs() / max((x1 - x0) / 2, 0.5)).clamp(min=0)
            out[k] = torch.maximum(out[k], ty[:, None] * tx[None, :])
    return out


def _augment(x: Any, generator: Any, regions: Any = None) -> tuple[Any, Any]:
    """Shift by up to SHIFT of the side (reflected border), contrast x0.85-1.15, brightness +-0.05, noise 0.01:
    what differs between two exposures of one chest. No flips: laterality is part of the findings.
    `regions` (n, labels, S, S), if given, moves with the image (empty border)."""
    import torch
    import torch.nn.functional as F

    n, _, h, w = x.shape
    shift = round(SHIFT * h)
    padded = F.pad(x, (shift, shift, shift, shift), mode="reflect")
    dy, dx = (torch.randint(0, 2 * shift + 1, (2, n), generator=generator)).tolist()
    out = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
    if regions is not None:
        padded = F.pad(regions, (shift, shift, shift, shift))
        regions = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
    gain = 0.85 + 0.3 * torch.rand((n, 1, 1, 1), generator=generator)
    bias = 0.1 * torch.rand((n, 1, 1, 1), generator=generator) - 0.05
    noise = 0.01 * torch.randn(out.shape, generator=generator)
    return (out * gain + bias + noise).clamp(0.0, 1.0), regions


def localisation_loss(cells: Any, regions: Any, r: float) -> Any:
    """Cross-entropy between where the consensus boxes put the finding and where the log-sum-exp pool
    looks: for each (image, label) with a box, the regions' share of each cell (`regions` averaged over
    the cell, summing to 1) against the pool's weights softmax(r x cell logits) -- the cells that make
    the image's call. 0 without boxes."""
    import torch
    import torch.nn.functional as F

    cover = F.avg_pool2d(regions, regions.shape[-1] // cells.shape[-1]).flatten(2)  # (n, L, cells)
    boxed = cover.sum(dim=2) > 0
    if not bool(boxed.any()):
        return cells.sum() * 0.0
    q = cover[boxed]
    q = q / q.sum(dim=1, keepdim=True)
    return -(q * torch.log_softmax(r * cells.flatten(2)[boxed], dim=1)).sum(dim=1).mean()


def fit(train: Split, n_labels: int, seed: int, epochs: int = EPOCHS, say: Callable[[str], None] | None = None):  # noqa: ANN201
    """A FindingsNet trained on `train` with a masked BCE loss (no-consensus targets do not count) plus,
    where the split has consensus boxes, LOCALISATION x `localisation_loss`: the boxes teach the cells
    where to look, the image's logit stays the pool of its cells. Deterministic from `seed`: own
    generators, deterministic kernels, one thread (restored after)."""
    import torch

    from qc_models.findings.network import FindingsNet, lse_pool

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = FindingsNet(n_labels)
            generator = torch.Generator().manual_seed(seed)
            targets = torch.from_numpy(train.targets).float()
            known = torch.isfinite(targets)
            targets = torch.nan_to_num(targets)
            steps = epochs * math.ceil(len(targets) / BATCH)
            opt = torch.optim.AdamW(net.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LEARNING_RATE, total_steps=max(steps, 1))
            loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")
            net.train()
            for epoch in range(epochs):
                order = torch.randperm(len(targets), generator=generator)
                total = 0.0
                for start in range(0, len(order), BATCH):
                    idx = order[start:start + BATCH]
                    if len(idx) < 2:  # BatchNorm needs two images
                        continue
                    x, regions = _augment(train.inputs[idx], generator,
                                          None if train.regions is None else train.regions[idx])
                    mask = known[idx].float()
                    cells = net.cell_logits(x)
                    loss = (loss_fn(lse_pool(cells, net.r), targets[idx]) * mask).sum() / mask.sum().clamp(min=1.0)
                    if regions is not None:
                        loss = loss + LOCALISATION * localisation_loss(cells, regions, net.r)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    sched.step()
                    total += float(loss.detach()) * len(idx)
                if say and (epoch + 1) % 10 == 0:
                    say(f"train findings: seed {seed} epoch {epoch + 1}/{epochs} loss {total / len(order):.4f}")
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    return net.eval()


def evaluate(model: Any, split: Split, seed: int) -> dict[str, Any]:
    """AUC with bootstrap CI and calibration per label on one split (`model`: a ChestFindings)."""
    from qc_models.findings.evaluation import auc_ci, calibration

    probs = model.probabilities(split.inputs) if len(split.images) else np.zeros((0, len(model.labels)))
    out: dict[str, Any] = {"images": len(split.images), "labels": {}}
    for k, label in enumerate(model.labels):
        out["labels"][label] = {"auc": auc_ci(split.targets[:, k], probs[:, k], seed=seed),
                                "calibration": calibration(split.targets[:, k], probs[:, k])}
    return out


def pointing(model: Any, split: Split, instances: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The pointing game per regional label on the split's images that truly show the finding
    (visible: not taken away by a defect), against the synthetic truth's regions (`instances`:
    de-identified SOPInstanceUID -> label -> synth.findings.Truth). Only images showing a regional
    finding are answered (the others do not count)."""
    from qc_models.findings.evaluation import pointing_game, pointing_hit

    hits: dict[str, list[bool]] = {label: [] for label in model.regional}
    shown = [i for i, uid in enumerate(split.sop_uids)
             if any(t is not None and t.visible for t in (instances.get(uid, {}).get(lab) for lab in model.regional))]
    for start in range(0, len(shown), 32):
        chunk = shown[start:start + 32]
        images = [split.images[i] for i in chunk]
        for image, uid, answer in zip(images, [split.sop_uids[i] for i in chunk], model.answer(images)):
            for label in model.regional:
                truth = instances.get(uid, {}).get(label)
                if truth is None or not truth.visible:
                    continue
                regions = [r.mask() for r in truth.regions if r.visible]
                hits[label].append(any(pointing_hit(answer.heatmaps[label], m) for m in regions))
    return {label: pointing_game(h) for label, h in hits.items()}


def site_truth(site: Path, store: Any) -> dict[str, dict[str, Any]]:
    """The synthetic site's finding truth per de-identified SOPInstanceUID (the store's pseudonym secret)."""
    from curation.reid_vault import store_secret
    from deid.pseudonym import Pseudonymizer
    from synth.findings import load_findings

    return load_findings(site).pseudonymised(Pseudonymizer(store_secret(store)).uid).instances


def choose_heatmap(by_method: dict[str, dict[str, Any]]) -> str:
    """The method whose heatmaps hit most regional findings on the validation split (pooled over
    labels); ties go to the first in cam.METHODS (the cheapest)."""
    from qc_models.findings.cam import METHODS

    def hits(method: str) -> int:
        return sum(g["hits"] for g in by_method[method].values())

    return max((m for m in METHODS if m in by_method), key=lambda m: (hits(m), -METHODS.index(m)))


def train_from_release(release: Any, seed: int, split: str = "train", epochs: int = EPOCHS,
                       truth: dict[str, dict[str, Any]] | None = None, size: int | None = None,
                       heatmap_methods: Sequence[str] | None = None,
                       say: Callable[[str], None] | None = None):  # noqa: ANN201 - (ChestFindings, card)
    """Train on `split` of `release` at input side `size`, evaluate on its held-out splits, and return
    the model with its card. With `truth`, every heatmap method (`heatmap_methods`, default all) plays
    the pointing game on each held-out split and the model keeps the one that hits most on `validation`.
    Occlusion is not compared by default: 225 forward passes per image, too slow for the predict step."""
    import monai
    import torch

    from qc_models.findings.model import ChestFindings
    from qc_models.findings.network import INPUT_SIZE

    size = size or INPUT_SIZE
    methods = tuple(heatmap_methods or COMPARED_HEATMAPS)
    labels, regional = model_labels(release)
    train = load_split(release, split, labels, size)
    if len(train.images) < 2:
        raise ValueError(f"split {split!r} of {release.name}@{release.version} has {len(train.images)} images")
    net = fit(train, len(labels), seed, epochs, say)
    model = ChestFindings(net, labels, regional, {}, size=size, heatmap=methods[0])
    metrics: dict[str, Any] = {}
    games: dict[str, dict[str, Any]] = {}
    for name in HELD_OUT:
        if name == split or name not in release.splits():
            continue
        held = load_split(release, name, labels, size)
        metrics[name] = evaluate(model, held, seed)
        if truth is not None:
            games[name] = {}
            for method in methods:
                model.heatmap = method
                games[name][method] = pointing(model, held, truth)
    if games:
        model.heatmap = choose_heatmap(games.get("validation") or next(iter(games.values())))
        for name, by_method in games.items():
            metrics[name]["pointing_game"] = by_method[model.heatmap]
            metrics[name]["pointing_game_by_method"] = by_method
    prevalence = {label: float(np.nanmean(train.targets[:, k])) for k, label in enumerate(labels)}
    model.card = {
        "name": MODEL_NAME, "version": MODEL_VERSION, "labels": labels, "regional_labels": regional,
        "kinds": [str(SeriesKind.CR), str(SeriesKind.DX)], "schema": SCHEMA,
        "data": {"release": f"{release.name}@{release.version}", "manifest_sha256": release.manifest_sha256,
                 "train_split": split, "train_images": len(train.images), "train_prevalence": prevalence,
                 "held_out": {n: m["images"] for n, m in metrics.items()},
                 "targets": "consensus of the release (label_matrix: newest round, Dawid-Skene first)"},
        "training": {"seed": seed, "epochs": epochs, "batch": BATCH, "learning_rate": LEARNING_RATE,
                     "weight_decay": WEIGHT_DECAY, "input_size": size, "loss": f"masked binary cross-entropy + {LOCALISATION:g} x localisation cross-entropy (consensus boxes, "
                             "a tent 1 at each box's centre, vs the log-sum-exp pool's cell weights)" if train.regions is not None
                     else "masked binary cross-entropy",
                     "network": f"5x5 stride-2 stem, 3 conv blocks, 1x1 conv cell logits on a {size // 8} x "
                                f"{size // 8} grid, log-sum-exp pool (r = {net.r:g})",
                     "augmentation": f"shift <= {round(SHIFT * size)} px, contrast 0.85-1.15, brightness +-0.05, noise 0.01",
                     "threads": 1, "torch": torch.__version__.split("+")[0], "monai": monai.__version__},
        "metrics": metrics,
        "heatmap": {"method": model.heatmap, "means": HEATMAP_MEANS[model.heatmap],
                    "chosen_by": "pointing game hits on the validation split, pooled over regional labels"
                    if games else "default (no synthetic truth to choose by)"},
        "intended_use": INTENDED_USE, "limits": list(LIMITS),
    }
    return model, model.card


# -- the command line: the training release and the 5-seed measurement ---------------------------------
def seed_summary(cards: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Per held-out split and label: each seed's AUC with its CI, and the mean, min and max over seeds;
    the pointing game rate per seed (mean, min, max) and pooled over seeds where the cards hold it."""
    out: dict[str, Any] = {}
    first = next(iter(cards.values()))
    for split, block in first["metrics"].items():
        rows = {}
        for label in block["labels"]:
            per = {s: c["metrics"][split]["labels"][label]["auc"] for s, c in cards.items()}
            values = [p["auc"] for p in per.values() if p["auc"] is not None]
            ece = [c["metrics"][split]["labels"][label]["calibration"]["ece"] for c in cards.values()]
            rows[label] = {"auc_mean": float(np.mean(values)) if values else None,
                           "auc_min": min(values, default=None), "auc_max": max(values, default=None),
                           "ece_mean": float(np.mean([e for e in ece if e is not None])) if ece else None,
                           "per_seed": {str(s): {"auc": p["auc"], "ci": p["ci"]} for s, p in per.items()}}
            games = [c["metrics"][split].get("pointing_game", {}).get(label) for c in cards.values()]
            games = [g for g in games if g and g["rate"] is not None]
            if games:
                rates = [g["rate"] for g in games]
                rows[label].update({"pointing_rate_per_seed": rates, "pointing_rate_mean": float(np.mean(rates)),
                                    "pointing_rate_min": min(rates), "pointing_rate_max": max(rates),
                                    "pointing_hits": sum(g["hits"] for g in games),
                                    "pointing_n": sum(g["n"] for g in games)})
        out[split] = {"images": block["images"], "labels": rows,
                      "heatmap_methods": {str(s): c.get("heatmap", {}).get("method") for s, c in cards.items()}}
    return out


def markdown_table(summary: dict[str, Any], split: str = "test") -> str:
    """The docs' table of one split: per label, AUC mean [min, max] over seeds with each seed's 95 % CI,
    and the pointing game rate mean [min, max] with the pooled hits."""
    block = summary[split]
    lines = [f"| label | {split} AUC, mean [min, max] over seeds | per seed: AUC [95 % CI] | "
             "pointing game, mean rate [min, max] (pooled hits / n) |", "|---|---|---|---|"]
    for label, row in block["labels"].items():
        seeds = "; ".join(f"{s}: {v['auc']:.3f} [{v['ci'][0]:.2f}, {v['ci'][1]:.2f}]" if v["auc"] is not None
                          else f"{s}: -" for s, v in row["per_seed"].items())
        game = (f"{row['pointing_rate_mean']:.2f} [{row['pointing_rate_min']:.2f}, {row['pointing_rate_max']:.2f}] "
                f"({row['pointing_hits']} / {row['pointing_n']})" if "pointing_rate_mean" in row else "-")
        auc = (f"{row['auc_mean']:.3f} [{row['auc_min']:.3f}, {row['auc_max']:.3f}]" if row["auc_mean"] is not None
               else "-")
        lines.append(f"| {label} | {auc} | {seeds} | {game} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m training.findings", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("release", help="build and publish the training release (cohort -> stages -> release)")
    s = sub.add_parser("seeds", help="train with several seeds on the release and summarise AUC and pointing game")
    m = sub.add_parser("summary", help="summarise the cards of MODELS/seed-*/ (runs of `seeds`, maybe in parallel)")
    for q in (r, s, m):
        q.add_argument("--workdir", type=Path, required=True)
        q.add_argument("--name", default="chest-findings")
        q.add_argument("--patients", type=int, default=COHORT_PATIENTS)
        q.add_argument("--seed", type=int, default=COHORT_SEED, help="cohort seed")
    for q in (s, m):
        q.add_argument("--models", type=Path, default=None, help="where seed-N/ go (default: WORKDIR)")
        q.add_argument("--out", type=Path, default=None, help="summary JSON (default: MODELS/seeds.json)")
    s.add_argument("--seeds", default="0,1,2,3,4")
    s.add_argument("--epochs", type=int, default=EPOCHS)
    s.add_argument("--size", type=int, default=None, help="input side of the network (default: network.INPUT_SIZE)")
    s.add_argument("--heatmaps", default=None, help="heatmap methods to compare, comma-separated (default: logit_map,gradcam)")
    args = p.parse_args(argv)
    models = getattr(args, "models", None) or args.workdir
    if args.command == "summary":
        cards = {int(d.name.split("-", 1)[1]): json.loads((d / "findings_chest.card.json").read_text())
                 for d in sorted(models.glob("seed-*")) if (d / "findings_chest.card.json").exists()}
        timing = {int(d.name.split("-", 1)[1]): json.loads((d / "timing.json").read_text())
                  for d in sorted(models.glob("seed-*")) if (d / "timing.json").exists()}
        first = next(iter(cards.values()))
        summary = {"release": first["data"]["release"], "manifest_sha256": first["data"]["manifest_sha256"],
                   "seeds": timing, "summary": seed_summary(cards)}
        (args.out or models / "seeds.json").write_text(json.dumps(summary, indent=1) + "\n")
        for split in summary["summary"]:
            print(markdown_table(summary["summary"], split) + "\n")
        return 0
    built = build_release(args.workdir, args.name, args.patients, args.seed)
    if args.command == "release":
        print(json.dumps(built, indent=1))
        return 0
    import time

    from curation.release.reader import open_release
    from curation.store import LocalStore
    from qc_models.findings.model import save

    release = open_release(built["store"], built["release"])
    truth = site_truth(Path(built["site"]), LocalStore(Path(built["store"])))
    cards, seconds = {}, {}
    for seed in (int(x) for x in args.seeds.split(",")):
        wall, cpu = time.perf_counter(), time.process_time()
        model, cards[seed] = train_from_release(release, seed, epochs=args.epochs, truth=truth, size=args.size,
                                                heatmap_methods=args.heatmaps.split(",") if args.heatmaps else None,
                                                say=_say)
        seconds[seed] = {"wall_s": round(time.perf_counter() - wall, 1), "cpu_s": round(time.process_time() - cpu, 1)}
        save(model, models / f"seed-{seed}" / "findings_chest.pt")
        (models / f"seed-{seed}" / "timing.json").write_text(json.dumps(seconds[seed]) + "\n")
        _say(f"seed {seed}: {seconds[seed]}")
    summary = {"release": built["release"], "manifest_sha256": release.manifest_sha256, "seeds": seconds,
               "summary": seed_summary(cards)}
    (args.out or models / "seeds.json").write_text(json.dumps(summary, indent=1) + "\n")
    for split in summary["summary"]:
        print(markdown_table(summary["summary"], split) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
