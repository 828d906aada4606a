"""`assess_series`: metrics and decision for one series (a DICOM folder, a list of its files, or a
NIfTI file), as plain values for the catalog's stage record (StageRecord).

Volumes come from `curation.volume` (geometry from the DICOM attributes, real-world values); 2D
projection images (CR/DX/MG/US/SC) are read with pydicom directly, one frame.
"""
from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

from curation.classify.header import series_files
from curation.quality.acquisition import Acquisition, from_header, snr_per_voxel_volume
from curation.quality.decision import decide, load_config
from curation.quality.metrics import PROJECTION, STAGE_VERSION, compute_metrics
from curation.quality.results import MetricSet, jsonable
from curation.vocabulary import LOCALIZER_KINDS, STATUS_OF_DECISION, QualityDecision, SeriesKind, StageStatus


def _projection_image(files: list[Path]) -> tuple[np.ndarray, dict[str, Any]]:
    """The middle frame of the first readable image among the files, and its header facts."""
    for f in files:
        try:
            ds = pydicom.dcmread(f)
        except (pydicom.errors.InvalidDicomError, OSError, EOFError):
            continue
        if "PixelData" not in ds:
            continue
        arr = ds.pixel_array  # pydicom gives YBR_FULL / YBR_FULL_422 as RGB already (as_rgb)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        if frames > 1:
            arr = arr[frames // 2]
        bits = int(ds.get("BitsStored", 8))
        if ds.get("PhotometricInterpretation") == "MONOCHROME1":  # measured as displayed: bright = attenuating
            arr = ((1 << bits) - 1) - arr.astype(np.int32)
        info = {"bits_stored": bits, "exposure_index": ds.get("ExposureIndex"),
                "target_exposure_index": ds.get("TargetExposureIndex")}
        for k in ("exposure_index", "target_exposure_index"):
            info[k] = float(info[k]) if info[k] not in (None, "") else None
        return np.asarray(arr), info
    raise ValueError("no readable image with pixel data")


def _volumes(files: list[Path]) -> tuple[list[np.ndarray], tuple[float, float, float], list[float] | None]:
    """(volumes as (z, y, x) float32 arrays, spacing (z, y, x) mm, per-volume b-values or None)."""
    import SimpleITK as sitk

    from curation import volume as vol

    if len(files) == 1 and vol.is_volume_file(files[0]):
        images = vol.load_volumes(files[0])
        b_values = None
    else:
        uid = None
        for f in files:
            try:
                uid = str(pydicom.dcmread(f, stop_before_pixels=True, specific_tags=["SeriesInstanceUID"])
                          .SeriesInstanceUID)
                break
            except Exception:  # noqa: BLE001 - not DICOM, or no UID: try the next file
                continue
        with tempfile.TemporaryDirectory(prefix="curate-quality-") as tmp:
            # Exactly the listed files (a series folder may also hold strays and broken copies).
            for i, f in enumerate(files):
                os.symlink(Path(f).resolve(), Path(tmp) / f"{i:06d}")
            ds = vol.read_dicom_series(tmp, uid)
        images = ds.volumes
        labels = getattr(ds, "labels", None) or []
        b_values = [float(lab["b_value"]) for lab in labels] if labels and all("b_value" in lab for lab in labels) \
            else None
    arrays = [sitk.GetArrayViewFromImage(im).astype(np.float32, copy=True) for im in images]
    sx, sy, sz = images[0].GetSpacing()
    return arrays, (float(sz), float(sy), float(sx)), b_values


def assess_series(
    series: str | os.PathLike | Iterable[str | os.PathLike],
    config: dict[str, Any] | None = None,
    classification: dict[str, Any] | None = None,
    model: Any = "default",
) -> dict[str, Any]:
    """Quality metrics (with mask sizes and NaN reasons) and the approve/review/exclude decision.

    `classification`: the `classify` stage's result for this series (kind, body_part); computed here
    from the headers when absent. `config`: overrides of include/quality/thresholds.yaml.
    """
    cfg = load_config(config)
    files = series_files(series)
    if classification is None:
        from curation.classify import classify_series

        classification = classify_series(files)
    kind = classification.get("kind") or SeriesKind.OTHER
    body_part = classification.get("body_part")
    spacing: tuple[float, float, float] | None = None
    try:
        if kind in PROJECTION:
            img, info = _projection_image(files)
            ms = compute_metrics(None, (1.0, 1.0, 1.0), kind, image2d=img, config=cfg, **info)
        elif kind in (*LOCALIZER_KINDS, SeriesKind.OTHER):
            ms = compute_metrics(None, (1.0, 1.0, 1.0), kind, config=cfg)
        else:
            arrays, spacing, b_values = _volumes(files)
            frames = np.stack(arrays) if len(arrays) > 1 and len({a.shape for a in arrays}) == 1 else None
            ms = compute_metrics(arrays[0], spacing, kind, frames=frames, b_values=b_values, body_part=body_part,
                                 config=cfg)
    except (ValueError, RuntimeError, OSError) as exc:
        ms = MetricSet()
        for n in ("snr", "snr_dietrich", "cnr", "cjv", "efc", "fber", "wm2max", "qi1"):
            ms.nan(n, f"pixel data unusable: {type(exc).__name__}: {exc}"[:200])
        return {"kind": kind, "metrics": ms.values, "nan_reasons": ms.reasons, "masks": {},
                "decision": {"decision": QualityDecision.REVIEW,
                             "reason": f"pixel data unusable ({type(exc).__name__})",
                             "p_degraded": None}, "stage_version": STAGE_VERSION}
    acq = from_header(files[0], spacing) if spacing is not None else Acquisition()
    if acq.voxel_mm3:
        for name in ("snr", "snr_dietrich"):
            if name in ms.values:
                ms.set(f"{name}_per_mm3", snr_per_voxel_volume(ms.values[name], acq),
                       f"{name} not available")
    decision = decide(ms.values, kind, cfg, model, contrast=bool(classification.get("contrast")),
                      acquisition=acq.as_dict())
    return {
        "kind": kind,
        "acquisition": acq.as_dict(),
        "metrics": ms.values,
        "nan_reasons": ms.reasons,
        "masks": ms.masks,
        "decision": decision,
        "notes": {k: v for k, v in ms.notes.items() if k != "summary"},
        "stage_version": STAGE_VERSION,
    }


def stage_result(result: dict[str, Any]) -> dict[str, Any]:
    """The fields of a catalog stage record (StageRecord) for a quality result: status, metrics
    (strict JSON), reason."""
    status = STATUS_OF_DECISION.get(result["decision"]["decision"], StageStatus.REVIEW)
    payload = {"metrics": result["metrics"], "nan_reasons": result["nan_reasons"], "masks": result["masks"],
               "decision": result["decision"], "kind": result["kind"], "acquisition": result.get("acquisition")}
    return {"status": status, "metrics": jsonable(payload), "reason": result["decision"]["reason"],
            "stage_version": result["stage_version"]}


def finite(metrics: dict[str, float]) -> dict[str, float]:
    """Only the metrics that have a value."""
    return {k: v for k, v in metrics.items() if isinstance(v, float) and math.isfinite(v)}
