"""The model's inputs read from a de-identified DICOM object: one `ModelInput` per frame, in the values
a reader sees (Modality LUT applied, MONOCHROME1 inverted, colour as luminance), so a model trained on
one vendor's convention is not handed another's inverted or unscaled pixels."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom

#: ITU-R BT.601 luma weights: the luminance a greyscale model sees of a colour image.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _stored_range(ds: pydicom.Dataset) -> tuple[int, int]:
    bits = int(ds.get("BitsStored", 16) or 16)
    if int(ds.get("PixelRepresentation", 0) or 0) == 1:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def _spacing(ds: pydicom.Dataset) -> tuple[float, float] | None:
    """PixelSpacing, else ImagerPixelSpacing (projection radiography at the detector), in mm (row, col)."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        if value is not None and len(value) == 2:
            try:
                return float(value[0]), float(value[1])
            except (TypeError, ValueError):
                continue
    return None


def frame_pixels(ds: pydicom.Dataset) -> list[np.ndarray]:
    """Each frame as float32 (rows, cols): luminance of colour (palette colour through its LUT),
    MONOCHROME1 inverted within the stored range (so the Modality LUT keeps its meaning), then Rescale
    Slope/Intercept applied."""
    arr = np.asarray(ds.pixel_array)  # pydicom converts YBR_FULL(_422) to RGB
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if photometric == "PALETTE COLOR":  # indices into the palette: the colours are the image
        from pydicom.pixels import apply_color_lut

        arr, samples = apply_color_lut(arr, ds), 3
    if samples == 3:
        arr = arr.reshape((frames, *arr.shape[-3:])) if frames > 1 or arr.ndim == 4 else arr[None]
        return [(f.astype(np.float32) @ LUMA).astype(np.float32) for f in arr]
    arr = arr.reshape((frames, *arr.shape[-2:])) if frames > 1 or arr.ndim == 3 else arr[None]
    arr = arr.astype(np.float32)
    if photometric == "MONOCHROME1":
        low, high = _stored_range(ds)
        arr = float(low + high) - arr
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    if slope != 1.0 or intercept != 0.0:
        arr = arr * slope + intercept
    return [np.ascontiguousarray(f, dtype=np.float32) for f in arr]


def read_inputs(path: Path, *, item: str, instance_position: int, kind: str) -> list[Any]:
    """The `ModelInput`s of one de-identified DICOM file (one per frame); none when it has no pixels."""
    from curation.assist.plugin import ModelInput

    ds = pydicom.dcmread(str(path), force=True)
    if "PixelData" not in ds:
        return []
    spacing, modality = _spacing(ds), str(ds.get("Modality", "") or "")
    return [ModelInput(pixels=f, pixel_spacing=spacing, modality=modality, kind=kind,
                       ref={"item": item, "instance_position": instance_position, "frame": n})
            for n, f in enumerate(frame_pixels(ds))]


__all__ = ["LUMA", "frame_pixels", "read_inputs"]
