"""CT studies of the synthetic site: head (phantom HU) and chest (chest phantom) with and without
contrast, HU through RescaleSlope/Intercept with signed or unsigned pixels, and a chest topogram.

A series may carry one graded defect (`synth.degrade.CT_DEFECTS`): low mAs (more quantum
noise, and the lower tube current in the header), metal streaks, rings, or a field of view that cuts
the body (truncation); the builder records it in the series' ground truth."""
from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset

from curation.vocabulary import Modality, SeriesKind
from synth import degrade as dg
from synth.chest import ChestFindings, ChestTissue, chest_hu, chest_labels_at, nodule_box, projection, radiograph
from synth.dicomio import SeriesCtx, StudyCtx, add_seconds, base_dataset, set_pixels
from synth.findings import BRAIN_FINDINGS, CHEST_FINDINGS, declare, record_projection, record_slices
from synth.geometry import SliceGeometry, centred_stack
from synth.identity import rng_for
from synth.mr import lesion_boxes
from synth.phantom import Tissue, ct_hu, head_labels_at
from synth.writer import SiteWriter
from synth.xray import XRAY_EXTENT_MM

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
CONTRAST_AGENT = {"siemens": "Ultravist 370", "ge": "Omnipaque 350", "philips": "Iomeron 400"}
KERNELS = {"siemens": ("H30s", "B31f"), "ge": ("STANDARD", "LUNG"), "philips": ("UB", "B")}
#: How each vendor stores HU: (signed pixels, RescaleIntercept).
PIXEL_STYLE = {"siemens": (False, -1024.0), "ge": (True, -1024.0), "philips": (True, 0.0)}
#: Quantum noise (HU) of the routine protocol, by body part (head scans use a higher dose per area).
ROUTINE_NOISE_HU = {"HEAD": 5.0, "CHEST": 10.0}
#: Largest in-plane extent of the body (mm, before the patient's head scale): head front to back with
#: the nose, chest left to right (`phantom.head_labels_at`, `chest.chest_labels_at`).
BODY_EXTENT_MM = {"HEAD": 200.0, "CHEST": 320.0}
ROUTINE_MA, ROUTINE_MS = 250, 500


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
        s = SeriesCtx(study=self.study, number=number, modality=Modality.CT, description=description,
                      protocol=f"{'Head' if body_part == 'HEAD' else 'Thorax'} routine",
                      time=add_seconds(self.study.time, minutes * 60), body_part=body_part)
        s.extension = ext
        return s

    def _ct_fields(self, ds: Dataset, geom: SliceGeometry, k: int, contrast: bool, kernel: str,
                   signed: bool, intercept: float, window: tuple[int, int], mas_fraction: float = 1.0) -> None:
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ScanOptions = "HELICAL MODE"
        ds.SliceThickness = f"{geom.slice_thickness:g}"
        ds.KVP = "120"
        ds.DataCollectionDiameter = "500"
        ds.ReconstructionDiameter = f"{geom.col_spacing * geom.columns:.1f}"
        ds.GantryDetectorTilt = "0"
        ds.TableHeight = "140"
        ds.RotationDirection = "CW"
        ds.XRayTubeCurrent = int(round(ROUTINE_MA * mas_fraction))
        ds.ExposureTime = ROUTINE_MS
        ds.Exposure = int(round(ROUTINE_MA * ROUTINE_MS / 1000 * mas_fraction))
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
                      kernel: str, window: tuple[int, int], ts: str, mas_fraction: float = 1.0) -> None:
        signed, intercept = PIXEL_STYLE[self.vendor]
        stored = hu_to_stored(hu, signed, intercept)
        rec["pixel_representation"] = 1 if signed else 0
        rec["rescale_intercept"] = intercept
        for k in range(geom.n_slices):
            ds = base_dataset(sctx, CT_IMAGE_STORAGE, k + 1, seconds_into_series=k * 0.3)
            self._ct_fields(ds, geom, k, contrast, kernel, signed, intercept, window, mas_fraction)
            set_pixels(ds, stored[k], bits_stored=16 if signed else 12)
            self.w.write_instance(ds, sctx, rec, k + 1, ts, keep=(k == geom.n_slices // 2))

    # -- defects ------------------------------------------------------------------------------------
    def _truncated(self, body_part: str, severity: int, coverage: float, gap_fraction: float,
                   centre: tuple[float, float, float]) -> SliceGeometry:
        """The same stack reconstructed on a field of view that cuts the body (off-centre a little)."""
        scale = self.study.patient.head_scale if body_part == "HEAD" else 1.0
        fov = dg.CT_TRUNCATION_FOV[severity] * BODY_EXTENT_MM[body_part] * scale
        shift = float(rng_for(*self.key, "truncation", body_part).uniform(-0.04, 0.04)) * fov
        return centred_stack("axial", self.matrix, fov, self.slices, coverage, gap_fraction=gap_fraction,
                             centre=(centre[0] + shift, centre[1], centre[2]))

    def _defect(self, hu: np.ndarray, defect: tuple[str, int] | None, body_part: str, part: str,
                rec: dict) -> tuple[np.ndarray, float]:
        """Apply the planned defect to the HU volume (truncation is in the geometry already); record it.
        Returns the volume and the mAs fraction for the header."""
        if defect is None:
            return hu, 1.0
        kind, severity = defect
        rng = rng_for(*self.key, "defect", part)
        params: dict = {}
        mas = 1.0
        if kind == "low_mas":
            hu, params = dg.ct_low_mas(hu, severity, rng, ROUTINE_NOISE_HU[body_part])
            mas = params["mas_fraction"]
        elif kind == "streaks":
            hu, params = dg.ct_streaks(hu, severity, rng)
        elif kind == "rings":
            hu, params = dg.ct_rings(hu, severity, rng)
        elif kind == "truncation":
            params = {"fov_fraction_of_body": dg.CT_TRUNCATION_FOV[severity]}
        else:
            raise ValueError(f"unknown CT defect {kind!r}")
        rec["degradation"] = {"type": kind, "severity": severity, **params}
        return hu, mas

    # -- head ---------------------------------------------------------------------------------------
    def head(self, phases: tuple[bool, ...], defect: tuple[str, int] | None = None) -> None:
        """The head phases; `defect` (type, severity) goes to the first phase."""
        geom = centred_stack("axial", self.matrix, 250.0, self.slices, 150.0, gap_fraction=0.0, centre=(0.0, 0.0, 4.0))
        labels = head_labels_at(geom.points() / self.study.patient.head_scale)
        for i, contrast in enumerate(phases):
            rng = rng_for(*self.key, "head", i)
            d = defect if i == 0 else None
            g, lab = geom, labels
            if d is not None and d[0] == "truncation":
                g = self._truncated("HEAD", d[1], 150.0, 0.0, (0.0, 0.0, 4.0))
                lab = head_labels_at(g.points() / self.study.patient.head_scale)
            clean = ct_hu(lab)
            if contrast:  # blood-brain barrier breakdown in the lesion, vascular scalp, a little grey matter
                clean = clean + np.select([lab == Tissue.LESION, lab == Tissue.SCALP, lab == Tissue.GM],
                                          [45.0, 25.0, 6.0], 0.0)
            hu = clean + rng.normal(0.0, ROUTINE_NOISE_HU["HEAD"], clean.shape)
            desc = {"siemens": "Head 5.0 H30s", "ge": "HEAD STD", "philips": "Brain 5mm"}[self.vendor]
            if contrast:
                desc += {"siemens": " KM", "ge": " +C", "philips": " CE"}[self.vendor]
            sctx = self._series(2 + i, desc, 2 + 3 * i, "HEAD", ".dcm" if i == 0 else "")
            rec = self.w.new_series(sctx, SeriesKind.CT, plane="axial", dimensions="3D", contrast=contrast,
                                    derived=False,
                                    transfer_syntax=self.ts)
            hu, mas = self._defect(hu, d, "HEAD", "head", rec)
            self._write_volume(sctx, rec, g, hu, contrast, KERNELS[self.vendor][0], (40, 80), self.ts, mas)
            for k, box in lesion_boxes(lab):
                rec["lesions"].append({"label": "lesion", "file": rec["files"][k], "box": box})
            declare(rec, BRAIN_FINDINGS)
            record_slices(rec, self.study.seed, self.study.patient.index, "brain_lesion", lab, Tissue.LESION, clean,
                          rec["files"])

    # -- chest --------------------------------------------------------------------------------------
    def chest(self, contrast: bool, findings: ChestFindings | None, topogram_ts: str,
              defect: tuple[str, int] | None = None) -> None:
        """Topogram and CT of the chest; `findings` (None: a chest without any, and no finding truth
        recorded, as `site.defect_study` wants) are drawn and recorded in both."""
        self._topogram(findings, topogram_ts)
        geom = centred_stack("axial", self.matrix, 380.0, self.slices, 300.0, gap_fraction=0.5, centre=(0.0, 0.0, 0.0))
        if defect is not None and defect[0] == "truncation":
            geom = self._truncated("CHEST", defect[1], 300.0, 0.5, (0.0, 0.0, 0.0))
        labels = chest_labels_at(geom.points(), findings=findings)
        clean = chest_hu(labels, contrast)
        hu = clean + rng_for(*self.key, "chest").normal(0.0, ROUTINE_NOISE_HU["CHEST"], labels.shape)
        desc = {"siemens": "Thorax 5.0 B31f", "ge": "CHEST STD", "philips": "Chest 5mm"}[self.vendor]
        if contrast:
            desc += {"siemens": " KM", "ge": " +C", "philips": " CE"}[self.vendor]
        sctx = self._series(2, desc, 3, "CHEST", "")
        rec = self.w.new_series(sctx, SeriesKind.CT, plane="axial", dimensions="3D", contrast=contrast, derived=False,
                                transfer_syntax=self.ts)
        hu, mas = self._defect(hu, defect, "CHEST", "chest", rec)
        self._write_volume(sctx, rec, geom, hu, contrast, KERNELS[self.vendor][1], (-600, 1500), self.ts, mas)
        for k in range(labels.shape[0]):
            rr, cc = np.nonzero(labels[k] == ChestTissue.NODULE)
            if rr.size:
                rec["lesions"].append({"label": "nodule", "file": rec["files"][k],
                                       "box": [int(cc.min()), int(rr.min()), int(np.ptp(cc) + 1), int(np.ptp(rr) + 1)]})
        if findings is not None:
            declare(rec, CHEST_FINDINGS)
            for name, tissue in (("nodule", ChestTissue.NODULE), ("opacity", ChestTissue.OPACITY),
                                 ("effusion", ChestTissue.EFFUSION)):
                record_slices(rec, self.study.seed, self.study.patient.index, name, labels, tissue, clean, rec["files"])

    def _topogram(self, findings: ChestFindings | None, ts: str) -> None:
        n, extent = self.matrix, XRAY_EXTENT_MM  # the radiographs' grid: one cached projection
        nodule = findings.nodule if findings is not None else None
        img = radiograph(projection(n, extent, findings)).astype(np.uint16)
        desc = {"siemens": "Topogram 0.6 T20f", "ge": "Scout", "philips": "Surview"}[self.vendor]
        sctx = self._series(1, desc, 0.5, "CHEST", "")
        rec = self.w.new_series(sctx, SeriesKind.CT_LOCALIZER, plane="coronal", dimensions="2D", contrast=False,
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
        if findings is not None:  # no noise on a topogram: the image is its own noise-free version
            record_projection(rec, self.study.seed, self.study.patient.index, findings, n, extent, img, rec["files"][0])
