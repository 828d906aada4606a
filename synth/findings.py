"""Findings with known truth in the synthetic hospital, and the API that answers "does item X show
finding F, and where" for simulated readers and for measuring annotation rounds.

Each series (and PNG/JPEG picture, and NIfTI volume) that can show a finding carries, in
ground_truth.json, ``"findings": {name: {"present": bool, "regions": [{"id", "instances": [...]}]}}``
for every finding its kind can show (negatives explicit). Regions are in the pixel grid of the image
as written (`synth.regions`: boxes, run-length masks, planted contrast); de-identification keeps that
grid (it masks burned-in text in place, never crops or resamples).

Join keys, so truth can be found from de-identified items without carrying anything into them:
- DICOM: the raw SeriesInstanceUID / SOPInstanceUID. De-identification replaces each UID by
  ``Pseudonymizer(secret).uid(raw)`` (`deid.pseudonym`, keyed HMAC), so whoever ran the pipeline
  (and holds the site secret of the vault) re-keys the truth forward with
  ``load_findings(site).pseudonymised(Pseudonymizer(secret).uid)``; no re-identification map is
  opened and no header is added to the images.
- PNG/JPEG pictures and NIfTI volumes (no UIDs; their de-identified names are content hashes): the
  `pixel_key` of the decoded pixels / the voxel array, which de-identification keeps bit for bit
  (a JPEG comes out as a PNG of its decoded pixels).
Region ids (``<finding>-<12 hex>``, from seed, patient index and finding only) name the same physical
finding across series and modalities of one patient (a nodule on the CT, topogram, radiograph, PNG).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from curation.vocabulary import SeriesKind
from synth.chest import ChestFindings, Effusion, Nodule, Opacity, shadow_masks
from synth.identity import rng_for
from synth.regions import MASK_ENCODING, mask_region, rle_decode

SCHEMA = "curate-synth-findings/1"
#: Findings a chest image (CT chest, topogram, CR, DX, picture) can show, and a head image (T2W, FLAIR, CT head).
CHEST_FINDINGS = ("nodule", "opacity", "effusion")
BRAIN_FINDINGS = ("brain_lesion",)
#: MR kinds whose truth is recorded: the lesion is hyperintense there.
BRAIN_MR_KINDS = (SeriesKind.T2W, SeriesKind.FLAIR)


@dataclass(frozen=True)
class FindingDef:
    """One yes/no finding with a region: what it looks like, where it is shown, how often."""

    name: str
    description: str
    shown_by: str
    region: str  # "mask" on CT/MR slices, "box" on projections
    prevalence: str

    def to_json(self) -> dict[str, str]:
        return {"description": self.description, "shown_by": self.shown_by, "region": self.region,
                "prevalence": self.prevalence}


FINDINGS: dict[str, FindingDef] = {d.name: d for d in (
    FindingDef("nodule", "round solid lung nodule, radius 6-11 mm, right lung (30 HU, 70 HU with contrast)",
               "CT chest (mask per slice), CT topogram, CR, DX, PNG/JPEG chest pictures (box)", "mask|box",
               "patients with index % 3 != 2 (2 of 3)"),
    FindingDef("opacity", "consolidation-like opacity: left upper lung inside an ellipsoid of semi-axes 14-26 mm "
               "becomes fluid-dense (20 HU, 45 HU with contrast)",
               "CT chest (mask per slice), CT topogram, CR, DX, PNG/JPEG chest pictures (box)", "mask|box",
               "patients with index % 3 == 0 (1 of 3)"),
    FindingDef("effusion", "pleural effusion: the base of one lung (side drawn) below a fluid level 25-45 mm above "
               "the lung's lowest point, with a meniscus rising 20 mm laterally (10 HU)",
               "CT chest (mask per slice), CT topogram, CR, DX, PNG/JPEG chest pictures (box)", "mask|box",
               "patients with index % 3 == 1 (1 of 3)"),
    FindingDef("brain_lesion", "right frontal lesion (ellipsoid 7 x 6 x 6 mm semi-axes x head scale): hyperintense "
               "on T2W and FLAIR, hyperdense on CT (55 HU, 100 HU with contrast)",
               "MR T2W and FLAIR, CT head (mask per slice), NIfTI T2w/FLAIR (mask per slice)", "mask",
               "every patient (the head phantom's lesion; fixed because the shipped quality tables pin the MR "
               "pixels): negatives are the slices without it, and series whose slices skip it"),
)}


def finding_id(seed: int, index: int, name: str) -> str:
    """A stable id of one patient's finding, made from no identifying value."""
    return f"{name}-{hashlib.sha256(f'curate-synth-finding/{seed}/{index}/{name}'.encode()).hexdigest()[:12]}"


