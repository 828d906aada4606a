"""Chest radiographs (CR and DX) of the synthetic site, projected from the chest phantom."""
from __future__ import annotations

import numpy as np

from curation.synth.chest import Nodule, nodule_box, projection, radiograph
from curation.synth.dicomio import SeriesCtx, StudyCtx, add_overlay, add_seconds, base_dataset, set_pixels
from curation.synth.identity import rng_for
from curation.synth.writer import SiteWriter

CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_PRESENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"
#: Field of the projection grid (mm, square), shared by topograms, radiographs and the PNG/JPEG images.
XRAY_EXTENT_MM = 450.0
XR_EQUIPMENT = {
    "CR": ("FUJIFILM Corporation", "FCR PROFECT CS"),
    "DX": ("Carestream Health", "DRX-Evolution Plus"),
}


def chest_image(n: int, nodule: Nodule | None, rng: np.random.Generator, bits: int = 12) -> np.ndarray:
    """A PA chest radiograph (MONOCHROME2 display values, float) with quantum-like noise."""
    img = radiograph(projection(n, XRAY_EXTENT_MM, nodule), bits=bits)
    top = (1 << bits) - 1
    return np.clip(img + rng.normal(0.0, top * 0.006, img.shape), 0, top)


def chest_radiograph(writer: SiteWriter, study: StudyCtx, modality: str, n: int, nodule: Nodule | None,
                     transfer_syntax: str) -> dict:
    """One CR (MONOCHROME1, as CR readers store it) or DX (MONOCHROME2) PA chest image, with an overlay."""
    rng = rng_for(study.seed, "xr", study.patient.index, study.index)
    img = chest_image(n, nodule, rng)
    photometric = "MONOCHROME1" if modality == "CR" else "MONOCHROME2"
    stored = (4095 - img) if modality == "CR" else img
    sctx = SeriesCtx(study=study, number=1, modality=modality, description="PA" if modality == "DX" else "CHEST PA",
                     protocol="Chest PA", time=add_seconds(study.time, 60), body_part="CHEST")
    sctx.extension = ".dcm"
    rec = writer.new_series(sctx, modality, plane="coronal", dimensions="2D", contrast=False, derived=False,
                            transfer_syntax=transfer_syntax, photometric_interpretation=photometric)
    ds = base_dataset(sctx, CR_IMAGE_STORAGE if modality == "CR" else DX_PRESENTATION_STORAGE, 1)
    ds.Manufacturer, ds.ManufacturerModelName = XR_EQUIPMENT[modality]
    ds.ImageType = ["ORIGINAL", "PRIMARY"] if modality == "DX" else ["ORIGINAL", "PRIMARY", ""]
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
    if modality == "DX":
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.PixelIntensityRelationship = "LOG"
        ds.PixelIntensityRelationshipSign = 1
        ds.DetectorType = "SCINTILLATOR"
        ds.BurnedInAnnotation = "NO"
    else:
        ds.PlateType = "ST-VI"
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = "1"
    ds.RescaleType = "US"
    ds.WindowCenter = "2048"
    ds.WindowWidth = "4096"
    set_pixels(ds, np.rint(stored).astype(np.uint16), photometric=photometric, bits_stored=12)
    add_overlay(ds, study.patient.pn, f"{study.patient.pn} {study.patient.patient_id} PA erect")
    writer.write_instance(ds, sctx, rec, 1, transfer_syntax)
    if nodule is not None:
        rec["lesions"].append({"label": "nodule", "file": rec["files"][0], "box": nodule_box(nodule, n, XRAY_EXTENT_MM)})
    return rec
