"""Controlled image defects at graded severity (0 = none, 1 = mild ... 5 = severe).

Each function takes a magnitude volume (2D or 3D, slices first), a severity and a numpy Generator and
returns a new float64 array; the input is never modified. They model the physics, not a look:
- noise: Rician (magnitude of complex Gaussian noise added to the true signal), as MR magnitude
  images have it;
- ghosting: periodic motion during acquisition, i.e. a line-by-line phase modulation of k-space
  along the phase-encode direction, which makes ghosts of the object shifted along that direction;
- blur: Gaussian point-spread in-plane (slices stay independent, as in a 2D acquisition);
- bias field: a smooth multiplicative receive-coil field (exp of a low-order polynomial).
Quality metrics (issue 4) are expected to move monotonically with severity: SNR and CNR fall,
EFC rises.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

SEVERITIES = (1, 2, 3, 4, 5)

#: Noise sigma as a fraction of the volume's 99th percentile (the bright tissue level).
NOISE_SIGMA = {0: 0.0, 1: 0.02, 2: 0.035, 3: 0.055, 4: 0.08, 5: 0.12}
#: Amplitude (pixels) of the periodic displacement along the phase-encode direction.
GHOST_AMPLITUDE = {0: 0.0, 1: 0.12, 2: 0.25, 3: 0.45, 4: 0.75, 5: 1.2}
#: Gaussian sigma (pixels) in-plane.
BLUR_SIGMA = {0: 0.0, 1: 0.6, 2: 1.0, 3: 1.5, 4: 2.1, 5: 3.0}
#: Peak log-amplitude of the multiplicative field: the field spans about exp(-a) .. exp(a).
BIAS_AMPLITUDE = {0: 0.0, 1: 0.12, 2: 0.22, 3: 0.35, 4: 0.5, 5: 0.7}

#: Baseline noise of every synthetic MR image (clean ones included), as a fraction like NOISE_SIGMA.
BASELINE_NOISE_SIGMA = 0.008


def _check(volume: np.ndarray, severity: int) -> np.ndarray:
    if severity not in (0, *SEVERITIES):
        raise ValueError(f"severity must be 0..5, got {severity}")
    v = np.asarray(volume, dtype=np.float64)
    if v.ndim not in (2, 3):
        raise ValueError(f"volume must be 2D or 3D, got {v.ndim}D")
    return v


def _reference_level(v: np.ndarray) -> float:
    level = float(np.percentile(v, 99))
    return level if level > 0 else float(v.max()) or 1.0


def rician_noise(volume: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """|S + n_re + i n_im| with both components N(0, sigma^2): the magnitude image's noise model."""
    v = np.asarray(volume, dtype=np.float64)
    if sigma <= 0:
        return v.copy()
    re = v + rng.normal(0.0, sigma, v.shape)
    im = rng.normal(0.0, sigma, v.shape)
    return np.hypot(re, im)