def chest_findings(seed: int, index: int, nodule: Nodule | None) -> ChestFindings:
    """The chest findings of patient `index` (the nodule is drawn by the site, as before). Opacity and
    effusion come from their own random stream, always drawn, so no other data move."""
    rng = rng_for(seed, "chest-findings", index)
    opacity = Opacity((float(rng.uniform(62, 86)), float(rng.uniform(-10, 30)), float(rng.uniform(45, 85))),
                      (float(rng.uniform(14, 20)), float(rng.uniform(18, 26)), float(rng.uniform(18, 26))))
    effusion = Effusion("right" if rng.integers(2) else "left", float(round(rng.uniform(25, 45), 1)))
    return ChestFindings(nodule=nodule, opacity=opacity if index % 3 == 0 else None,
                         effusion=effusion if index % 3 == 1 else None)


def pixel_key(array: np.ndarray) -> str:
    """sha256 of dtype, shape and little-endian C-order bytes of a pixel or voxel array: the join key of
    PNG/JPEG pictures (decoded pixels) and NIfTI volumes (voxel array as stored)."""
    a = np.asarray(array)
    a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
    head = f"{a.dtype.kind}{a.dtype.itemsize}|{'x'.join(map(str, a.shape))}|".encode()
    return hashlib.sha256(head + a.tobytes()).hexdigest()


# -- writing ---------------------------------------------------------------------------------------
def declare(record: dict, names: tuple[str, ...]) -> dict:
    """Start the record's findings with every finding its kind can show as absent."""
    found = record.setdefault("findings", {})
    for name in names:
        found.setdefault(name, {"present": False, "regions": []})
    return found


def add_region(record: dict, name: str, region_id: str, instances: list[dict]) -> None:
    """One finding's region over the instances (slices, images) that show it; none: stays absent."""
    if instances:
        entry = record["findings"][name]
        entry["present"] = True
        entry["regions"].append({"id": region_id, "instances": instances})


#: A finding stays visible on a degraded radiograph while the defect leaves this share of its effect.
VISIBLE_SHARE = 0.5


