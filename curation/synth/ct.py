"""CT studies of the synthetic site: head (phantom HU) and chest (chest phantom) with and without
contrast, HU through RescaleSlope/Intercept with signed or unsigned pixels, and a chest topogram."""
from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset

from curation.synth.chest import ChestTissue, Nodule, chest_hu, chest_labels_at, nodule_box, projection, radiograph
from curation.synth.dicomio import SeriesCtx, StudyCtx, add_seconds, base_dataset, set_pixels
from curation.synth.geometry import SliceGeometry, centred_stack
from curation.synth.identity import rng_for
from curation.synth.mr import lesion_boxes
from curation.synth.phantom import Tissue, ct_hu, head_labels_at
from curation.synth.writer import SiteWriter
from curation.synth.xray import XRAY_EXTENT_MM

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
CONTRAST_AGENT = {"siemens": "Ultravist 370", "ge": "Omnipaque 350", "philips": "Iomeron 400"}
KERNELS = {"siemens": ("H30s", "B31f"), "ge": ("STANDARD", "LUNG"), "philips": ("UB", "B")}
#: How each vendor stores HU: (signed pixels, RescaleIntercept).
PIXEL_STYLE = {"siemens": (False, -1024.0), "ge": (True, -1024.0), "philips": (True, 0.0)}


def hu_to_stored(hu: np.ndarray, signed: bool, intercept: float) -> np.ndarray:
    stored = np.rint(hu - intercept)
    if signed:
        return np.clip(stored, -32768, 32767).astype(np.int16)
    return np.clip(stored, 0, 4095).astype(np.uint16)