def add_noise(volume: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Rician noise with sigma = NOISE_SIGMA[severity] x the 99th percentile of the volume."""
    v = _check(volume, severity)
    return rician_noise(v, NOISE_SIGMA[severity] * _reference_level(v), rng)


def add_ghosting(
    volume: np.ndarray, severity: int, rng: np.random.Generator, phase_axis: int = -2
) -> np.ndarray:
    """Motion ghosts: k-space line ky gets the phase of a displacement d(ky) = A sin(2 pi ky / P + phi).

    `phase_axis` is the in-plane axis of the phase-encode direction (-2: rows, i.e. the column
    direction of the image, `InPlanePhaseEncodingDirection` COL; -1: ROW). The period P (lines) and
    the phase phi are drawn from `rng`; A grows with the severity.
    """
    v = _check(volume, severity)
    if severity == 0:
        return v.copy()
    axis = phase_axis % v.ndim
    n = v.shape[axis]
    period = float(rng.uniform(5.0, 9.0))
    phi = float(rng.uniform(0.0, 2 * np.pi))
    ky = np.fft.fftfreq(n) * n  # line index in cycles per field of view
    line = np.arange(n)  # acquisition order: line by line
    disp = GHOST_AMPLITUDE[severity] * np.sin(2 * np.pi * line / period + phi)
    # A shift by d pixels multiplies line ky by exp(-2 pi i ky d / n).
    phase = np.exp(-2j * np.pi * ky * disp / n)
    shape = [1] * v.ndim
    shape[axis] = n
    k = np.fft.fft(v, axis=axis)
    return np.abs(np.fft.ifft(k * phase.reshape(shape), axis=axis))


def add_blur(volume: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """In-plane Gaussian blur with sigma BLUR_SIGMA[severity] pixels (rng unused: the blur is fixed)."""
    v = _check(volume, severity)
    if severity == 0:
        return v.copy()
    s = BLUR_SIGMA[severity]
    sigma = (s, s) if v.ndim == 2 else (0.0, s, s)
    return ndimage.gaussian_filter(v, sigma=sigma, mode="nearest")


def bias_field(shape: tuple[int, ...], severity: int, rng: np.random.Generator) -> np.ndarray:
    """The multiplicative field alone: exp(a * p), p a random quadratic in normalised coordinates, |p| <= 1."""
    grids = np.meshgrid(*[np.linspace(-1.0, 1.0, n) for n in shape], indexing="ij")
    terms = list(grids) + [g * g for g in grids]
    terms += [grids[i] * grids[j] for i in range(len(grids)) for j in range(i + 1, len(grids))]
    coef = rng.normal(0.0, 1.0, len(terms))
    p = sum(c * t for c, t in zip(coef, terms))
    p = p - p.mean()
    p = p / (np.abs(p).max() or 1.0)
    return np.exp(BIAS_AMPLITUDE[severity] * p)


def add_bias_field(volume: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Multiply by a smooth field spanning about exp(+-BIAS_AMPLITUDE[severity])."""
    v = _check(volume, severity)
    if severity == 0:
        return v.copy()
    return v * bias_field(v.shape, severity, rng)


DEGRADATIONS = {
    "noise": add_noise,
    "ghosting": add_ghosting,
    "blur": add_blur,
    "bias": add_bias_field,
}


def degrade(volume: np.ndarray, kind: str | None, severity: int, rng: np.random.Generator, **kw) -> np.ndarray:
    """Apply the named degradation (None or severity 0: unchanged copy)."""
    if kind is None or severity == 0:
        return np.asarray(volume, dtype=np.float64).copy()
    fn = DEGRADATIONS[kind]
    return fn(volume, severity, rng, **kw) if kw else fn(volume, severity, rng)


# -- Defects of the other modalities (issue 11, point 7) ------------------------------------------------
# Each acts on the modality's own quantity (CT: Hounsfield units; projection radiographs: the display
# fraction 0..1 before quantum noise; ultrasound: echo amplitude before log-compression clipping) and
# grades 1..5. The synthetic site records {"type", "severity", ...parameters} in the series' ground truth.

CT_DEFECTS = ("low_mas", "streaks", "rings", "truncation")
XR_DEFECTS = ("underexposure", "overexposure", "collimation", "grid_lines", "motion_blur")
US_DEFECTS = ("gain_saturation", "dropout", "reverberation")

#: Tube-current-time product as a fraction of the routine protocol's. Quantum noise in HU scales as
#: 1/sqrt(mAs): a quarter of the dose doubles the noise.
CT_MAS_FRACTION = {1: 0.4, 2: 0.16, 3: 0.08, 4: 0.04, 5: 0.02}
#: Peak amplitude (HU) of the streaks radiating from metal (beam hardening and photon starvation).
CT_STREAK_HU = {1: 40.0, 2: 90.0, 3: 160.0, 4: 280.0, 5: 450.0}
#: Peak amplitude (HU) and number of the rings of miscalibrated detector channels.
CT_RING_HU = {1: 12.0, 2: 25.0, 3: 45.0, 4: 80.0, 5: 130.0}
CT_RING_COUNT = {1: 2, 2: 3, 3: 4, 4: 5, 5: 6}
#: Reconstructed field of view as a fraction of the body's largest in-plane extent (< 1: the body is cut).
CT_TRUNCATION_FOV = {1: 0.96, 2: 0.88, 3: 0.8, 4: 0.72, 5: 0.62}
#: Relative detector dose of an under- / over-exposed radiograph (1 = the target exposure).
XR_UNDER_DOSE = {1: 0.6, 2: 0.35, 3: 0.2, 4: 0.1, 5: 0.05}
XR_OVER_DOSE = {1: 1.7, 2: 3.0, 3: 5.0, 4: 9.0, 5: 16.0}
#: Display shift per halving of the dose (fraction of the range; the film-like curve has no auto-ranging).
XR_SHIFT_PER_STOP = 0.12
#: Fraction of the body's width the collimator blades cut into (from the side; top blade from 3 up).
XR_COLLIMATION_CUT = {1: 0.04, 2: 0.1, 3: 0.16, 4: 0.22, 5: 0.3}
#: Amplitude (fraction of the display range) of the stationary-grid line pattern.
XR_GRID_AMPLITUDE = {1: 0.006, 2: 0.012, 3: 0.02, 4: 0.035, 5: 0.06}
#: Patient motion during the exposure (mm, a straight path, craniocaudal within 25 degrees).
XR_MOTION_MM = {1: 4.0, 2: 8.0, 3: 13.0, 4: 20.0, 5: 30.0}
#: Receive gain (x the routine gain) before the 8-bit clip.
US_GAIN = {1: 1.5, 2: 2.0, 3: 2.6, 4: 3.3, 5: 4.2}
#: Echo left in an acoustic shadow (fraction) and the number of shadows.
US_DROPOUT_LEFT = {1: 0.55, 2: 0.35, 3: 0.2, 4: 0.1, 5: 0.03}
US_DROPOUT_COUNT = {1: 1, 2: 1, 3: 2, 4: 2, 5: 3}
#: Echo amplitude (grey levels) of the first reverberation band (later ones decay).
US_REVERB_AMPLITUDE = {1: 20.0, 2: 40.0, 3: 65.0, 4: 95.0, 5: 140.0}


def _check_2d(image: np.ndarray, severity: int) -> np.ndarray:
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be 1..5, got {severity}")
    return np.asarray(image, dtype=np.float64)


def ct_low_mas(hu: np.ndarray, severity: int, rng: np.random.Generator, routine_noise_hu: float) -> tuple[np.ndarray, dict]:
    """The image a scan at CT_MAS_FRACTION of the routine mAs gives: quantum noise of
    routine_noise_hu / sqrt(fraction) in all, i.e. sqrt(1/f - 1) x routine noise added."""
    v = _check(hu, severity)
    f = CT_MAS_FRACTION[severity]
    extra = routine_noise_hu * math.sqrt(1.0 / f - 1.0)
    return v + rng.normal(0.0, extra, v.shape), {"mas_fraction": f,
                                                 "noise_hu": round(routine_noise_hu / math.sqrt(f), 2)}


def _line_distance(yy: np.ndarray, xx: np.ndarray, centre: tuple[float, float], angle: float) -> np.ndarray:
    return np.abs(-(yy - centre[0]) * math.cos(angle) + (xx - centre[1]) * math.sin(angle))


def ct_streaks(hu: np.ndarray, severity: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Metal streaks: two small metal inserts (3000 HU) in a slab of slices, thin bright and dark lines
    radiating from each across the whole field, and a dark band joining them (photon starvation)."""
    v = _check(hu, severity).copy()
    if v.ndim == 2:
        v = v[None]
    n, rows, cols = v.shape
    mid = v[n // 2]
    inside = np.argwhere(mid > -200)
    rr, cc = inside[:, 0], inside[:, 1]
    core = inside[(rr > rr.min() + 0.25 * np.ptp(rr)) & (rr < rr.max() - 0.25 * np.ptp(rr))
                  & (cc > cc.min() + 0.25 * np.ptp(cc)) & (cc < cc.max() - 0.25 * np.ptp(cc))]
    metals = [tuple(float(x) for x in core[int(rng.integers(len(core)))]) for _ in range(2)]
    amp = CT_STREAK_HU[severity]
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float64)
    pattern = np.zeros((rows, cols))
    width = 0.8 + 0.004 * max(rows, cols)
    for m in metals:
        for k in range(6 + 2 * severity):
            a = float(rng.uniform(0.0, np.pi))
            sign = 1.0 if k % 2 == 0 else -1.0
            pattern += sign * amp * float(rng.uniform(0.5, 1.0)) * np.exp(-0.5 * (_line_distance(yy, xx, m, a) / width) ** 2)
    (y0, x0), (y1, x1) = metals
    joint = math.atan2(x1 - x0, y1 - y0)
    pattern -= amp * np.exp(-0.5 * (_line_distance(yy, xx, metals[0], joint) / (1.5 * width)) ** 2)
    metal = np.zeros((rows, cols), bool)
    for m in metals:
        metal |= np.hypot(yy - m[0], xx - m[1]) <= max(1.5, 0.008 * rows)
    half = max(1, n // 6)
    slab = range(max(0, n // 2 - half), min(n, n // 2 + half + 1))
    for k in slab:
        v[k] = np.where(metal, 3000.0, v[k] + pattern)
    out = v if np.asarray(hu).ndim == 3 else v[0]
    return out, {"metal_rc": [[round(m[0], 1), round(m[1], 1)] for m in metals], "slices": [slab.start, slab.stop - 1],
                 "amplitude_hu": amp}


def ct_rings(hu: np.ndarray, severity: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Ring artifacts: concentric thin rings about the isocentre (the image centre) of alternating
    sign, in every slice (a miscalibrated detector channel traces a circle in every rotation)."""
    v = _check(hu, severity)
    rows, cols = v.shape[-2:]
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float64)
    r = np.hypot(yy - (rows - 1) / 2.0, xx - (cols - 1) / 2.0)
    half = min(rows, cols) / 2.0
    radii = np.sort(rng.uniform(0.1 * half, 0.75 * half, CT_RING_COUNT[severity]))
    amp = CT_RING_HU[severity]
    width = 0.7 + 0.002 * min(rows, cols)
    rings = sum((1.0 if i % 2 == 0 else -1.0) * amp * np.exp(-0.5 * ((r - ri) / width) ** 2) for i, ri in enumerate(radii))
    return v + rings, {"radii_px": [round(float(x), 1) for x in radii], "amplitude_hu": amp}


def xr_exposure(display: np.ndarray, dose: float, noise_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A radiograph's display fraction at `dose` x the target exposure: the film-like curve shifts by
    XR_SHIFT_PER_STOP per halving (brighter when under-exposed, darker and burnt out when over-exposed)
    and quantum noise grows as 1/sqrt(dose) (the extra noise beyond the image's own is added here)."""
    v = np.asarray(display, dtype=np.float64) - XR_SHIFT_PER_STOP * math.log2(dose)
    extra = noise_fraction * math.sqrt(max(1.0 / dose - 1.0, 0.0))
    return v + rng.normal(0.0, extra, v.shape) if extra > 0 else v


def xr_collimation(shape: tuple[int, int], severity: int, body_cols: tuple[int, int], body_rows: tuple[int, int],
                   rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """The collimated (exposed) field as a boolean mask: one lateral blade cuts XR_COLLIMATION_CUT of the
    body's width (both sides from severity 4), the top blade cuts into the body from severity 3."""
    rows, cols = shape
    width = body_cols[1] - body_cols[0]
    cut = int(round(XR_COLLIMATION_CUT[severity] * width))
    field = np.ones(shape, bool)
    left = bool(rng.integers(2))
    blades = {}
    if left or severity >= 4:
        field[:, : body_cols[0] + cut] = False
        blades["left"] = body_cols[0] + cut
    if not left or severity >= 4:
        field[:, body_cols[1] - cut:] = False
        blades["right"] = body_cols[1] - cut
    if severity >= 3:
        top = body_rows[0] + int(round(0.5 * XR_COLLIMATION_CUT[severity] * (body_rows[1] - body_rows[0])))
        field[:top] = False
        blades["top"] = top
    return field, {"blades_px": blades}


def xr_grid_lines(shape: tuple[int, int], severity: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """The additive display pattern of a stationary anti-scatter grid: lines along the columns with a
    period of 2.5-4.5 pixels (the grid frequency aliased by the detector's sampling)."""
    period = float(rng.uniform(2.5, 4.5))
    phase = float(rng.uniform(0.0, 2 * np.pi))
    x = np.arange(shape[1], dtype=np.float64)
    line = XR_GRID_AMPLITUDE[severity] * np.sin(2 * np.pi * x / period + phase)
    return np.broadcast_to(line, shape).copy(), {"period_px": round(period, 3)}


def xr_motion_blur(display: np.ndarray, severity: int, pixel_mm: float, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Motion during the exposure: the image averaged along a straight path of XR_MOTION_MM (a line
    kernel), before the detector adds its quantum noise. The path is craniocaudal within 25 degrees
    (breathing moves the diaphragm and ribs up and down; a chest PA image's rows run head to feet)."""
    v = _check_2d(display, severity)
    length = max(2.0, XR_MOTION_MM[severity] / pixel_mm)
    angle = float(rng.uniform(np.deg2rad(65.0), np.deg2rad(115.0)))
    size = int(math.ceil(length)) | 1
    kernel = np.zeros((size, size), np.float32)
    c = size // 2
    for t in np.linspace(-length / 2, length / 2, 4 * size):
        kernel[int(round(c + t * math.sin(angle))), int(round(c + t * math.cos(angle)))] = 1.0
    kernel /= kernel.sum()
    import cv2

    out = cv2.filter2D(v.astype(np.float32), cv2.CV_32F, kernel, borderType=cv2.BORDER_REPLICATE)
    return out.astype(np.float64), {"length_px": round(length, 2), "angle_deg": round(math.degrees(angle), 1)}


def us_dropout(echo: np.ndarray, severity: int, apex: tuple[float, float], half_angle: float,
               rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Acoustic shadows: beams (2.5-4 degrees wide) below a strong reflector keep US_DROPOUT_LEFT of
    their echo from a random depth down."""
    v = _check_2d(echo, severity)
    rows, cols = v.shape
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float64)
    r = np.hypot(yy - apex[0], xx - apex[1])
    ang = np.arctan2(xx - apex[1], yy - apex[0])
    gain = np.ones_like(v)
    shadows = []
    for _ in range(US_DROPOUT_COUNT[severity]):
        centre = float(rng.uniform(-0.7, 0.7)) * half_angle
        w = np.deg2rad(float(rng.uniform(2.5, 4.0))) / 2
        start = float(rng.uniform(0.15, 0.35)) * rows
        gain[(np.abs(ang - centre) < w) & (r > start)] = US_DROPOUT_LEFT[severity]
        shadows.append({"angle_deg": round(math.degrees(centre), 2), "from_px": round(start, 1)})
    return v * gain, {"shadows": shadows}


def us_reverberation(echo: np.ndarray, severity: int, apex: tuple[float, float], start: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Reverberation: echoes bouncing between the probe and a strong near-field reflector, seen as
    bands at equal depth steps (arcs about the apex) that fade with each bounce; speckled like echo."""
    v = _check_2d(echo, severity)
    rows, cols = v.shape
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float64)
    r = np.hypot(yy - apex[0], xx - apex[1])
    step = float(rng.uniform(18.0, 30.0))
    first = start + float(rng.uniform(8.0, 20.0))
    bands = np.zeros_like(v)
    for k in range(6):
        bands += US_REVERB_AMPLITUDE[severity] * math.exp(-k / 3.0) * np.exp(-0.5 * ((r - first - k * step) / 2.0) ** 2)
    speckle = rng.rayleigh(0.5, v.shape) / (0.5 * math.sqrt(math.pi / 2))
    return v + bands * speckle, {"step_px": round(step, 2), "first_px": round(first, 2)}


# -- Defects of diffusion, ADC and dynamic contrast series (issue 19) -----------------------------------
# DWI: "noise" (NOISE_SIGMA, on every b-value), "ghosting" (EPI Nyquist ghost), "dropout" (slices of a
# diffusion-weighted volume losing signal); ADC: "scale" (range off: a fit with the wrong b-value or
# units), "noise" (the map fitted from noisy images: the noise floor biases high diffusivities down);
# DCE: "drift" (unstable baseline: the receive gain changes from phase to phase), "uptake" (implausible
# enhancement curve: a failed or extravasated injection), "motion" (the head moves between phases).

DWI_DEFECTS = ("noise", "ghosting", "dropout")
ADC_DEFECTS = ("scale", "noise")
DCE_DEFECTS = ("drift", "uptake", "motion")
#: Amplitude of the N/2 (Nyquist) ghost of an EPI read-out as a fraction of the object (odd/even
#: echo phase error phi: ghost amplitude sin(phi / 2)); a well-tuned scanner keeps it under about 2 %.
EPI_GHOST_FRACTION = {1: 0.04, 2: 0.07, 3: 0.11, 4: 0.16, 5: 0.24}
#: Signal lost in the affected slices of one diffusion-weighted volume (bulk motion during the
#: diffusion encoding dephases the whole slice) and how many slices lose it.
DWI_DROPOUT_LOSS = {1: 0.2, 2: 0.35, 3: 0.5, 4: 0.65, 5: 0.8}
DWI_DROPOUT_SLICES = {1: 1, 2: 1, 3: 2, 4: 2, 5: 3}
#: Factor between the stored ADC and the true one (up or down, drawn): a fit with a wrong b-value or a
#: wrong rescale moves every diffusivity by it.
ADC_SCALE = {1: 1.1, 2: 1.22, 3: 1.4, 4: 1.7, 5: 2.2}
#: Peak-to-peak gain change between the phases of a dynamic series (fraction).
DCE_DRIFT = {1: 0.03, 2: 0.06, 3: 0.09, 4: 0.13, 5: 0.2}
#: Fraction of the expected contrast uptake that reaches the tissue (failed or extravasated bolus); even
#: severity 1 stays below the spread of clean series (synth.acquisitions.DCE_UPTAKE_SPREAD, 0.85-1.15).
DCE_UPTAKE_LEFT = {1: 0.65, 2: 0.5, 3: 0.3, 4: 0.15, 5: 0.05}
#: A move between two phases beyond the routine jitter: translation (mm) and rotation (degrees).
DCE_MOTION_MM = {1: 7.0, 2: 10.0, 3: 14.0, 4: 19.0, 5: 26.0}
DCE_MOTION_DEG = {1: 3.0, 2: 4.0, 3: 6.0, 4: 8.0, 5: 11.0}


def epi_nyquist_ghost(volume: np.ndarray, severity: int, phase_axis: int = -2) -> np.ndarray:
    """The N/2 ghost of an EPI read-out: odd k-space lines along the phase-encode axis carry a phase
    error phi (odd/even echo misalignment); the magnitude image holds the object times cos(phi/2)
    and its copy shifted by half the field of view times sin(phi/2)."""
    v = _check(volume, severity)
    if severity == 0:
        return v.copy()
    axis = phase_axis % v.ndim
    n = v.shape[axis]
    phi = 2.0 * math.asin(EPI_GHOST_FRACTION[severity])
    shape = [1] * v.ndim
    shape[axis] = n
    line = np.where(np.arange(n) % 2 == 1, np.exp(1j * phi), 1.0).reshape(shape)
    k = np.fft.fftshift(np.fft.fft(np.fft.ifftshift(v, axes=axis), axis=axis), axes=axis)
    img = np.fft.fftshift(np.fft.ifft(np.fft.ifftshift(k * line, axes=axis), axis=axis), axes=axis)
    return np.abs(img)


def diffusion_dropout(volume: np.ndarray, severity: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """One diffusion-weighted volume with DWI_DROPOUT_SLICES of its middle slices keeping
    1 - DWI_DROPOUT_LOSS of their signal."""
    v = _check(volume, severity).copy()
    n = v.shape[0]
    lo, hi = n // 4, max(n // 4 + 1, 3 * n // 4)
    slices = sorted(int(s) for s in rng.choice(np.arange(lo, hi), size=min(DWI_DROPOUT_SLICES[severity], hi - lo),
                                               replace=False))
    v[slices] *= 1.0 - DWI_DROPOUT_LOSS[severity]
    return v, {"slices": slices, "loss": DWI_DROPOUT_LOSS[severity]}


def dce_phase_gains(n_phases: int, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Receive gain per phase (phase 0: 1) of an unstable dynamic series: steps of about
    DCE_DRIFT[severity] peak to peak, alternating in sign so that a baseline of a few phases shows it."""
    a = DCE_DRIFT[severity]
    sign = np.where(np.arange(n_phases) % 2 == 0, 1.0, -1.0)
    g = 1.0 + 0.5 * a * sign * rng.uniform(0.6, 1.0, n_phases)
    return g / g[0]
