"""`generate_site`: a deterministic synthetic hospital export with its ground truth.

Each patient's data depends only on (seed, patient index), so patients 0..k are the same whatever
`patients` is, and two runs with the same arguments write byte-identical files.
"""
from __future__ import annotations

import datetime as dt
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from curation.vocabulary import Modality, SeriesKind
from synth import degrade as dg
from synth.bad import plant_bad_inputs
from synth.chest import Nodule
from synth.ct import CTStudyBuilder
from synth.dicomio import VENDORS, StudyCtx
from synth.findings import chest_findings, chest_geometry, section as findings_section
from synth.identity import Patient, make_patient, make_site, rng_for
from synth.mr import STRUCTURAL, MROptions, MRStudyBuilder
from synth.exports import chest_pictures, write_nifti
from synth.us import screen_capture, us_study
from synth.writer import SCHEMA, SiteWriter
from synth.xray import chest_radiograph

VENDOR_ORDER = ("siemens", "ge", "philips")
DEGRADATION_TYPES = ("noise", "ghosting", "blur", "bias")

#: Transfer syntax of MR series by vendor and kind (default Explicit VR Little Endian). GE exports
#: Implicit VR, as its older PACS links do.
MR_TS = {
    "siemens": {SeriesKind.ADC: RLELossless},
    "ge": {k: ImplicitVRLittleEndian for k in (SeriesKind.LOCALIZER, SeriesKind.T1W, SeriesKind.T2W, SeriesKind.FLAIR,
                                               SeriesKind.PDW, SeriesKind.DWI, SeriesKind.ADC, SeriesKind.DCE,
                                               SeriesKind.SWI, "T1W_POST")},
    "philips": {SeriesKind.SWI: JPEG2000Lossless},
}


def degradation_plan(seed: int, index: int) -> dict[str, tuple[str, int]]:
    """Which structural MR series of patient `index` get which defect and severity.

    About half the structural series are degraded; across any three consecutive patients every
    defect type occurs, and severities spread over 1..5.
    """
    rng = rng_for(seed, "degradation", index)
    plan: dict[str, tuple[str, int]] = {}
    k = 0
    for j, kind in enumerate(STRUCTURAL):
        if (index + j) % 2 == 0:
            plan[kind] = (DEGRADATION_TYPES[(k + index) % 4], int(rng.integers(1, 6)))
            k += 1
    return plan


