"""Chest radiographs (CR and DX) of the synthetic site, projected from the chest phantom.

A radiograph may carry one graded defect (`synth.degrade.XR_DEFECTS`): under- or
over-exposure (display shifted, quantum noise as 1/sqrt(dose), and the DX ExposureIndex saying so),
collimator blades cutting into the body, stationary-grid lines, or motion blur; recorded in the
series' ground truth. DX images carry the IEC 62494-1 exposure index (EI, target EI, deviation index).
"""
from __future__ import annotations

import math

import numpy as np

from synth import degrade as dg

from curation.vocabulary import Modality
from synth.chest import ChestFindings, Nodule, nodule_box, projection, radiograph
from synth.dicomio import SeriesCtx, StudyCtx, add_overlay, add_seconds, base_dataset, set_pixels
from synth.findings import record_projection
from synth.identity import rng_for
from synth.writer import SiteWriter

CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_PRESENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"
#: Field of the projection grid (mm, square), shared by topograms, radiographs and the PNG/JPEG images.
XRAY_EXTENT_MM = 450.0
XR_EQUIPMENT = {
    Modality.CR: ("FUJIFILM Corporation", "FCR PROFECT CS"),
    Modality.DX: ("Carestream Health", "DRX-Evolution Plus"),
}


#: Quantum noise of a radiograph at the target exposure (fraction of the display range).
XR_NOISE = 0.006
#: Display level of the unexposed detector behind a collimator blade (scatter only; MONOCHROME2).
UNEXPOSED_LEVEL = 0.95
TARGET_EI = 400.0


def chest_image(n: int, nodule: Nodule | ChestFindings | None, rng: np.random.Generator, bits: int = 12) -> np.ndarray:
    """A PA chest radiograph (MONOCHROME2 display values, float) with quantum-like noise."""
    return chest_image_with_defect(n, nodule, rng, bits)[0]


def chest_image_with_defect(n: int, nodule: Nodule | ChestFindings | None, rng: np.random.Generator, bits: int = 12,
                            defect: tuple[str, int] | None = None, defect_rng: np.random.Generator | None = None,
                            ) -> tuple[np.ndarray, dict]:
    """`chest_image` with a planted defect, and the defect's parameters ({} when clean). The clean
    image does not depend on `defect_rng`."""
    line = projection(n, XRAY_EXTENT_MM, nodule)
    img = radiograph(line, bits=bits)
    top = (1 << bits) - 1
    noise = rng.normal(0.0, top * XR_NOISE, img.shape)
    if defect is None:
        return np.clip(img + noise, 0, top), {}
    kind, sev = defect
    drng = defect_rng if defect_rng is not None else np.random.default_rng(0)
    frac = img / top
    params: dict = {}
    field = None
    if kind in ("underexposure", "overexposure"):
        dose = (dg.XR_UNDER_DOSE if kind == "underexposure" else dg.XR_OVER_DOSE)[sev]
        frac = dg.xr_exposure(frac, dose, XR_NOISE, drng)
        params = {"dose": dose}
    elif kind == "motion_blur":
        frac, params = dg.xr_motion_blur(frac, sev, XRAY_EXTENT_MM / (n - 1), drng)
    elif kind == "grid_lines":
        pattern, params = dg.xr_grid_lines(frac.shape, sev, drng)
        frac = frac + pattern
    elif kind == "collimation":
        body = line > 0.02 * float(line.max())
        cols, rows = np.flatnonzero(body.any(axis=0)), np.flatnonzero(body.any(axis=1))
        field, params = dg.xr_collimation(frac.shape, sev, (int(cols[0]), int(cols[-1]) + 1),
                                          (int(rows[0]), int(rows[-1]) + 1), drng)
    else:
        raise ValueError(f"unknown radiograph defect {kind!r}")
    out = frac * top + noise
    if field is not None:  # behind the blades: the unexposed detector, scatter noise only
        out = np.where(field, out, top * UNEXPOSED_LEVEL + drng.normal(0.0, top * XR_NOISE / 2, out.shape))
    return np.clip(out, 0, top), params


