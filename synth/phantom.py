"""Analytic 3D head phantom with distinct tissue classes, defined in physical space (mm).

Why analytic: a label is a function of a point in patient space, so the same head can be sampled on
any grid, at any spacing, and after any known rigid motion *without interpolation*. That gives exact
ground truth for registration, motion correction and quality metrics.

Coordinates are DICOM patient coordinates (LPS, mm): +x towards the patient's left, +y posterior,
+z superior. The head is centred on the origin. The shape is deliberately asymmetric (ventricles off
the midline, a frontal lesion, a nose) so that no rotation maps the head onto itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np


class Tissue(IntEnum):
    """Tissue classes of the head phantom (values of the label volume)."""

    BACKGROUND = 0
    CSF = 1
    GM = 2
    WM = 3
    SKULL = 4
    SCALP = 5
    LESION = 6


@dataclass(frozen=True)
class MRTissue:
    """Relaxation parameters at 1.5 T (ms) and proton density (relative)."""

    t1: float
    t2: float
    pd: float
    t2star: float


#: Typical 1.5 T values (Wansapura 1999; Bojorquez 2017), rounded. Skull has almost no signal.
MR_TISSUES: dict[Tissue, MRTissue] = {
    Tissue.BACKGROUND: MRTissue(t1=1.0, t2=1.0, pd=0.0, t2star=1.0),
    Tissue.CSF: MRTissue(t1=4000.0, t2=2000.0, pd=1.0, t2star=1000.0),
    Tissue.GM: MRTissue(t1=1200.0, t2=100.0, pd=0.80, t2star=60.0),
    Tissue.WM: MRTissue(t1=750.0, t2=80.0, pd=0.68, t2star=50.0),
    Tissue.SKULL: MRTissue(t1=300.0, t2=1.0, pd=0.05, t2star=1.0),
    Tissue.SCALP: MRTissue(t1=350.0, t2=70.0, pd=0.90, t2star=40.0),
    Tissue.LESION: MRTissue(t1=1400.0, t2=180.0, pd=0.85, t2star=80.0),
}

#: Apparent diffusion coefficient (mm^2/s), isotropic, typical adult brain values.
ADC: dict[Tissue, float] = {
    Tissue.BACKGROUND: 0.0,
    Tissue.CSF: 3.0e-3,
    Tissue.GM: 0.83e-3,
    Tissue.WM: 0.72e-3,
    Tissue.SKULL: 0.0,
    Tissue.SCALP: 1.0e-3,
    Tissue.LESION: 1.35e-3,
}

#: Relative gadolinium uptake at the peak of a bolus (mmol/l); the lesion has a broken barrier.
GD_PEAK_MMOL: dict[Tissue, float] = {
    Tissue.BACKGROUND: 0.0,
    Tissue.CSF: 0.0,
    Tissue.GM: 0.06,
    Tissue.WM: 0.03,
    Tissue.SKULL: 0.0,
    Tissue.SCALP: 0.35,
    Tissue.LESION: 0.9,
}

#: T1 relaxivity of a gadolinium agent at 1.5 T (1/(mmol/l * s)), e.g. gadobutrol about 5.
GD_R1 = 5.0


def contrast_tissues(fraction_of_peak: float) -> dict[Tissue, MRTissue]:
    """MR_TISSUES with T1 shortened by the agent: 1/T1 = 1/T1_0 + r1 C (C = peak x fraction)."""
    out = {}
    for tissue, par in MR_TISSUES.items():
        c = GD_PEAK_MMOL[tissue] * fraction_of_peak
        r1_ms = 1.0 / par.t1 + GD_R1 * c / 1000.0
        out[tissue] = MRTissue(t1=1.0 / r1_ms, t2=par.t2, pd=par.pd, t2star=par.t2star)
    return out


def adc_map(labels: np.ndarray) -> np.ndarray:
    """ADC (mm^2/s) at each label."""
    lut = np.zeros(max(int(t) for t in Tissue) + 1)
    for tissue, v in ADC.items():
        lut[int(tissue)] = v
    return lut[labels]


#: CT attenuation in Hounsfield units.
CT_HU: dict[Tissue, float] = {
    Tissue.BACKGROUND: -1000.0,
    Tissue.CSF: 8.0,
    Tissue.GM: 40.0,
    Tissue.WM: 28.0,
    Tissue.SKULL: 1200.0,
    Tissue.SCALP: -60.0,
    Tissue.LESION: 55.0,
}


def _ellipsoid(p: np.ndarray, centre: tuple[float, float, float], axes: tuple[float, float, float]) -> np.ndarray:
    """Normalised radius of each point in an axis-aligned ellipsoid (< 1 inside)."""
    # Component by component: no (..., 3) temporaries, about twice as fast on big grids.
    x = (p[..., 0] - centre[0]) / axes[0]
    y = (p[..., 1] - centre[1]) / axes[1]
    z = (p[..., 2] - centre[2]) / axes[2]
    return np.sqrt(x * x + y * y + z * z)


def head_labels_at(points_mm: np.ndarray) -> np.ndarray:
    """Tissue label (uint8) at each point (..., 3) given in LPS mm, head centred on the origin."""
    p = np.asarray(points_mm, dtype=np.float64)
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    labels = np.zeros(p.shape[:-1], dtype=np.uint8)

    # Scalp and a nose (anterior = -y) make the outline asymmetric front to back.
    outer = _ellipsoid(p, (0.0, 0.0, 0.0), (72.0, 92.0, 78.0))
    nose = _ellipsoid(p, (0.0, -92.0, -28.0), (10.0, 16.0, 18.0))
    labels[(outer < 1.0) | (nose < 1.0)] = Tissue.SCALP
    labels[outer < 0.93] = Tissue.SKULL
    # Brain surface modulated by gyri so GM has a realistic, uneven thickness.
    theta = np.arctan2(y, x)
    phi = np.arctan2(z, np.hypot(x, y))
    gyri = 0.025 * np.sin(7 * theta) * np.cos(5 * phi)
    inner_skull = _ellipsoid(p, (0.0, 2.0, 2.0), (62.0, 82.0, 68.0))
    labels[inner_skull < 0.985] = Tissue.CSF
    labels[inner_skull < 0.955 + gyri] = Tissue.GM
    wm = _ellipsoid(p, (0.0, 4.0, 6.0), (50.0, 68.0, 54.0))
    labels[wm < 0.90 + 1.6 * gyri] = Tissue.WM
    # Lateral ventricles, deliberately unequal and off the midline.
    left_v = _ellipsoid(p, (9.0, 2.0, 14.0), (6.0, 24.0, 9.0))
    right_v = _ellipsoid(p, (-8.0, -2.0, 12.0), (5.0, 20.0, 8.0))
    labels[(left_v < 1.0) | (right_v < 1.0)] = Tissue.CSF
    # A deep-grey nucleus (caudate/putamen-like) on each side gives interior structure.
    for cx in (-22.0, 24.0):
        labels[_ellipsoid(p, (cx, 0.0, -4.0), (8.0, 14.0, 10.0)) < 1.0] = Tissue.GM
    # A right frontal lesion (a ground-truth finding for annotation work).
    labels[_ellipsoid(p, (-26.0, -40.0, 24.0), (7.0, 6.0, 6.0)) < 1.0] = Tissue.LESION
    return labels


def grid_points(shape_zyx: tuple[int, int, int], spacing_zyx: tuple[float, float, float]) -> np.ndarray:
    """LPS points (z, y, x, 3) of an axial grid centred on the origin (row = +y, column = +x)."""
    nz, ny, nx = shape_zyx
    sz, sy, sx = spacing_zyx
    zs = (np.arange(nz) - (nz - 1) / 2.0) * sz
    ys = (np.arange(ny) - (ny - 1) / 2.0) * sy
    xs = (np.arange(nx) - (nx - 1) / 2.0) * sx
    zz, yy, xx = np.meshgrid(zs, ys, xs, indexing="ij")
    return np.stack([xx, yy, zz], axis=-1)


def head_labels(
    shape_zyx: tuple[int, int, int] = (64, 128, 128),
    spacing_zyx: tuple[float, float, float] = (3.0, 1.8, 1.8),
) -> np.ndarray:
    """Label volume (z, y, x) of the head on an axial grid centred on the origin."""
    return head_labels_at(grid_points(shape_zyx, spacing_zyx))


def mr_signal(
    labels: np.ndarray,
    tr: float,
    te: float,
    ti: float | None = None,
    flip_deg: float = 90.0,
    gradient_echo: bool = False,
    tissues: dict[Tissue, MRTissue] | None = None,
) -> np.ndarray:
    """Noise-free MR magnitude (arbitrary units, max about 1) from the tissue labels.

    Spin echo: PD (1 - e^{-TR/T1}) e^{-TE/T2}; inversion recovery adds |1 - 2 e^{-TI/T1} + e^{-TR/T1}|;
    gradient echo uses the spoiled steady state with T2*. `tissues` overrides MR_TISSUES (e.g. T1
    shortened by a contrast agent).
    """
    out = np.zeros(labels.shape, dtype=np.float64)
    alpha = np.deg2rad(flip_deg)
    for tissue, par in (tissues or MR_TISSUES).items():
        mask = labels == tissue
        if not mask.any() or par.pd == 0.0:
            continue
        e1 = np.exp(-tr / par.t1)
        if gradient_echo:
            s = par.pd * np.sin(alpha) * (1 - e1) / (1 - np.cos(alpha) * e1) * np.exp(-te / par.t2star)
        elif ti is not None:
            s = par.pd * abs(1 - 2 * np.exp(-ti / par.t1) + e1) * np.exp(-te / par.t2)
        else:
            s = par.pd * (1 - e1) * np.exp(-te / par.t2)
        out[mask] = s
    return out


def ct_hu(labels: np.ndarray) -> np.ndarray:
    """CT numbers (HU, float) from the tissue labels."""
    lut = np.full(max(int(t) for t in Tissue) + 1, -1000.0)
    for tissue, hu in CT_HU.items():
        lut[int(tissue)] = hu
    return lut[labels]
