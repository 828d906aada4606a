"""Which metrics a series gets, by kind and modality, computed from arrays already in memory.

- structural brain MR (T1W, T2W, FLAIR, PDW, SWI): MRIQC's anatomical set + artifact measures;
- other MR (DWI, ADC, DCE, OTHER_MR): foreground-based SNR, Dietrich SNR, EFC, FBER, QI1 with MRIQC's
  functions (the foreground standing in for the tissues), plus temporal metrics when 4D; DWI per b-value
  SNR, Nyquist ghost and slice drop-out, ADC range and noise floor, DCE baseline stability, enhancement
  curve and motion between phases (curation.quality.diffusion, perfusion: issue 19);
- CT: Christianson's global noise level, noise in air, CNR, streak and ring indices, truncation;
- CR, DX, MG, US, SC: exposure/saturation/SNR proxies; radiographs (CR, DX, MG) also exposure level,
  clipping and collimation cut in the collimated field, grid lines and sharpness; US saturation,
  dropout and reverberation in the fan;
- localizers: not scored (NaN with that reason).
Every metric the issue lists is present in every result, NaN with a reason where it does not apply.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from curation.quality.anatomical import anatomical_metrics
from curation.quality.ct import ct_artifact_metrics, global_noise_level
from curation.quality.diffusion import ADC_METRICS, DWI_METRICS, adc_metrics, dwi_metrics
from curation.quality.masks import compute_masks
from curation.quality.perfusion import DCE_METRICS, dce_metrics
from curation.quality.radiography import projection_metrics, radiograph_metrics
from curation.quality.results import MetricSet
from curation.quality.temporal import temporal_metrics
from curation.quality.ultrasound import ultrasound_metrics
from curation.vocabulary import LOCALIZER_KINDS, PROJECTION_KINDS, STRUCTURAL_MR_KINDS, SeriesKind

STRUCTURAL = STRUCTURAL_MR_KINDS
PROJECTION = (*PROJECTION_KINDS, SeriesKind.US, SeriesKind.SC)
RADIOGRAPH = PROJECTION_KINDS
#: The metric names every result carries (lower case, MRIQC's where MRIQC has one).
CORE_METRICS = ("snr", "snr_dietrich", "cnr", "cjv", "efc", "fber", "wm2max", "qi1", "var", "fwhm_avg",
                "inu_range", "gsr")
#: 2: CT, CR/DX and US defect metrics and rules (issue 11, point 7); 3: DWI, ADC, DCE metrics and models (issue 19)
STAGE_VERSION = "quality/3"


def _foreground_mr(volume: np.ndarray, spacing: tuple[float, float, float]) -> MetricSet:
    """MR without brain tissue classes: MRIQC's functions with the whole foreground as the tissue."""
    from curation.quality.anatomical import mriqc_functions
    from curation.quality.stats import tissue_stats

    mq = mriqc_functions()

    ms = MetricSet()
    v = np.nan_to_num(np.asarray(volume, dtype=np.float32))
    v[v < 0] = 0
    masks = compute_masks(v, spacing)
    ms.masks.update(masks.sizes())
    if masks.head.sum() < 10:
        for n in ("snr", "snr_dietrich", "efc", "fber", "qi1"):
            ms.nan(n, "no foreground found")
        return ms
    med = float(np.median(v[masks.head]))
    data = v * np.float32(1000.0 / med) if med > 0 else v
    fg = tissue_stats(data, masks.head, kurt=False)
    bg = tissue_stats(data, masks.air, kurt=False)
    ms.set("snr", mq.snr(fg["median"], fg["stdv"], fg["n"]) if fg["n"] > 1 and fg["stdv"] > 0 else math.nan,
           "foreground without spread")
    if bg["n"] > 0:
        d = mq.snr_dietrich(fg["median"], mad_air=bg["mad"], sigma_air=bg["stdv"])
        ms.set("snr_dietrich", d if d != -1.0 else math.nan, "background noise too small to estimate")
    else:
        ms.nan("snr_dietrich", "no background (air) in the field of view")
    rot = masks.rotation.astype(np.uint8)
    f = mq.fber(data, masks.head.astype(np.uint8), rot)
    ms.set("fber", f if f != -1.0 else math.nan, "no signal outside the foreground")
    ms.set("efc", mq.efc(data, rot))
    q = mq.art_qi1(masks.air, masks.artifact)
    ms.set("qi1", q if q != -1.0 else math.nan, "empty air mask")
    return ms


