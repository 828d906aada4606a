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
