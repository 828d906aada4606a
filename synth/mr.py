"""MR brain studies of the synthetic site: every series kind, vendor headers, exact geometry,
physics-based contrast, controlled defects and known inter-volume motion."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from curation.vocabulary import Modality, SeriesKind
from synth import degrade as dg
from synth.dicomio import SeriesCtx, StudyCtx, add_overlay, add_seconds, base_dataset, set_pixels
from synth.findings import BRAIN_FINDINGS, BRAIN_MR_KINDS, declare, record_slices, volume_findings
from synth.geometry import SliceGeometry, centred_stack
from synth.identity import rng_for
from synth.motion import VolumeMotion, apply_inverse, random_motions
from synth.mr_protocols import COILS, CONTRAST_AGENTS, PROTOCOLS, Protocol, protocol_name
from synth.phantom import Tissue, adc_map, contrast_tissues, head_labels_at, mr_signal
from synth.writer import SiteWriter

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
#: Head coverage (mm) along each plane's normal: z for axial, x for sagittal, y for coronal.
COVERAGE = {"axial": 150.0, "sagittal": 150.0, "coronal": 200.0}
FOV = 240.0
#: Stored intensity of the brightest clean tissue; 12 bits stored leave room for bias and noise.
PEAK_STORED = 2000.0
B_VALUE = 1000.0
DWI_DIRECTIONS = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
#: Fraction of the contrast peak per DCE phase (phase 0 is the pre-contrast baseline).
DCE_CURVE = (0.0, 0.55, 1.0, 0.85, 0.7, 0.6)
DCE_PHASE_S = 12.0
STRUCTURAL = (SeriesKind.T1W, SeriesKind.T2W, SeriesKind.FLAIR, SeriesKind.PDW, SeriesKind.SWI)


@dataclass
class MROptions:
    matrix: int = 128
    slices: int = 24
    slices_4d: int = 12
    matrix_4d: int = 96
    motion_max_rotation_deg: float = 3.0
    motion_max_translation_mm: float = 4.0


def sample_labels(geom: SliceGeometry, scale: float, motion: VolumeMotion | None = None) -> np.ndarray:
    """Phantom labels at the voxel centres, the head scaled by `scale` and moved by `motion`."""
    pts = geom.points()
    if motion is not None and (any(motion.rotation_deg) or any(motion.translation_mm)):
        pts = apply_inverse(motion.matrix, pts)
    return head_labels_at(pts / scale)


def signal_of(p: Protocol, labels: np.ndarray, tissues=None) -> np.ndarray:
    if p.signal == "gre":
        return mr_signal(labels, p.tr, p.te, flip_deg=p.flip, gradient_echo=True, tissues=tissues)
    if p.signal == "ir":
        return mr_signal(labels, p.tr, p.te, ti=p.ti, tissues=tissues)
    return mr_signal(labels, p.tr, p.te, tissues=tissues)


def lesion_boxes(labels: np.ndarray) -> list[tuple[int, list[int]]]:
    """(slice, [x, y, w, h]) of the lesion in every slice showing it (x = column, y = row)."""
    out = []
    for k in range(labels.shape[0]):
        rr, cc = np.nonzero(labels[k] == Tissue.LESION)
        if rr.size:
            out.append((k, [int(cc.min()), int(rr.min()), int(cc.max() - cc.min() + 1), int(rr.max() - rr.min() + 1)]))
    return out


def to_stored(volume: np.ndarray, scale: float) -> np.ndarray:
    return np.clip(np.rint(volume * scale), 0, 4095).astype(np.uint16)


class MRStudyBuilder:
    """Writes one MR brain study (all series) for one patient."""

    def __init__(self, writer: SiteWriter, study: StudyCtx, opts: MROptions, degradation_plan: dict[str, tuple[str, int]],
                 with_post_contrast: bool, transfer_syntaxes: dict[str, str]) -> None:
        self.w = writer
        self.study = study
        self.opts = opts
        self.vendor = study.vendor.key
        self.protocols = PROTOCOLS[self.vendor]
        self.plan = degradation_plan
        self.with_post = with_post_contrast
        self.ts = transfer_syntaxes
        self.scale = study.patient.head_scale
        self._label_cache: dict[tuple, np.ndarray] = {}
        self._localizer_refs: list[str] = []
        #: (kind, stored volume, geometry, degradation, findings) of series also exported as NIfTI.
        self.nifti_volumes: list[tuple[str, np.ndarray, SliceGeometry, dict, dict]] = []
        self.key = (study.seed, "mr", study.patient.index, study.index)

    # -- helpers ----------------------------------------------------------------------------------
    def _rng(self, *parts) -> np.random.Generator:
        return rng_for(*self.key, *parts)

    def _labels(self, geom: SliceGeometry) -> np.ndarray:
        key = (geom.plane, geom.n_slices, geom.rows, geom.columns, geom.origin, geom.slice_spacing)
        if key not in self._label_cache:
            self._label_cache[key] = sample_labels(geom, self.scale)
        return self._label_cache[key]

    def _series(self, p: Protocol, number: int, minutes: float, ext: str) -> SeriesCtx:
        s = SeriesCtx(
            study=self.study, number=number, modality=Modality.MR, description=p.description,
            protocol=protocol_name(self.vendor, p), time=add_seconds(self.study.time, minutes * 60),
            body_part="HEAD" if self.vendor != "philips" else "BRAIN",
        )
        s.extension = ext
        return s

    def _mr_fields(self, ds: Dataset, p: Protocol, geom: SliceGeometry, k: int) -> None:
        v = self.study.vendor
        ds.ImageType = list(p.image_type)
        ds.ScanningSequence = p.scanning_sequence
        ds.SequenceVariant = p.sequence_variant
        ds.ScanOptions = p.scan_options
        ds.MRAcquisitionType = p.acquisition
        ds.SequenceName = p.sequence_name
        ds.AngioFlag = "N"
        ds.SliceThickness = f"{geom.slice_thickness:g}"
        ds.RepetitionTime = f"{p.tr:g}"
        ds.EchoTime = f"{p.te:g}"
        if p.ti is not None:
            ds.InversionTime = f"{p.ti:g}"
        ds.NumberOfAverages = "1"
        ds.ImagingFrequency = f"{42.577478 * v.field_strength:.6f}"
        ds.ImagedNucleus = "1H"
        ds.EchoNumbers = "1"
        ds.MagneticFieldStrength = f"{v.field_strength:g}"
        ds.SpacingBetweenSlices = f"{geom.slice_spacing:g}"
        ds.EchoTrainLength = str(p.echo_train)
        ds.PercentSampling = "100"
        ds.PercentPhaseFieldOfView = "100"
        ds.PixelBandwidth = "200"
        ds.ReceiveCoilName = COILS[self.vendor]
        ds.TransmitCoilName = "Body"
        ds.AcquisitionMatrix = [0, geom.columns, geom.rows, 0] if p.phase_dir == "COL" else [geom.columns, 0, 0, geom.rows]
        ds.InPlanePhaseEncodingDirection = p.phase_dir
        ds.FlipAngle = f"{p.flip:g}"
        ds.PatientPosition = "HFS"
        ds.ImagePositionPatient = geom.position(k)
        ds.ImageOrientationPatient = geom.orientation
        ds.FrameOfReferenceUID = self.study.for_uid
        ds.PositionReferenceIndicator = ""
        ds.SliceLocation = f"{geom.slice_location(k):.4f}"
        ds.PixelSpacing = [f"{geom.row_spacing:g}", f"{geom.col_spacing:g}"]
        if p.contrast:
            ds.ContrastBolusAgent = CONTRAST_AGENTS[self.vendor]
            ds.ContrastBolusRoute = "IV"
            ds.ContrastBolusVolume = "7.5"
            ds.ContrastBolusStartTime = self.study.time
        if self._localizer_refs and p.kind != SeriesKind.LOCALIZER:
            ds.ReferencedImageSequence = Sequence([_ref(MR_IMAGE_STORAGE, u) for u in self._localizer_refs])

    @staticmethod
    def _window(ds: Dataset, stored: np.ndarray, hi: float | None = None) -> None:
        hi = hi if hi is not None else (float(np.percentile(stored, 99.5)) or 1.0)
        ds.WindowCenter = f"{hi / 2:.0f}"
        ds.WindowWidth = f"{hi:.0f}"

    def _geometry(self, p: Protocol, four_d: bool = False) -> SliceGeometry:
        o = self.opts
        n = o.slices_4d if four_d else o.slices
        matrix = o.matrix_4d if four_d else o.matrix
        gap = 0.0 if p.acquisition == "3D" else 0.1
        tilt = 6.0 if (self.vendor == "philips" and p.plane == "axial" and p.kind in (SeriesKind.T2W,
                                                                                      SeriesKind.PDW)) else 0.0
        return centred_stack(p.plane, matrix, FOV, n, COVERAGE[p.plane], gap_fraction=gap, tilt_deg=tilt,
                             centre=(0.0, 0.0, 4.0))

    def _write_stack(self, p: Protocol, sctx: SeriesCtx, rec: dict, geom: SliceGeometry, stored: np.ndarray,
                     labels: np.ndarray | None, ts: str, first_instance: int = 1, per_slice=None) -> list[str]:
        uids = []
        hi = float(np.percentile(stored, 99.5)) or 1.0  # one window for the whole stack
        for k in range(geom.n_slices):
            inst = first_instance + k
            ds = base_dataset(sctx, MR_IMAGE_STORAGE, inst, seconds_into_series=k * 0.5)
            self._mr_fields(ds, p, geom, k)
            if per_slice:
                per_slice(ds, k)
            set_pixels(ds, stored[k], bits_stored=12)
            self._window(ds, stored, hi)
            if inst == 1 and p.kind in (SeriesKind.T2W,):
                add_overlay(ds, self.study.patient.pn, f"Annotated by {self.study.reader.pn} for {self.study.patient.pn}")
            self.w.write_instance(ds, sctx, rec, inst, ts, keep=(k == geom.n_slices // 2))
            uids.append(str(ds.SOPInstanceUID))
        if labels is not None:
            for k, box in lesion_boxes(labels):
                rec["lesions"].append({"label": "lesion", "file": rec["files"][k], "box": box})
        return uids

    # -- series -----------------------------------------------------------------------------------
    def build(self) -> None:
        number = 1
        number = self._localizer(number)
        order = [SeriesKind.T1W, SeriesKind.T2W, SeriesKind.FLAIR, SeriesKind.PDW, SeriesKind.DWI, SeriesKind.ADC,
                 SeriesKind.SWI, SeriesKind.DCE] + (["T1W_POST"] if self.with_post else [])
        dwi_uids: list[list[str]] = []
        minute = 2.0
        for kind in order:
            p = self.protocols[kind]
            ext = ".dcm" if number % 2 else ""
            if kind == SeriesKind.DWI:
                dwi_uids = self._dwi(p, number, minute, ext)
            elif kind == SeriesKind.ADC:
                self._adc(p, number, minute, ext, dwi_uids)
            elif kind == SeriesKind.DCE:
                self._dce(p, number, minute, ext)
            else:
                self._structural(kind, p, number, minute, ext)
            number += 1
            minute += 4.0

    def _localizer(self, number: int) -> int:
        p = self.protocols[SeriesKind.LOCALIZER]
        sctx = self._series(p, number, 0.5, "")
        ts = self.ts.get(SeriesKind.LOCALIZER, "1.2.840.10008.1.2.1")
        rec = self.w.new_series(sctx, SeriesKind.LOCALIZER, plane=None, dimensions="2D", contrast=False, derived=False,
                                transfer_syntax=ts)
        for i, plane in enumerate(("sagittal", "coronal", "axial")):
            geom = centred_stack(plane, self.opts.matrix, 260.0, 1, 10.0, centre=(0.0, 0.0, 4.0))
            labels = self._labels(geom)
            sig = signal_of(p, labels)
            sig = dg.rician_noise(sig, dg.BASELINE_NOISE_SIGMA * sig.max(), self._rng("loc", i))
            stored = to_stored(sig, PEAK_STORED / max(signal_of(p, labels).max(), 1e-6))
            ds = base_dataset(sctx, MR_IMAGE_STORAGE, i + 1, seconds_into_series=i * 3.0)
            self._mr_fields(ds, p, geom, 0)
            set_pixels(ds, stored[0], bits_stored=12)
            self._window(ds, stored)
            self.w.write_instance(ds, sctx, rec, i + 1, ts)
            self._localizer_refs.append(str(ds.SOPInstanceUID))
        rec["localizer_planes"] = ["sagittal", "coronal", "axial"]
        return number + 1

    def _structural(self, kind: str, p: Protocol, number: int, minute: float, ext: str) -> None:
        sctx = self._series(p, number, minute, ext)
        ts = self.ts.get(kind, "1.2.840.10008.1.2.1")
        geom = self._geometry(p)
        labels = self._labels(geom)
        tissues = contrast_tissues(0.8) if p.contrast else None
        clean = signal_of(p, labels, tissues)
        scale = PEAK_STORED / max(clean.max(), 1e-9)
        d_type, severity = self.plan.get(kind, (None, 0))
        rng = self._rng(kind)
        vol = clean
        if d_type in ("ghosting", "blur", "bias"):
            kw = {"phase_axis": -2 if p.phase_dir == "COL" else -1} if d_type == "ghosting" else {}
            vol = dg.degrade(vol, d_type, severity, rng, **kw)
        vol = dg.rician_noise(vol, dg.BASELINE_NOISE_SIGMA * float(np.percentile(clean, 99)), rng)
        if d_type == "noise":
            vol = dg.rician_noise(clean, dg.NOISE_SIGMA[severity] * float(np.percentile(clean, 99)), rng)
        stored = to_stored(vol, scale)
        rec = self.w.new_series(sctx, p.kind, plane=p.plane, dimensions="3D" if p.acquisition == "3D" else "2D",
                                contrast=p.contrast, derived=False, transfer_syntax=ts,
                                degradation={"type": d_type, "severity": severity},
                                acquisition_type=p.acquisition,
                                repetition_time=p.tr, echo_time=p.te, inversion_time=p.ti, flip_angle=p.flip)
        self._write_stack(p, sctx, rec, geom, stored, labels, ts)
        if kind in BRAIN_MR_KINDS:  # contrast on the noise-free, defect-free signal in stored units
            declare(rec, BRAIN_FINDINGS)
            record_slices(rec, self.study.seed, self.study.patient.index, "brain_lesion", labels, Tissue.LESION,
                          clean * scale, rec["files"])
        if kind in (SeriesKind.T1W, SeriesKind.T2W, SeriesKind.FLAIR):
            self.nifti_volumes.append((kind, stored, geom, dict(rec["degradation"], series_instance_uid=sctx.uid),
                                       volume_findings(rec)))

    def _dwi(self, p: Protocol, number: int, minute: float, ext: str) -> list[list[str]]:
        sctx = self._series(p, number, minute, ext)
        ts = self.ts.get(SeriesKind.DWI, "1.2.840.10008.1.2.1")
        geom = self._geometry(p, four_d=True)
        n_vol = 1 + len(DWI_DIRECTIONS)
        motions = random_motions(n_vol, self._rng("dwi-motion"), self.opts.motion_max_rotation_deg,
                                 self.opts.motion_max_translation_mm)
        rec = self.w.new_series(sctx, SeriesKind.DWI, plane=p.plane, dimensions="4D", contrast=False, derived=False,
                                transfer_syntax=ts, motion=[m.to_json() for m in motions],
                                b_values=[0.0] + [B_VALUE] * len(DWI_DIRECTIONS),
                                gradient_directions=[[0.0, 0.0, 0.0]] + [list(d) for d in DWI_DIRECTIONS],
                                n_volumes=n_vol, slices_per_volume=geom.n_slices,
                                repetition_time=p.tr, echo_time=p.te)
        ref_labels = sample_labels(geom, self.scale)
        s0_ref = signal_of(p, ref_labels)
        scale = PEAK_STORED / max(s0_ref.max(), 1e-9)
        sigma = dg.BASELINE_NOISE_SIGMA * float(np.percentile(s0_ref, 99))
        uids: list[list[str]] = []
        rng = self._rng("dwi")
        for v, motion in enumerate(motions):
            labels = ref_labels if v == 0 else sample_labels(geom, self.scale, motion)
            s = signal_of(p, labels)
            b = 0.0 if v == 0 else B_VALUE
            direction = (0.0, 0.0, 0.0) if v == 0 else DWI_DIRECTIONS[v - 1]
            if b:
                s = s * np.exp(-b * adc_map(labels))
            stored = to_stored(dg.rician_noise(s, sigma, rng), scale)

            def extra(ds: Dataset, k: int, b=b, direction=direction, v=v) -> None:
                self._diffusion_tags(ds, b, direction)
                ds.AcquisitionNumber = v + 1
                ds.TemporalPositionIdentifier = v + 1
                ds.NumberOfTemporalPositions = n_vol

            uids.append(self._write_stack(p, sctx, rec, geom, stored, None, ts,
                                          first_instance=v * geom.n_slices + 1, per_slice=extra))
        return uids

    def _diffusion_tags(self, ds: Dataset, b: float, direction: tuple[float, float, float]) -> None:
        ds.DiffusionBValue = float(b)
        ds.DiffusionDirectionality = "NONE" if b == 0 else "DIRECTIONAL"
        if b:
            ds.DiffusionGradientOrientation = [float(x) for x in direction]
        if self.vendor == "siemens":
            blk = ds.private_block(0x0019, "SIEMENS MR HEADER", create=True)
            blk.add_new(0x0C, "IS", str(int(b)))
            blk.add_new(0x0D, "CS", "NONE" if b == 0 else "DIRECTIONAL")
            if b:
                blk.add_new(0x0E, "FD", [float(x) for x in direction])
        elif self.vendor == "ge":
            blk = ds.private_block(0x0043, "GEMS_PARM_01", create=True)
            blk.add_new(0x39, "IS", [str(int(b) + 1_000_000_000), "0", "0", "0"])
            acq = ds.private_block(0x0019, "GEMS_ACQU_01", create=True)
            for off, comp in zip((0xBB, 0xBC, 0xBD), direction):
                acq.add_new(off, "DS", f"{comp:g}")
        else:
            blk = ds.private_block(0x2001, "Philips Imaging DD 001", create=True)
            blk.add_new(0x03, "FL", float(b))
            blk.add_new(0x04, "CS", "I" if b == 0 else "O")
            mr = ds.private_block(0x2005, "Philips MR Imaging DD 001", create=True)
            for off, comp in zip((0xB0, 0xB1, 0xB2), direction):
                mr.add_new(off, "FL", float(comp))

    def _adc(self, p: Protocol, number: int, minute: float, ext: str, dwi_uids: list[list[str]]) -> None:
        sctx = self._series(p, number, minute, ext)
        ts = self.ts.get(SeriesKind.ADC, "1.2.840.10008.1.2.1")
        dwi_p = self.protocols[SeriesKind.DWI]
        geom = self._geometry(dwi_p, four_d=True)
        labels = sample_labels(geom, self.scale)
        adc = adc_map(labels) * 1e6  # 10^-6 mm^2/s, as the vendors store it
        rng = self._rng("adc")
        adc = np.where(adc > 0, adc + rng.normal(0, 25.0, adc.shape), np.abs(rng.normal(0, 5.0, adc.shape)))
        stored = np.clip(np.rint(adc), 0, 4095).astype(np.uint16)
        rec = self.w.new_series(sctx, SeriesKind.ADC, plane=dwi_p.plane, dimensions="2D", contrast=False, derived=True,
                                transfer_syntax=ts, source_series_instance_uid=self.w.series[-1]["series_instance_uid"],
                                units="10^-6 mm^2/s")

        def extra(ds: Dataset, k: int) -> None:
            ds.SourceImageSequence = Sequence([_ref(MR_IMAGE_STORAGE, vol[k]) for vol in dwi_uids])
            ds.DerivationDescription = "ADC from b=0 and b=1000 (trace)"

        self._write_stack(p, sctx, rec, geom, stored, None, ts, per_slice=extra)

    def _dce(self, p: Protocol, number: int, minute: float, ext: str) -> None:
        sctx = self._series(p, number, minute, ext)
        ts = self.ts.get(SeriesKind.DCE, "1.2.840.10008.1.2.1")
        geom = self._geometry(p, four_d=True)
        n = len(DCE_CURVE)
        motions = random_motions(n, self._rng("dce-motion"), self.opts.motion_max_rotation_deg,
                                 self.opts.motion_max_translation_mm)
        rec = self.w.new_series(sctx, SeriesKind.DCE, plane=p.plane, dimensions="4D", contrast=True, derived=False,
                                transfer_syntax=ts, motion=[m.to_json() for m in motions], n_volumes=n,
                                slices_per_volume=geom.n_slices, phase_seconds=DCE_PHASE_S,
                                contrast_curve=list(DCE_CURVE), repetition_time=p.tr, echo_time=p.te,
                                flip_angle=p.flip)
        ref_labels = sample_labels(geom, self.scale)
        peak = signal_of(p, ref_labels, contrast_tissues(1.0))
        scale = PEAK_STORED / max(peak.max(), 1e-9)
        sigma = dg.BASELINE_NOISE_SIGMA * float(np.percentile(signal_of(p, ref_labels), 99))
        rng = self._rng("dce")
        for phase, (frac, motion) in enumerate(zip(DCE_CURVE, motions)):
            labels = ref_labels if phase == 0 else sample_labels(geom, self.scale, motion)
            s = signal_of(p, labels, contrast_tissues(frac))
            stored = to_stored(dg.rician_noise(s, sigma, rng), scale)

            def extra(ds: Dataset, k: int, phase=phase) -> None:
                ds.TemporalPositionIdentifier = phase + 1
                ds.NumberOfTemporalPositions = n
                ds.TriggerTime = f"{phase * DCE_PHASE_S * 1000:g}"
                ds.AcquisitionNumber = phase + 1
                t = add_seconds(sctx.time, phase * DCE_PHASE_S)
                ds.AcquisitionTime = t
                ds.ContentTime = t
                ds.AcquisitionDateTime = self.study.da + t

            self._write_stack(p, sctx, rec, geom, stored, None, ts, first_instance=phase * geom.n_slices + 1,
                              per_slice=extra)


def _ref(sop_class: str, sop_uid: str) -> Dataset:
    r = Dataset()
    r.ReferencedSOPClassUID = sop_class
    r.ReferencedSOPInstanceUID = sop_uid
    return r