def record_projection(record: dict, seed: int, index: int, chest: ChestFindings, n: int, extent_mm: float,
                      clean: np.ndarray, file: str, effect: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Chest findings of one projection image (topogram, CR, DX, picture) on the `n` x `n` grid of
    `chest.projection`; `clean`: the noise-free, defect-free image in the file's stored values.
    `effect` (degraded images): what the findings change in the written pixels and in the clean ones
    (each: the image with them minus the same image without them); "visible" says whether the
    defect left at least VISIBLE_SHARE of the change in the shadow (over-/under-exposure clips it away,
    collimator blades hide it)."""
    declare(record, CHEST_FINDINGS)
    for name, mask in shadow_masks(chest, n, extent_mm).items():
        inst = {"file": file, **mask_region(mask, clean), "visible": True}
        if effect is not None:
            shown, planted = (float(np.mean(e[mask])) for e in effect)
            inst["visible"] = abs(shown) >= VISIBLE_SHARE * abs(planted)
        add_region(record, name, finding_id(seed, index, name), [inst])


def record_slices(record: dict, seed: int, index: int, name: str, labels: np.ndarray, tissue: int,
                  clean: np.ndarray, files: list[str]) -> None:
    """One finding drawn as `tissue` in a label volume (slices first, as written): a mask per slice
    showing it, contrast on `clean` (noise-free, defect-free, stored values)."""
    record["findings"].setdefault(name, {"present": False, "regions": []})
    hit = labels == tissue
    instances = []
    for k in np.flatnonzero(hit.any(axis=(1, 2))):
        instances.append({"file": files[k], **mask_region(hit[k], clean[k]), "visible": True})
    add_region(record, name, finding_id(seed, index, name), instances)


def volume_findings(record: dict) -> dict:
    """The findings of a DICOM series for its NIfTI copy (same voxels): instances by slice index."""
    where = {f: k for k, f in enumerate(record["files"])}
    return {name: {"present": e["present"],
                   "regions": [{"id": r["id"], "instances": [dict({k: v for k, v in i.items() if k != "file"},
                                                                   slice=where[i["file"]]) for i in r["instances"]]}
                               for r in e["regions"]]}
            for name, e in record.get("findings", {}).items()}


def chest_geometry(index: int, chest: ChestFindings) -> dict:
    """The planted chest findings of one patient in LPS mm (what the masks and boxes come from)."""
    out: dict[str, Any] = {"patient_index": index}
    if chest.nodule is not None:
        out["nodule"] = {"centre_mm": list(chest.nodule.centre), "radius_mm": chest.nodule.radius}
    if chest.opacity is not None:
        out["opacity"] = {"centre_mm": list(chest.opacity.centre), "axes_mm": list(chest.opacity.axes)}
    if chest.effusion is not None:
        out["effusion"] = {"side": chest.effusion.side, "level_mm": chest.effusion.level_mm}
    return out


def chest_from_geometry(entry: dict) -> ChestFindings:
    """`ChestFindings` back from `chest_geometry`'s record."""
    n, o, e = entry.get("nodule"), entry.get("opacity"), entry.get("effusion")
    return ChestFindings(nodule=Nodule(tuple(n["centre_mm"]), n["radius_mm"]) if n else None,
                         opacity=Opacity(tuple(o["centre_mm"]), tuple(o["axes_mm"])) if o else None,
                         effusion=Effusion(e["side"], e["level_mm"]) if e else None)


def section(seed: int, truth: dict, chests: list[dict]) -> dict:
    """The top-level "findings" section: schema, definitions, encoding, counts per finding and the
    planted chest geometry per patient (`chests`, from `chest_geometry`)."""
    counts: dict[str, dict[str, int]] = {n: {"positive_series": 0, "negative_series": 0, "positive_patients": 0}
                                         for n in FINDINGS}
    positive_patients: dict[str, set] = {n: set() for n in FINDINGS}
    for s in truth["series"]:
        for name, f in s.get("findings", {}).items():
            counts[name]["positive_series" if f["present"] else "negative_series"] += 1
            if f["present"]:
                positive_patients[name].add(s["patient_id"])
    for name in FINDINGS:
        counts[name]["positive_patients"] = len(positive_patients[name])
    return {"schema": SCHEMA, "seed": seed, "mask_encoding": MASK_ENCODING,
            "definitions": {n: d.to_json() for n, d in FINDINGS.items()}, "counts": counts, "chest": chests}


# -- reading ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Region:
    """Where one finding lies in one image: its box and mask and the planted contrast (mean inside
    the mask minus mean of the 3-pixel ring around it, noise-free, in stored pixel units)."""

    finding: str
    id: str
    box: tuple[int, int, int, int]
    contrast: float
    instance: str | int | None = None  # SOPInstanceUID (DICOM), slice index (NIfTI), None (picture)
    visible: bool = True  # False where a radiograph's defect (clipping, collimation) took it away
    rle: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    def mask(self) -> np.ndarray:
        """The region's pixels, in the image's grid."""
        return rle_decode(dict(self.rle))


@dataclass(frozen=True)
class Truth:
    """The answer for one item and one finding: present (in the imaged field) or not, and where.
    `visible`: present and not taken away by a defect of the image (what a careful reader can see)."""

    finding: str
    present: bool
    regions: tuple[Region, ...] = ()

    @property
    def visible(self) -> bool:
        return self.present and any(r.visible for r in self.regions)


@dataclass
class SiteFindings:
    """Truth per series, per instance (DICOM), per picture and per volume (by `pixel_key`)."""

    series: dict[str, dict[str, Truth]]
    instances: dict[str, dict[str, Truth]]
    pictures: dict[str, dict[str, Truth]]
    volumes: dict[str, dict[str, Truth]]

    def shows(self, key: str, finding: str) -> Truth:
        """Truth for a SeriesInstanceUID, SOPInstanceUID or pixel key; KeyError when the item is not
        known or its kind cannot show the finding."""
        for table in (self.instances, self.series, self.pictures, self.volumes):
            if key in table:
                return table[key][finding]
        raise KeyError(f"no finding truth for item {key!r}")

    def pseudonymised(self, uid: Callable[[str], str]) -> SiteFindings:
        """The same truth keyed by de-identified UIDs (`uid`: e.g. ``Pseudonymizer(secret).uid``)."""
        def rekey(truths: dict[str, Truth]) -> dict[str, Truth]:
            return {n: replace(t, regions=tuple(replace(r, instance=uid(r.instance)) for r in t.regions))
                    for n, t in truths.items()}
        return SiteFindings(series={uid(k): rekey(v) for k, v in self.series.items()},
                            instances={uid(k): rekey(v) for k, v in self.instances.items()},
                            pictures=dict(self.pictures), volumes=dict(self.volumes))


def _regions(name: str, entry: dict, instance_of: Callable[[dict], str | int | None]) -> list[Region]:
    return [Region(name, reg["id"], tuple(inst["box"]), inst["contrast"], instance_of(inst), inst.get("visible", True),
                   inst.get("mask"))
            for reg in entry["regions"] for inst in reg["instances"]]


def findings_from_truth(truth: dict) -> SiteFindings:
    """`SiteFindings` of a ground truth already loaded."""
    files = truth["files"]
    series: dict[str, dict[str, Truth]] = {}
    instances: dict[str, dict[str, Truth]] = {}
    for s in truth["series"]:
        found = s.get("findings")
        if not found:
            continue
        per_series: dict[str, Truth] = {}
        per_instance: dict[str, dict[str, list[Region]]] = {files[f]["sop_instance_uid"]: {n: [] for n in found}
                                                            for f in s["files"]}
        for name, entry in found.items():
            regs = _regions(name, entry, lambda inst: files[inst["file"]]["sop_instance_uid"])
            per_series[name] = Truth(name, entry["present"], tuple(regs))
            for r in regs:
                per_instance[r.instance][name].append(r)
        series[s["series_instance_uid"]] = per_series
        for sop, by_name in per_instance.items():
            instances[sop] = {n: Truth(n, bool(rs), tuple(rs)) for n, rs in by_name.items()}
    pictures = {p["pixel_sha256"]: {n: Truth(n, e["present"], tuple(_regions(n, e, lambda inst: None)))
                                    for n, e in p["findings"].items()}
                for p in truth["images"] if p.get("findings")}
    volumes = {v["voxel_sha256"]: {n: Truth(n, e["present"], tuple(_regions(n, e, lambda inst: inst["slice"])))
                                   for n, e in v["findings"].items()}
               for v in truth["nifti"] if v.get("findings")}
    return SiteFindings(series, instances, pictures, volumes)


def load_findings(site_dir: Path | str) -> SiteFindings:
    """Finding truth of a site written by `synth.generate_site` (its ground_truth.json)."""
    truth = json.loads((Path(site_dir) / "ground_truth.json").read_text())
    if "findings" not in truth:
        raise ValueError(f"{site_dir}: ground truth without findings (written before findings existed)")
    return findings_from_truth(truth)
