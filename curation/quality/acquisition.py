"""The acquisition a series was made with (voxel size, field strength, 2D/3D, averages, bandwidth),
read from its header, and what depends on it: SNR normalised for voxel volume, and the bin of
acquisitions its clean reference statistics are conditioned on (issue 19).

Why: a metric's clean range depends on the protocol. SNR grows with voxel volume, sqrt(averages),
1/sqrt(bandwidth) and the field (Haacke et al., MRI: Physical Principles, ch. 15); a decision that
compares a 0.5 mm 3 T series with 2 mm 1.5 T ones sends every unfamiliar protocol to review.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: In-plane pixel size bins (mm) and slice thickness bins (mm) of the conditioned references.
PIXEL_BINS_MM = (0.7, 1.1, 1.6)
SLICE_BINS_MM = (2.5, 4.5)
#: Reference acquisition of the normalised SNR: 1 mm^3, 1 average, 200 Hz/pixel.
REFERENCE_BANDWIDTH_HZ = 200.0


@dataclass(frozen=True)
class Acquisition:
    pixel_mm: float | None = None  # mean in-plane pixel spacing
    slice_mm: float | None = None  # slice thickness (spacing when the header has none)
    field_t: float | None = None
    three_d: int | None = None  # 1: MRAcquisitionType 3D, 0: 2D
    averages: float | None = None
    bandwidth_hz: float | None = None  # PixelBandwidth, Hz per pixel

    @property
    def voxel_mm3(self) -> float | None:
        if self.pixel_mm and self.slice_mm:
            return self.pixel_mm * self.pixel_mm * self.slice_mm
        return None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _float(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None


def from_mapping(m: Mapping[str, Any] | None) -> Acquisition:
    """An Acquisition from a dict with its field names (a training row, a stored result)."""
    m = m or {}
    three_d = m.get("three_d")
    return Acquisition(_float(m.get("pixel_mm")), _float(m.get("slice_mm")), _float(m.get("field_t")),
                       int(three_d) if three_d not in (None, "") and not (isinstance(three_d, float)
                                                                         and math.isnan(three_d)) else None,
                       _float(m.get("averages")), _float(m.get("bandwidth_hz")))


def from_header(path: str | Path | None, spacing: tuple[float, float, float] | None = None) -> Acquisition:
    """Read from one DICOM file's header (no pixels); `spacing` (z, y, x) mm fills what it lacks."""
    import pydicom

    ds = None
    if path is not None:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - NIfTI or unreadable: spacing alone
            ds = None
    get = (lambda k: ds.get(k)) if ds is not None else (lambda k: None)
    ps = get("PixelSpacing")
    pixel = _float((float(ps[0]) + float(ps[1])) / 2.0) if ps and len(ps) == 2 else None
    if pixel is None and spacing:
        pixel = _float((spacing[1] + spacing[2]) / 2.0)
    thick = _float(get("SliceThickness")) or (_float(spacing[0]) if spacing else None)
    kind = str(get("MRAcquisitionType") or "").upper()
    return Acquisition(pixel, thick, _float(get("MagneticFieldStrength")),
                       1 if kind == "3D" else 0 if kind == "2D" else None,
                       _float(get("NumberOfAverages")), _float(get("PixelBandwidth")))


def snr_per_voxel_volume(snr: float, acq: Acquisition) -> float:
    """SNR scaled to a 1 mm^3 voxel, 1 average and REFERENCE_BANDWIDTH_HZ per pixel (SNR ~ voxel
    volume x sqrt(averages / bandwidth)); NaN when the voxel size is unknown."""
    v = acq.voxel_mm3
    if not v or snr is None or not math.isfinite(snr):
        return math.nan
    avg = acq.averages or 1.0
    bw = acq.bandwidth_hz or REFERENCE_BANDWIDTH_HZ
    return float(snr / v / math.sqrt(avg) * math.sqrt(bw / REFERENCE_BANDWIDTH_HZ))


def _bin(value: float | None, edges: tuple[float, ...]) -> str | None:
    if value is None:
        return None
    lo = 0.0
    for e in edges:
        if value < e:
            return f"{lo:g}-{e:g}" if lo else f"<{e:g}"
        lo = e
    return f">={lo:g}"


def reference_keys(kind: str, acq: Acquisition, contrast: bool = False) -> list[str]:
    """Reference keys from the most specific to the plainest: kind at field with pixel and slice
    bins, kind at field with pixel bin, kind at field, kind (with "+C" for contrast first)."""
    base = [f"{kind}+C", kind] if contrast else [kind]
    out: list[str] = []
    field = None if acq.field_t is None else ("1.5 T" if acq.field_t < 2.0 else "3 T")
    px, sl = _bin(acq.pixel_mm, PIXEL_BINS_MM), _bin(acq.slice_mm, SLICE_BINS_MM)
    for b in base:
        if field and px and sl:
            out.append(f"{b} at {field}, {px} mm pixels, {sl} mm slices")
        if field and px:
            out.append(f"{b} at {field}, {px} mm pixels")
        if field:
            out.append(f"{b} at {field}")
    return out + base