class CTStudyBuilder:
    """Writes one CT study (head or chest) for one patient."""

    def __init__(self, writer: SiteWriter, study: StudyCtx, matrix: int, slices: int, ts: str) -> None:
        self.w = writer
        self.study = study
        self.matrix = matrix
        self.slices = slices
        self.ts = ts
        self.vendor = study.vendor.key
        self.key = (study.seed, "ct", study.patient.index, study.index)

    def _series(self, number: int, description: str, minutes: float, body_part: str, ext: str) -> SeriesCtx:
        s = SeriesCtx(study=self.study, number=number, modality="CT", description=description,
                      protocol=f"{'Head' if body_part == 'HEAD' else 'Thorax'} routine",
                      time=add_seconds(self.study.time, minutes * 60), body_part=body_part)
        s.extension = ext
        return s

    def _ct_fields(self, ds: Dataset, geom: SliceGeometry, k: int, contrast: bool, kernel: str,
                   signed: bool, intercept: float, window: tuple[int, int]) -> None:
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ScanOptions = "HELICAL MODE"
        ds.SliceThickness = f"{geom.slice_thickness:g}"
        ds.KVP = "120"
        ds.DataCollectionDiameter = "500"
        ds.ReconstructionDiameter = f"{geom.col_spacing * geom.columns:.1f}"
        ds.GantryDetectorTilt = "0"
        ds.TableHeight = "140"
        ds.RotationDirection = "CW"
        ds.XRayTubeCurrent = 250
        ds.ExposureTime = 500
        ds.Exposure = 125
        ds.ConvolutionKernel = kernel
        ds.PatientPosition = "HFS"
        ds.ImagePositionPatient = geom.position(k)
        ds.ImageOrientationPatient = geom.orientation
        ds.FrameOfReferenceUID = self.study.for_uid
        ds.PositionReferenceIndicator = ""
        ds.SliceLocation = f"{geom.slice_location(k):.4f}"
        ds.PixelSpacing = [f"{geom.row_spacing:g}", f"{geom.col_spacing:g}"]
        ds.SpacingBetweenSlices = f"{geom.slice_spacing:g}"
        ds.RescaleIntercept = f"{intercept:g}"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.WindowCenter = str(window[0])
        ds.WindowWidth = str(window[1])
        if contrast:
            ds.ContrastBolusAgent = CONTRAST_AGENT[self.vendor]
            ds.ContrastBolusRoute = "IV"
            ds.ContrastBolusVolume = "80"
            ds.ContrastBolusStartTime = self.study.time

    def _write_volume(self, sctx: SeriesCtx, rec: dict, geom: SliceGeometry, hu: np.ndarray, contrast: bool,
                      kernel: str, window: tuple[int, int], ts: str) -> None:
        signed, intercept = PIXEL_STYLE[self.vendor]
        stored = hu_to_stored(hu, signed, intercept)
        rec["pixel_representation"] = 1 if signed else 0
        rec["rescale_intercept"] = intercept
        for k in range(geom.n_slices):
            ds = base_dataset(sctx, CT_IMAGE_STORAGE, k + 1, seconds_into_series=k * 0.3)
            self._ct_fields(ds, geom, k, contrast, kernel, signed, intercept, window)
            set_pixels(ds, stored[k], bits_stored=16 if signed else 12)
            self.w.write_instance(ds, sctx, rec, k + 1, ts, keep=(k == geom.n_slices // 2))

    # -- head ---------------------------------------------------------------------------------------
    def head(self, phases: tuple[bool, ...]) -> None:
        geom = centred_stack("axial", self.matrix, 250.0, self.slices, 150.0, gap_fraction=0.0, centre=(0.0, 0.0, 4.0))
        labels = head_labels_at(geom.points() / self.study.patient.head_scale)
        for i, contrast in enumerate(phases):
            rng = rng_for(*self.key, "head", i)
            hu = ct_hu(labels)
            if contrast:  # blood-brain barrier breakdown in the lesion, vascular scalp, a little grey matter
                hu = hu + np.select([labels == Tissue.LESION, labels == Tissue.SCALP, labels == Tissue.GM],
                                    [45.0, 25.0, 6.0], 0.0)
            hu = hu + rng.normal(0.0, 5.0, hu.shape)
            desc = {"siemens": "Head 5.0 H30s", "ge": "HEAD STD", "philips": "Brain 5mm"}[self.vendor]
            if contrast:
                desc += {"siemens": " KM", "ge": " +C", "philips": " CE"}[self.vendor]
            sctx = self._series(2 + i, desc, 2 + 3 * i, "HEAD", ".dcm" if i == 0 else "")
            rec = self.w.new_series(sctx, "CT", plane="axial", dimensions="3D", contrast=contrast, derived=False,
                                    transfer_syntax=self.ts)
            self._write_volume(sctx, rec, geom, hu, contrast, KERNELS[self.vendor][0], (40, 80), self.ts)
            for k, box in lesion_boxes(labels):
                rec["lesions"].append({"label": "lesion", "file": rec["files"][k], "box": box})

    # -- chest --------------------------------------------------------------------------------------
    def chest(self, contrast: bool, nodule: Nodule | None, topogram_ts: str) -> None:
        self._topogram(nodule, topogram_ts)
        geom = centred_stack("axial", self.matrix, 380.0, self.slices, 300.0, gap_fraction=0.5, centre=(0.0, 0.0, 0.0))
        labels = chest_labels_at(geom.points(), nodule)
        hu = chest_hu(labels, contrast) + rng_for(*self.key, "chest").normal(0.0, 10.0, labels.shape)
        desc = {"siemens": "Thorax 5.0 B31f", "ge": "CHEST STD", "philips": "Chest 5mm"}[self.vendor]
        if contrast:
            desc += {"siemens": " KM", "ge": " +C", "philips": " CE"}[self.vendor]
        sctx = self._series(2, desc, 3, "CHEST", "")
        rec = self.w.new_series(sctx, "CT", plane="axial", dimensions="3D", contrast=contrast, derived=False,
                                transfer_syntax=self.ts)
        self._write_volume(sctx, rec, geom, hu, contrast, KERNELS[self.vendor][1], (-600, 1500), self.ts)
        for k in range(labels.shape[0]):
            rr, cc = np.nonzero(labels[k] == ChestTissue.NODULE)
            if rr.size:
                rec["lesions"].append({"label": "nodule", "file": rec["files"][k],
                                       "box": [int(cc.min()), int(rr.min()), int(np.ptp(cc) + 1), int(np.ptp(rr) + 1)]})

    def _topogram(self, nodule: Nodule | None, ts: str) -> None:
        n, extent = self.matrix, XRAY_EXTENT_MM  # the radiographs' grid: one cached projection
        img = radiograph(projection(n, extent, nodule)).astype(np.uint16)
        desc = {"siemens": "Topogram 0.6 T20f", "ge": "Scout", "philips": "Surview"}[self.vendor]
        sctx = self._series(1, desc, 0.5, "CHEST", "")
        rec = self.w.new_series(sctx, "CT_LOCALIZER", plane="coronal", dimensions="2D", contrast=False,
                                derived=False, transfer_syntax=ts)
        ds = base_dataset(sctx, CT_IMAGE_STORAGE, 1)
        px = extent / (n - 1)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
        ds.KVP = "120"
        ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
        ds.ImagePositionPatient = [-extent / 2, 0.0, extent / 2]
        ds.PixelSpacing = [f"{px:.4f}", f"{px:.4f}"]
        ds.SliceThickness = "0.6"
        ds.FrameOfReferenceUID = self.study.for_uid
        ds.PatientPosition = "HFS"
        ds.RescaleIntercept = "0"
        ds.RescaleSlope = "1"
        ds.WindowCenter = "2048"
        ds.WindowWidth = "4096"
        set_pixels(ds, img, bits_stored=12)
        self.w.write_instance(ds, sctx, rec, 1, ts)
        if nodule is not None:
            rec["lesions"].append({"label": "nodule", "file": rec["files"][0], "box": nodule_box(nodule, n, extent)})
