"""Phantom volumes for the quality tests: the synthetic site's head phantom with each vendor's
protocol physics, degraded by the site's own defect functions at severities 0..5."""
from __future__ import annotations

import zlib
from functools import lru_cache

import numpy as np

from synth import degrade as dg
from synth.mr import signal_of
from synth.mr_protocols import PROTOCOLS
from synth.phantom import head_labels

SHAPE = (24, 128, 128)
SPACING = (6.0, 1.875, 1.875)
VENDORS = ("siemens", "ge", "philips")
KINDS = ("T1W", "T2W", "FLAIR", "PDW", "SWI")
DEGRADATIONS = ("noise", "ghosting", "blur", "bias")


@lru_cache(maxsize=2)
def labels(shape=SHAPE, spacing=SPACING) -> np.ndarray:
    return head_labels(shape, spacing)


def seed_of(*parts) -> int:
    """A seed that does not depend on Python's per-process string hashing."""
    return zlib.crc32("/".join(map(str, parts)).encode())


def clean_signal(vendor: str, kind: str, shape=SHAPE, spacing=SPACING) -> np.ndarray:
    return signal_of(PROTOCOLS[vendor][kind], labels(shape, spacing))


def degraded(vendor: str, kind: str, degradation: str | None, severity: int, shape=SHAPE, spacing=SPACING) -> np.ndarray:
    """Stored-like volume (uint12 range, float32): the site's recipe -- defect, then the baseline
    Rician noise (noise defects replace it by the stronger one). One defect instance per degradation
    (the ghost period/phase and the bias-field shape are drawn from a seed of the degradation alone),
    the same at every severity and in every series, so that a severity is one physical defect across
    the whole set while its amplitude grows; the noise draws are seeded per series."""
    clean = clean_signal(vendor, kind, shape, spacing)
    ref = float(np.percentile(clean, 99))
    v = clean
    if degradation in ("ghosting", "blur", "bias") and severity:
        v = dg.degrade(clean, degradation, severity, np.random.default_rng(seed_of(degradation)))
    sigma = dg.NOISE_SIGMA[severity] if degradation == "noise" and severity else dg.BASELINE_NOISE_SIGMA
    v = dg.rician_noise(v, sigma * ref, np.random.default_rng(seed_of(vendor, kind, degradation)))
    return np.clip(np.rint(v * 2000.0 / clean.max()), 0, 4095).astype(np.float32)
