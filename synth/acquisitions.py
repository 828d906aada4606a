"""A distribution of MR acquisition settings (opt-in; the site's defaults do not use it): matrices
96-512, slice thickness 1-6 mm, 1.5 T and 3 T, 2D and 3D, for training and judging quality decisions
that must hold on protocols they never saw (issue 19).

Physics kept (textbook, not tuned):
- field strength: tissue T1 grows with B0, about T1 ~ B0^0.35 (Rooney et al. 2007, MRM 57:308; the
  phantom's values are 1.5 T ones); T2 barely changes. SNR grows about linearly with B0, and routine
  1.5 T protocols buy part of it back with 2 averages: noise sigma x 2 / sqrt(2) at 1.5 T;
- 2D acquisitions leave a 10 % slice gap, 3D ones none;
- the in-plane blur, ghost and bias defects act in voxels, as the site's do (`synth.degrade`).
Volumes are slabs through the head centre (at most SLAB_VOXELS voxels), not whole heads, so a 512
matrix stays cheap to make and to measure.

Held-back settings (HELDOUT_MATRICES x HELDOUT_SLICE_MM, both fields) are never drawn for training.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

from curation.vocabulary import SeriesKind
from synth import degrade as dg
from synth.geometry import centred_stack
from synth.identity import rng_for
from synth.mr import FOV, PEAK_STORED, sample_labels, signal_of, to_stored
from synth.mr_protocols import PROTOCOLS
from synth.phantom import MR_TISSUES, MRTissue

TRAIN_MATRICES = (96, 128, 192, 256, 384, 512)
HELDOUT_MATRICES = (160, 320)
TRAIN_SLICE_MM = (1.0, 2.0, 3.0, 5.0, 6.0)
HELDOUT_SLICE_MM = (1.5, 4.0)
FIELDS_T = (1.5, 3.0)
#: Voxels of a slab, at most (but never fewer than MIN_SLICES slices): cheap to make and measure.
SLAB_VOXELS = 1_600_000
MIN_SLICES, MAX_SLICES = 8, 40
#: T1 ~ B0^0.35 (Rooney 2007); the phantom's relaxation times are 1.5 T values.
T1_FIELD_EXPONENT = 0.35
STRUCTURAL = (SeriesKind.T1W, SeriesKind.T2W, SeriesKind.FLAIR, SeriesKind.PDW, SeriesKind.SWI)
VENDOR_KEYS = ("siemens", "ge", "philips")


@dataclass(frozen=True)
class Setting:
    """One acquisition: matrix (square, FOV 240 mm), slice thickness (mm), field (T), 3D or 2D."""

    matrix: int
    slice_mm: float
    field_t: float
    three_d: bool

    @property
    def pixel_mm(self) -> float:
        return FOV / self.matrix

    @property
    def averages(self) -> int:
        return 2 if self.field_t < 2.0 else 1

    @property
    def noise_factor(self) -> float:
        """Noise sigma relative to the site's 3 T-like baseline: SNR ~ B0 sqrt(averages)."""
        return (3.0 / self.field_t) / math.sqrt(self.averages)

    def slices(self) -> int:
        """Slices of the slab: within SLAB_VOXELS, and no more than the head's 150 mm needs."""
        fit = SLAB_VOXELS // (self.matrix * self.matrix)
        head = round(150.0 / self.slice_mm)
        return int(max(MIN_SLICES, min(MAX_SLICES, fit, head)))


def settings(split: str, n: int, seed: int) -> list[Setting]:
    """`n` settings drawn (seeded) from the training grid ("train") or the held-back one ("heldout"):
    matrices and slice thicknesses of one split never occur in the other."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be train or heldout, got {split!r}")
    matrices, slices = (TRAIN_MATRICES, TRAIN_SLICE_MM) if split == "train" else (HELDOUT_MATRICES, HELDOUT_SLICE_MM)
    rng = rng_for("acquisitions", split, seed)
    grid = [(m, s, f) for m in matrices for s in slices for f in FIELDS_T]
    order = rng.permutation(len(grid))
    out = []
    for i in range(n):
        m, s, f = grid[int(order[i % len(grid)])]
        out.append(Setting(m, s, f, bool(rng.integers(0, 2))))
    return out


def tissues_at(field_t: float, base: dict | None = None) -> dict:
    """The phantom's tissues (1.5 T values) with T1 scaled to `field_t`."""
    k = (field_t / 1.5) ** T1_FIELD_EXPONENT
    return {t: MRTissue(t1=p.t1 * k, t2=p.t2, pd=p.pd, t2star=p.t2star) for t, p in (base or MR_TISSUES).items()}


def _geometry(plane: str, setting: Setting):
    n = setting.slices()
    gap = 0.0 if setting.three_d else 0.1
    spacing_mm = setting.slice_mm / (1.0 - gap)
    return centred_stack(plane, setting.matrix, FOV, n, n * spacing_mm, gap_fraction=gap, centre=(0.0, 0.0, 4.0))


@lru_cache(maxsize=4)
def _labels(plane: str, setting: Setting, head_scale: float) -> np.ndarray:
    """Phantom labels of a slab (the costly part at 512 x 512): shared by every kind and defect."""
    labels = sample_labels(_geometry(plane, setting), head_scale)
    labels.setflags(write=False)
    return labels


def structural_volume(kind: str, setting: Setting, seed: int, vendor: str = "siemens",
                      defect: tuple[str, int] | None = None, head_scale: float = 1.0
                      ) -> tuple[np.ndarray, tuple[float, float, float], dict]:
    """(stored volume (z, y, x) as float32 integers, spacing (z, y, x) mm, acquisition facts) of one
    structural series of `kind` at `setting`, clean or with `defect` = (type, severity); seeded by
    (seed, kind, vendor, setting, defect)."""
    p = PROTOCOLS[vendor][kind]
    geom = _geometry(p.plane, setting)
    labels = _labels(p.plane, setting, head_scale)
    clean = signal_of(p, labels, tissues_at(setting.field_t))
    scale = PEAK_STORED / max(clean.max(), 1e-9)
    rng = rng_for("acquisitions", seed, kind, vendor, *asdict(setting).values(), *(defect or ()))
    d_type, severity = defect or (None, 0)
    vol = clean
    if d_type in ("ghosting", "blur", "bias"):
        kw = {"phase_axis": -2 if p.phase_dir == "COL" else -1} if d_type == "ghosting" else {}
        vol = dg.degrade(vol, d_type, severity, rng, **kw)
    ref = float(np.percentile(clean, 99))
    vol = dg.rician_noise(vol, dg.BASELINE_NOISE_SIGMA * setting.noise_factor * ref, rng)
    if d_type == "noise":
        vol = dg.rician_noise(clean, max(dg.NOISE_SIGMA[severity], dg.BASELINE_NOISE_SIGMA * setting.noise_factor)
                              * ref, rng)
    stored = to_stored(vol, scale).astype(np.float32)
    facts = {"pixel_mm": setting.pixel_mm, "slice_mm": setting.slice_mm, "field_t": setting.field_t,
             "three_d": int(setting.three_d), "averages": setting.averages, "matrix": setting.matrix}
    return stored, (float(geom.slice_spacing), float(geom.row_spacing), float(geom.col_spacing)), facts