def compute_metrics(
    volume: np.ndarray | None,
    spacing: Sequence[float],
    kind: str,
    *,
    frames: np.ndarray | None = None,
    b_values: Sequence[float] | None = None,
    image2d: np.ndarray | None = None,
    bits_stored: int | None = None,
    exposure_index: float | None = None,
    target_exposure_index: float | None = None,
    body_part: str | None = None,
    config: dict[str, Any] | None = None,
) -> MetricSet:
    """Metrics for one series. `volume`: (slices, rows, columns) real-world values (MR magnitude, CT
    HU); `frames`: (t, slices, rows, columns) for 4D series; `image2d`: one 2D image for projection
    kinds; `spacing`: (slice, row, column) mm."""
    cfg = config or {}
    ms = MetricSet()
    ms.notes["kind"] = kind
    sp = tuple(float(s) for s in spacing) if spacing is not None else (1.0, 1.0, 1.0)
    if kind in LOCALIZER_KINDS:
        why = "localizer: planning image, not scored"
    elif kind in STRUCTURAL:
        if body_part and body_part.upper() not in ("HEAD", "BRAIN", "SKULL", ""):
            why = None
            ms.update(_foreground_mr(volume, sp))
            ms.notes["note"] = f"{kind} of {body_part}: no brain tissue classes"
        else:
            why = None
            ms.update(anatomical_metrics(volume, sp, kind, brain_depth_mm=float(cfg.get("brain_depth_mm", 12.0)),
                                         tissue_order=cfg.get("tissue_order")))
    elif kind in (SeriesKind.DWI, SeriesKind.ADC, SeriesKind.DCE, SeriesKind.OTHER_MR):
        why = None
        ms.update(_foreground_mr(volume, sp))
        four_d = frames is not None and frames.ndim == 4 and frames.shape[0] > 1
        if four_d:
            ms.update(temporal_metrics(frames, sp, kind, b_values))
        if kind == SeriesKind.DWI and four_d:
            ms.update(dwi_metrics(frames, sp, b_values))
        elif kind == SeriesKind.DCE and four_d:
            ms.update(dce_metrics(frames, sp))
        elif kind == SeriesKind.ADC and volume is not None:
            ms.update(adc_metrics(volume, sp))
        for n in {SeriesKind.DWI: DWI_METRICS, SeriesKind.DCE: DCE_METRICS, SeriesKind.ADC: ADC_METRICS}.get(kind, ()):
            if n not in ms.values:
                ms.nan(n, "needs the series' volumes (4D: every b-value / phase)")
    elif kind == SeriesKind.CT:
        why = None
        ms.update(global_noise_level(volume, sp, kernel_mm=float(cfg.get("ct_kernel_mm", 6.0))))
        ms.update(ct_artifact_metrics(volume, sp))
    elif kind in PROJECTION:
        why = None
        img = image2d if image2d is not None else (volume[volume.shape[0] // 2] if volume is not None else None)
        if img is None:
            why = "no pixel data"
        else:
            ms.update(projection_metrics(img, bits_stored, exposure_index, target_exposure_index))
            if kind in RADIOGRAPH:
                ms.update(radiograph_metrics(img, bits_stored))
            elif kind == SeriesKind.US:
                ms.update(ultrasound_metrics(img, bits_stored))
    else:
        why = f"no quality metrics defined for kind {kind}"
    for n in CORE_METRICS:
        if n not in ms.values:
            ms.nan(n, why or _not_applicable(n, kind))
    if frames is None and kind in (SeriesKind.DWI, SeriesKind.DCE):
        for n in ("tsnr", "dvars"):
            if n not in ms.values:
                ms.nan(n, "4D volumes not available")
    return ms


def _not_applicable(metric: str, kind: str) -> str:
    if metric in ("cnr", "cjv", "wm2max", "inu_range"):
        return f"needs GM/WM tissue classes (structural brain MR), not {kind}"
    if metric in ("var", "fwhm_avg", "gsr"):
        return f"computed for structural brain MR only, not {kind}"
    return f"not defined for {kind}"