def modality_defect_plan(seed: int, index: int) -> dict[str, tuple[str, int]]:
    """Which CT, radiograph and ultrasound series of patient `index` get which defect and severity
    (keys "CT HEAD" or "CT CHEST", "XR", "US"; severities 1..5 drawn per patient).

    Every other patient has a degraded CT (head or chest: types in turn), patients 0, 1, 4, 5, ... a
    degraded radiograph (CR and DX alike: CR for even patients, DX for odd ones), odd patients a
    degraded single-frame ultrasound. Its own random stream: the MR series do not change.
    """
    rng = rng_for(seed, "modality-defects", index)
    sev = [int(x) for x in rng.integers(1, 6, 3)]
    plan: dict[str, tuple[str, int]] = {}
    if index % 2 == 0:
        k = index // 2
        part = "HEAD" if (k + k // len(dg.CT_DEFECTS)) % 2 == 0 else "CHEST"
        plan[f"CT {part}"] = (dg.CT_DEFECTS[k % len(dg.CT_DEFECTS)], sev[0])
    if index % 4 in (0, 1):
        plan["XR"] = (dg.XR_DEFECTS[(index // 4) % len(dg.XR_DEFECTS)], sev[1])
    if index % 2 == 1:
        # dropout first: the first sites' (tests') ultrasound keeps its fan free of clipped white
        plan[SeriesKind.US] = (dg.US_DEFECTS[(index // 2 + 1) % len(dg.US_DEFECTS)], sev[2])
    return plan


def _study(patient: Patient, site, seed: int, index: int, modality: str, vendor: str, days: int,
           description: str, body_part: str) -> StudyCtx:
    rng = rng_for(seed, "study", patient.index, index)
    ph = site.physicians
    return StudyCtx(
        patient=patient, site=site, vendor=VENDORS[vendor], modality=modality, index=index,
        date=patient.first_visit + dt.timedelta(days=days),
        time=f"{int(rng.integers(7, 18)):02d}{int(rng.integers(0, 60)):02d}{int(rng.integers(0, 60)):02d}",
        description=description, body_part=body_part,
        referring=ph[int(rng.integers(len(ph)))], performing=ph[(index + patient.index) % len(ph)],
        operator=site.operators[int(rng.integers(len(site.operators)))], reader=ph[(index + 2) % len(ph)],
        seed=seed, name_in_description=(patient.index + index) % 3 == 0,
    )


NIFTI_SUFFIX = {SeriesKind.T1W: "T1w", SeriesKind.T2W: "T2w", SeriesKind.FLAIR: "FLAIR"}  # not-vocabulary


def generate_patient(writer: SiteWriter, site, seed: int, index: int, opts: dict, extra: dict) -> Patient:
    p = make_patient(seed, index, site)
    rng = rng_for(seed, "visits", index)
    vendor = VENDOR_ORDER[index % 3]
    defects = modality_defect_plan(seed, index)

    # MR brain, full protocol
    mr = _study(p, site, seed, 0, Modality.MR, vendor, 0, "MRI BRAIN W/WO CONTRAST", "HEAD")
    writer.add_study(mr)
    builder = MRStudyBuilder(writer, mr, MROptions(matrix=opts["matrix"], slices=opts["slices"],
                                                   slices_4d=opts["slices_4d"], matrix_4d=opts["matrix_4d"]),
                             degradation_plan(seed, index), with_post_contrast=index % 2 == 1,
                             transfer_syntaxes=MR_TS[vendor])
    builder.build()
    screen_capture(writer, mr, number=99)
    for kind, stored, geom, degradation, found in builder.nifti_volumes:
        rel = f"nifti/P{index + 1:05d}/P{index + 1:05d}_{NIFTI_SUFFIX[kind]}.nii.gz"
        entry = {"kind": kind, "patient_index": index, "patient_id": p.patient_id, "degradation": degradation}
        if found:
            entry["findings"] = found
        extra.setdefault("nifti", []).append(write_nifti(writer, rel, stored, geom, entry))

    # CT head: without, with, or without-then-with contrast
    ct_vendor = VENDOR_ORDER[(index + 1) % 3]
    head = _study(p, site, seed, 1, Modality.CT, ct_vendor, int(rng.integers(3, 40)), "CT HEAD", "HEAD")
    writer.add_study(head)
    phases = ((False,), (True,), (False, True))[index % 3]
    CTStudyBuilder(writer, head, opts["ct_matrix"], opts["slices"], JPEGLSLossless).head(phases, defects.get("CT HEAD"))

    # CT chest with a lung nodule in some patients
    chest = _study(p, site, seed, 2, Modality.CT, ct_vendor, int(rng.integers(41, 120)), "CT CHEST", "CHEST")
    writer.add_study(chest)
    nodule = None
    if index % 3 != 2:
        nodule = Nodule((float(rng.uniform(-95, -55)), float(rng.uniform(-20, 30)), float(rng.uniform(0, 70))),
                        float(round(rng.uniform(6, 11), 1)))
    findings = chest_findings(seed, index, nodule)
    extra.setdefault("chest_findings", []).append(chest_geometry(index, findings))
    CTStudyBuilder(writer, chest, opts["ct_matrix"], opts["slices"], ExplicitVRLittleEndian).chest(
        contrast=index % 2 == 0, findings=findings, topogram_ts=ExplicitVRLittleEndian, defect=defects.get("CT CHEST"))

    # Chest radiograph: CR for even patients, DX for odd ones; same chest findings as the CT
    xr_mod = Modality.CR if index % 2 == 0 else Modality.DX
    xr = _study(p, site, seed, 3, xr_mod, ct_vendor, int(rng.integers(121, 200)), "XR CHEST PA", "CHEST")
    writer.add_study(xr)
    chest_radiograph(writer, xr, xr_mod, opts["xray_matrix"], findings,
                     ExplicitVRLittleEndian if index % 3 else ImplicitVRLittleEndian, defects.get("XR"))
    extra.setdefault("images", []).extend(chest_pictures(writer, seed, p, opts["xray_matrix"], findings))

    # Ultrasound with burned-in text
    us = _study(p, site, seed, 4, Modality.US, VENDOR_ORDER[(index + 2) % 3], int(rng.integers(201, 300)),
                "US ABDOMEN COMPLETE", "ABDOMEN")
    writer.add_study(us)
    p.add_phi(f"{us.date:%m/%d/%Y} {us.time[:2]}:{us.time[2:4]}", f"{mr.date:%Y-%m-%d}")
    us_study(writer, us, defects.get(SeriesKind.US))
    return p


def defect_study(out_dir: Path, seed: int, index: int, what: str, defect: tuple[str, int] | None, *,
                 matrix: int = 256, slices: int = 12, contrast: bool = False) -> dict:
    """Only one study of patient `index` with the given defect (None: clean), for calibrating and
    testing quality decisions without a whole site: `what` is "CT HEAD", "CT CHEST", "CR", "DX" or
    "US" (`matrix`: CT and radiograph matrix). Returns the series record of the (first) series."""
    site = make_site(seed)
    writer = SiteWriter(Path(out_dir), record_phi_locations=False)
    p = make_patient(seed, index, site)
    vendor = VENDOR_ORDER[index % 3]
    if what.startswith(Modality.CT):
        part = what.split()[1]
        st = _study(p, site, seed, 1 if part == "HEAD" else 2, Modality.CT, vendor, 10, f"CT {part}", part)
        writer.add_study(st)
        b = CTStudyBuilder(writer, st, matrix, slices, ExplicitVRLittleEndian)
        if part == "HEAD":
            b.head((contrast,), defect)
        else:
            b.chest(contrast, None, ExplicitVRLittleEndian, defect)
        return next(s for s in writer.series if s["kind"] == SeriesKind.CT)
    if what in (SeriesKind.CR, SeriesKind.DX):
        st = _study(p, site, seed, 3, what, vendor, 130, "XR CHEST PA", "CHEST")
        writer.add_study(st)
        return chest_radiograph(writer, st, what, matrix, None, ExplicitVRLittleEndian, defect)
    if what == SeriesKind.US:
        st = _study(p, site, seed, 4, Modality.US, vendor, 210, "US ABDOMEN COMPLETE", "ABDOMEN")
        writer.add_study(st)
        us_study(writer, st, defect, only_single=True)
        return writer.series[0]
    raise ValueError(f"unknown study {what!r}")


def generate_site(
    out_dir: Path,
    patients: int = 3,
    seed: int = 0,
    *,
    matrix: int = 128,
    slices: int = 24,
    slices_4d: int | None = None,
    matrix_4d: int | None = None,
    ct_matrix: int | None = None,
    phi_locations: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Write a synthetic hospital export under `out_dir` and return its ground truth (also written to
    `out_dir/ground_truth.json`). Same arguments, same bytes."""
    if patients < 1:
        raise ValueError("patients must be >= 1")
    if matrix < 32 or slices < 4:
        raise ValueError("matrix must be >= 32 and slices >= 4")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda msg: print(msg, file=sys.stderr, flush=True))
    opts = {
        "matrix": matrix,
        "slices": slices,
        "slices_4d": slices_4d or max(6, slices // 2),
        "matrix_4d": matrix_4d or max(32, (matrix * 3 // 4) // 2 * 2),
        "ct_matrix": ct_matrix or 2 * matrix,
        "xray_matrix": ct_matrix or 2 * matrix,
    }
    site = make_site(seed)
    writer = SiteWriter(out, record_phi_locations=phi_locations)
    people: list[Patient] = []
    extra: dict[str, list] = {"images": [], "nifti": [], "chest_findings": []}
    t0 = time.monotonic()
    for i in range(patients):
        before = writer.n_written
        people.append(generate_patient(writer, site, seed, i, opts, extra))
        say(f"synth: patient {i + 1}/{patients}: {writer.n_written - before} files "
            f"({time.monotonic() - t0:.1f} s)")
    bad = plant_bad_inputs(writer, seed)
    say(f"synth: {len(bad)} bad inputs planted")

    truth = {
        "schema": SCHEMA,
        "seed": seed,
        "options": dict(opts, patients=patients, phi_locations=phi_locations),
        "site": dict(site.to_json(), baseline_noise_sigma=dg.BASELINE_NOISE_SIGMA),
        "patients": [_patient_json(p) for p in people],
        "studies": writer.studies,
        "series": writer.series,
        "bad_inputs": bad,
        "images": extra["images"],
        "nifti": extra["nifti"],
        "files": dict(sorted(writer.files.items())),
        "phi_locations": writer.phi_locations,
    }
    truth["findings"] = findings_section(seed, truth, extra.get("chest_findings", []))
    (out / "ground_truth.json").write_text(json.dumps(truth, indent=1, sort_keys=True) + "\n")
    return truth


def _patient_json(p: Patient) -> dict:
    return {
        "index": p.index,
        "patient_id": p.patient_id,
        "other_patient_id": p.other_id,
        "patient_name": p.pn,
        "birth_date": p.birth_da,
        "sex": p.sex,
        "age": p.age_at(p.first_visit),
        "address": p.address,
        "phone": p.phone,
        "head_scale": p.head_scale,
        "phi_values": list(p.phi_values),
    }


def summarize(truth: dict) -> dict:
    """Counts for the CLI's closing summary."""
    files = truth["files"]
    by_type: dict[str, int] = {}
    for f in files.values():
        by_type[f["type"]] = by_type.get(f["type"], 0) + 1
    kinds: dict[str, int] = {}
    for s in truth["series"]:
        kinds[s["kind"]] = kinds.get(s["kind"], 0) + 1
    return {
        "patients": len(truth["patients"]),
        "studies": len(truth["studies"]),
        "series": len(truth["series"]),
        "instances": sum(s["n_instances"] for s in truth["series"]),
        "files_by_type": by_type,
        "series_by_kind": kinds,
        "phi_locations": len(truth["phi_locations"]),
    }