def chest_radiograph(writer: SiteWriter, study: StudyCtx, modality: str, n: int, findings: ChestFindings | None,
                     transfer_syntax: str, defect: tuple[str, int] | None = None) -> dict:
    """One CR (MONOCHROME1, as CR readers store it) or DX (MONOCHROME2) PA chest image, with an overlay;
    `defect` (type, severity) from `degrade.XR_DEFECTS`; `findings` drawn and recorded (None: neither)."""
    def render(chest: ChestFindings | None) -> tuple[np.ndarray, dict]:
        return chest_image_with_defect(n, chest, rng_for(study.seed, "xr", study.patient.index, study.index),
                                       defect=defect,
                                       defect_rng=rng_for(study.seed, "xr-defect", study.patient.index, study.index))

    img, params = render(findings)
    photometric = "MONOCHROME1" if modality == Modality.CR else "MONOCHROME2"
    stored = (4095 - img) if modality == Modality.CR else img
    sctx = SeriesCtx(study=study, number=1, modality=modality,
                     description="PA" if modality == Modality.DX else "CHEST PA",
                     protocol="Chest PA", time=add_seconds(study.time, 60), body_part="CHEST")
    sctx.extension = ".dcm"
    rec = writer.new_series(sctx, modality, plane="coronal", dimensions="2D", contrast=False, derived=False,
                            transfer_syntax=transfer_syntax, photometric_interpretation=photometric)
    if defect is not None:
        rec["degradation"] = {"type": defect[0], "severity": defect[1], **params}
    ds = base_dataset(sctx, CR_IMAGE_STORAGE if modality == Modality.CR else DX_PRESENTATION_STORAGE, 1)
    ds.Manufacturer, ds.ManufacturerModelName = XR_EQUIPMENT[modality]
    ds.ImageType = ["ORIGINAL", "PRIMARY"] if modality == Modality.DX else ["ORIGINAL", "PRIMARY", ""]
    ds.ViewPosition = "PA"
    ds.PatientOrientation = ["L", "F"]
    ds.ImageLaterality = "U"
    px = XRAY_EXTENT_MM / (n - 1)
    ds.ImagerPixelSpacing = [f"{px:.4f}", f"{px:.4f}"]
    ds.PixelSpacing = [f"{px:.4f}", f"{px:.4f}"]
    ds.KVP = "120"
    ds.ExposureTime = 8
    ds.XRayTubeCurrent = 320
    ds.DistanceSourceToDetector = "1800"
    ds.DistanceSourceToPatient = "1650"
    if modality == Modality.DX:
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.PixelIntensityRelationship = "LOG"
        ds.PixelIntensityRelationshipSign = 1
        ds.DetectorType = "SCINTILLATOR"
        ds.BurnedInAnnotation = "NO"
        # IEC 62494-1: EI proportional to the detector dose; a few % scatter between exposures.
        ei_rng = rng_for(study.seed, "xr-ei", study.patient.index, study.index)
        ei = TARGET_EI * params.get("dose", 1.0) * float(ei_rng.uniform(0.85, 1.15))
        ds.ExposureIndex = round(ei, 1)
        ds.TargetExposureIndex = TARGET_EI
        ds.DeviationIndex = round(10.0 * math.log10(ei / TARGET_EI), 2)
    else:
        ds.PlateType = "ST-VI"
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = "1"
    ds.RescaleType = "US"  # not-vocabulary
    ds.WindowCenter = "2048"
    ds.WindowWidth = "4096"
    set_pixels(ds, np.rint(stored).astype(np.uint16), photometric=photometric, bits_stored=12)
    add_overlay(ds, study.patient.pn, f"{study.patient.pn} {study.patient.patient_id} PA erect")
    writer.write_instance(ds, sctx, rec, 1, transfer_syntax)
    if findings is not None and findings.nodule is not None:
        rec["lesions"].append({"label": "nodule", "file": rec["files"][0],
                               "box": nodule_box(findings.nodule, n, XRAY_EXTENT_MM)})
    if findings is not None:  # contrast on the clean image, in stored values (MONOCHROME1 inverts)
        clean = radiograph(projection(n, XRAY_EXTENT_MM, findings))
        effect = None
        if defect is not None and findings.any():  # same random streams without the findings
            effect = (img - render(None)[0], clean - radiograph(projection(n, XRAY_EXTENT_MM, None)))
        record_projection(rec, study.seed, study.patient.index, findings, n, XRAY_EXTENT_MM,
                          4095 - clean if modality == Modality.CR else clean, rec["files"][0], effect)
    return rec
