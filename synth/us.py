"""Ultrasound and secondary-capture objects with patient text burned into the pixels.

The text is drawn with OpenCV on a uint8 mask (OpenCV refuses 16-bit images) and each string's box
is the exact bounding box of its drawn pixels, so a scrubber can be scored against it. Variants
cover what de-identification must handle: single- and multi-frame, MONOCHROME2, RGB and YBR_FULL
(RLE-compressed), with BurnedInAnnotation YES, NO (wrong) or absent.

The single-frame variant may carry one graded defect (`synth.degrade.US_DEFECTS`): receive
gain driving the echo into the 8-bit clip, acoustic-shadow dropout, or reverberation bands; recorded in
the series' ground truth. (The cines stay clean: de-identification's tests measure masks on them.)
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from pydicom.pixels import convert_color_space
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

from curation.vocabulary import Modality, SeriesKind
from synth import degrade as dg
from synth.dicomio import SeriesCtx, StudyCtx, add_seconds, base_dataset, set_pixels
from synth.identity import rng_for
from synth.writer import SiteWriter

US_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.6.1"
US_MULTIFRAME_STORAGE = "1.2.840.10008.5.1.4.1.1.3.1"
SC_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
US_EQUIPMENT = {
    "siemens": ("SIEMENS", "ACUSON Sequoia"),
    "ge": ("GE Healthcare", "LOGIQ E10"),
    "philips": ("Philips Medical Systems", "EPIQ 7G"),
}
US_ROWS, US_COLS = 360, 480
#: The fan: apex (row, column offset from the centre), radii (pixels) and half-angle (degrees).
FAN_APEX_ROW, FAN_R_MIN, FAN_MARGIN, FAN_HALF_ANGLE_DEG = 30.0, 25, 20, 38.0
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    frames: int
    photometric: str  # MONOCHROME2 | RGB | YBR_FULL
    flag: str | None  # BurnedInAnnotation written: YES, NO, or absent
    transfer_syntax: str


VARIANTS = (
    Variant("single", "ABDOMEN LIVER", 1, "MONOCHROME2", "YES", ExplicitVRLittleEndian),
    Variant("cine", "LIVER CINE", 6, "MONOCHROME2", None, ExplicitVRLittleEndian),
    Variant("doppler", "KIDNEY COLOR DOPPLER", 1, "RGB", "NO", ExplicitVRLittleEndian),
    Variant("ybr_cine", "RT KIDNEY CINE", 3, "YBR_FULL", "YES", RLELossless),
)


def draw_text(canvas: np.ndarray, lines: list[tuple[str, tuple[int, int], float]]) -> list[tuple[str, list[int]]]:
    """Draw each (text, (x, y baseline), scale) in white on a uint8 (rows, cols) canvas; return each text's
    exact [x, y, w, h] box from its own drawn pixels."""
    boxes = []
    for text, org, scale in lines:
        mask = np.zeros(canvas.shape[:2], np.uint8)
        cv2.putText(mask, text, org, FONT, scale, 255, 1, cv2.LINE_AA)
        rr, cc = np.nonzero(mask)
        canvas[:] = np.maximum(canvas, mask)
        boxes.append((text, [int(cc.min()), int(rr.min()), int(cc.max() - cc.min() + 1), int(rr.max() - rr.min() + 1)]))
    return boxes


def _sector(rng: np.random.Generator, frame: int, rows: int = US_ROWS, cols: int = US_COLS,
            defect: tuple[str, int] | None = None, defect_rng: np.random.Generator | None = None,
            params: dict | None = None) -> np.ndarray:
    """A B-mode sector: speckle (Rayleigh) over smooth organs, depth attenuation, black outside the fan;
    `defect` (type, severity) applied to the echo before the 8-bit clip, its parameters put in `params`."""
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float64)
    apex = (FAN_APEX_ROW, cols / 2)
    r = np.hypot(yy - apex[0], xx - apex[1])
    ang = np.arctan2(xx - apex[1], yy - apex[0])
    fan = (r > FAN_R_MIN) & (r < rows - FAN_MARGIN) & (np.abs(ang) < np.deg2rad(FAN_HALF_ANGLE_DEG))
    echo = np.full((rows, cols), 0.55)
    shift = 3.0 * np.sin(frame / 2.0)  # breathing between cine frames
    organ = (((xx - cols * 0.45) / 110) ** 2 + ((yy - rows * 0.55 - shift) / 70) ** 2) < 1
    vessel = (((xx - cols * 0.58) / 22) ** 2 + ((yy - rows * 0.45 - shift) / 14) ** 2) < 1
    echo[organ] = 0.8
    echo[vessel] = 0.08
    speckle = rng.rayleigh(0.5, (rows, cols))
    img = 200 * echo * speckle * np.exp(-r / (rows * 1.4))
    if defect is not None:
        kind, sev = defect
        drng = defect_rng if defect_rng is not None else np.random.default_rng(0)
        if kind == "gain_saturation":
            img, p = img * dg.US_GAIN[sev], {"gain": dg.US_GAIN[sev]}
        elif kind == "dropout":
            img, p = dg.us_dropout(img, sev, apex, np.deg2rad(FAN_HALF_ANGLE_DEG), drng)
        elif kind == "reverberation":
            img, p = dg.us_reverberation(img, sev, apex, float(FAN_R_MIN), drng)
        else:
            raise ValueError(f"unknown ultrasound defect {kind!r}")
        if params is not None:
            params.update(p)
    img[~fan] = 0
    return np.clip(img, 0, 255).astype(np.uint8)


def _patient_lines(study: StudyCtx, cols: int) -> list[tuple[str, tuple[int, int], float]]:
    p = study.patient
    return [
        (f"{p.family.upper()}, {p.given.upper()}", (6, 18), 0.5),
        (f"ID: {p.patient_id}", (6, 38), 0.5),
        (f"{study.date:%m/%d/%Y} {study.time[:2]}:{study.time[2:4]}", (cols - 160, 18), 0.5),
        (study.site.institution, (cols - 290, 38), 0.42),
    ]


def _us_fields(ds, study: StudyCtx) -> None:
    ds.Manufacturer, ds.ManufacturerModelName = US_EQUIPMENT[study.vendor.key]
    ds.ImageType = ["ORIGINAL", "PRIMARY", "ABDOMINAL", "0001"]
    ds.TransducerData = "C1-6"
    ds.ProcessingFunction = "ABDOMEN"
    region = ds.__class__()
    region.RegionSpatialFormat = 1
    region.RegionDataType = 1
    region.RegionFlags = 2
    region.RegionLocationMinX0 = 0
    region.RegionLocationMinY0 = 0
    region.RegionLocationMaxX1 = US_COLS - 1
    region.RegionLocationMaxY1 = US_ROWS - 1
    region.PhysicalUnitsXDirection = 3
    region.PhysicalUnitsYDirection = 3
    region.PhysicalDeltaX = 0.035
    region.PhysicalDeltaY = 0.035
    ds.SequenceOfUltrasoundRegions = [region]


def us_study(writer: SiteWriter, study: StudyCtx, defect: tuple[str, int] | None = None,
             only_single: bool = False) -> None:
    """The four US variants, one series each, every frame carrying the patient text; `defect` goes to
    the single-frame variant (`only_single`: write that one alone)."""
    for number, v in enumerate(VARIANTS, start=1):
        if only_single and v.name != "single":
            continue
        rng = rng_for(study.seed, "us", study.patient.index, v.name)
        sctx = SeriesCtx(study=study, number=number, modality=Modality.US, description=v.description,
                         protocol="Abdomen", time=add_seconds(study.time, 90 * number), body_part="ABDOMEN")
        sctx.extension = "" if number % 2 else ".dcm"
        rec = writer.new_series(sctx, SeriesKind.US, plane=None, dimensions="2D", contrast=False, derived=False,
                                transfer_syntax=v.transfer_syntax, burned_in_annotation_flag=v.flag,
                                photometric_interpretation=v.photometric, n_frames=v.frames)
        frames = []
        rel = writer.instance_path(sctx, 1)
        d = defect if v.name == "single" else None
        params: dict = {}
        for f in range(v.frames):
            gray = _sector(rng, f, defect=d, params=params,
                           defect_rng=rng_for(study.seed, "us-defect", study.patient.index, v.name, f))
            if d is not None:
                rec["degradation"] = {"type": d[0], "severity": d[1], **params}
            text = np.zeros_like(gray)
            boxes = draw_text(text, _patient_lines(study, US_COLS))
            for t, box in boxes:
                rec["burned_in_text"].append({"file": rel, "frame": f, "box": box, "text": t})
            if v.photometric == "MONOCHROME2":
                frames.append(np.maximum(gray, text))
            else:
                rgb = np.repeat(gray[..., None], 3, axis=2)
                if v.name == "doppler" or v.name == "ybr_cine":  # a colour flow box over the vessel
                    box = (slice(int(US_ROWS * 0.38), int(US_ROWS * 0.52)), slice(int(US_COLS * 0.53), int(US_COLS * 0.63)))
                    flow = rng.uniform(0, 1, rgb[box][..., 0].shape) > 0.35
                    rgb[box][flow] = (200, 30, 40) if f % 2 == 0 else (40, 60, 210)
                rgb[text > 0] = np.maximum(rgb[text > 0], text[text > 0, None])
                frames.append(rgb)
        arr = np.stack(frames) if v.frames > 1 else frames[0]
        if v.photometric == "YBR_FULL":
            arr = convert_color_space(arr, "RGB", "YBR_FULL")
        ds = base_dataset(sctx, US_MULTIFRAME_STORAGE if v.frames > 1 else US_IMAGE_STORAGE, 1)
        _us_fields(ds, study)
        if v.flag is not None:
            ds.BurnedInAnnotation = v.flag
        if v.frames > 1:
            ds.FrameTime = "40"
            ds.CineRate = 25
            ds.FrameIncrementPointer = (0x0018, 0x1063)
        set_pixels(ds, arr, photometric=v.photometric)
        if v.photometric != "MONOCHROME2":
            ds.PlanarConfiguration = 0
        writer.write_instance(ds, sctx, rec, 1, v.transfer_syntax)


def screen_capture(writer: SiteWriter, study: StudyCtx, number: int) -> None:
    """A secondary-capture screenshot of a reporting workstation: RGB, patient text all over it."""
    rng = rng_for(study.seed, "sc", study.patient.index)
    rows, cols = 384, 512
    p = study.patient
    sctx = SeriesCtx(study=study, number=number, modality=Modality.OT, description="Screen Save", protocol="",
                     time=add_seconds(study.time, 3600), body_part=study.body_part)
    rec = writer.new_series(sctx, SeriesKind.SC, plane=None, dimensions="2D", contrast=False, derived=True,
                            transfer_syntax=ExplicitVRLittleEndian, burned_in_annotation_flag="YES",
                            photometric_interpretation="RGB")
    rgb = np.zeros((rows, cols, 3), np.uint8)
    rgb[:, :] = (28, 30, 34)
    rgb[40:rows - 10, 10:300] = (0, 0, 0)
    yy, xx = np.mgrid[0:rows - 50, 0:290]
    brain = (((xx - 145) / 110.0) ** 2 + ((yy - 165) / 140.0) ** 2) < 1
    gray = np.where(brain, 90 + 60 * rng.random(brain.shape), 5).astype(np.uint8)
    rgb[40:rows - 10, 10:300] = gray[..., None]
    rgb[40:rows - 10, 310:cols - 10] = (45, 48, 56)
    text = np.zeros((rows, cols), np.uint8)
    lines = [
        (f"Patient: {p.family}, {p.given}", (10, 18), 0.5),
        (f"MRN {p.patient_id}   DOB {p.birth_date:%Y-%m-%d}", (10, 34), 0.4),
        (f"Exam: {study.description}", (318, 62), 0.4),
        (f"Date: {study.date:%Y-%m-%d}", (318, 82), 0.4),
        (f"Acc: {study.accession}", (318, 102), 0.4),
        (f"Ref: Dr. {study.referring.family}", (318, 122), 0.4),
        (study.site.institution, (318, 142), 0.35),
    ]
    rel = writer.instance_path(sctx, 1)
    for t, box in draw_text(text, lines):
        rec["burned_in_text"].append({"file": rel, "frame": 0, "box": box, "text": t})
    rgb[text > 0] = np.maximum(rgb[text > 0], text[text > 0, None])
    ds = base_dataset(sctx, SC_IMAGE_STORAGE, 1)
    ds.ConversionType = "WSD"
    ds.SecondaryCaptureDeviceManufacturer = "Reporting Workstation"
    ds.SecondaryCaptureDeviceManufacturerModelName = "RW 3"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.BurnedInAnnotation = "YES"
    set_pixels(ds, rgb, photometric="RGB")
    writer.write_instance(ds, sctx, rec, 1, ExplicitVRLittleEndian)
