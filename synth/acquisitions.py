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

DWI, ADC and DCE (`diffusion_series`, `adc_map_volume`, `dce_series`) use the 4D grid (FOUR_D_*
matrices: EPI and dynamic read-outs are coarser) and cover the whole head in at most MAX_4D_SLICES
slices, as the site's 4D series do, with the site's routine inter-volume jitter (3 degrees, 4 mm);
their defects are synth.degrade's DWI_DEFECTS, ADC_DEFECTS and DCE_DEFECTS.
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
from synth.motion import VolumeMotion, random_motions
from synth.mr import B_VALUE, DCE_CURVE, DWI_DIRECTIONS, FOV, PEAK_STORED, sample_labels, signal_of, to_stored
from synth.mr_protocols import PROTOCOLS
from synth.phantom import MR_TISSUES, MRTissue, adc_map, contrast_tissues

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
#: The 4D kinds' matrices (EPI and dynamic read-outs are coarser); slice grids as above.
FOUR_D_TRAIN_MATRICES = (64, 96, 128, 192, 256)
FOUR_D_HELDOUT_MATRICES = (112, 160)
MAX_4D_SLICES = 16
HEAD_MM = 150.0
#: The site's routine inter-volume jitter (synth.mr.MROptions): clean 4D series move this much.
JITTER_DEG, JITTER_MM = 3.0, 4.0
#: Pre-contrast phases of a dynamic series before the site's curve (synth.mr.DCE_CURVE) rises.
DCE_BASELINE_PHASES = 3
#: Spread of a clean series' contrast uptake around the site's curve (fraction, uniform).
DCE_UPTAKE_SPREAD = 0.15
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


def settings(split: str, n: int, seed: int, four_d: bool = False) -> list[Setting]:
    """`n` settings drawn (seeded) from the training grid ("train") or the held-back one ("heldout"):
    matrices and slice thicknesses of one split never occur in the other. `four_d`: the 4D kinds' grid."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be train or heldout, got {split!r}")
    matrices, slices = (TRAIN_MATRICES, TRAIN_SLICE_MM) if split == "train" else (HELDOUT_MATRICES, HELDOUT_SLICE_MM)
    if four_d:
        matrices = FOUR_D_TRAIN_MATRICES if split == "train" else FOUR_D_HELDOUT_MATRICES
    rng = rng_for("acquisitions", split, seed, *(("4d",) if four_d else ()))
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


# -- DWI, ADC, DCE (issue 19) ------------------------------------------------------------------------------

def _geometry_4d(plane: str, setting: Setting):
    """The whole head in at most MAX_4D_SLICES slices of `slice_mm` (the rest is gap, as in the site)."""
    gap = 0.0 if setting.three_d else 0.1
    spacing_mm = max(setting.slice_mm / (1.0 - gap), HEAD_MM / MAX_4D_SLICES)
    n = int(max(MIN_SLICES, min(MAX_4D_SLICES, round(HEAD_MM / spacing_mm))))
    return centred_stack(plane, setting.matrix, FOV, n, n * spacing_mm, gap_fraction=1.0 - setting.slice_mm / spacing_mm,
                         centre=(0.0, 0.0, 4.0))


def _facts(setting: Setting, geom) -> dict:
    return {"pixel_mm": setting.pixel_mm, "slice_mm": setting.slice_mm, "field_t": setting.field_t,
            "three_d": int(setting.three_d), "averages": setting.averages, "matrix": setting.matrix}


def _spacing(geom) -> tuple[float, float, float]:
    return float(geom.slice_spacing), float(geom.row_spacing), float(geom.col_spacing)


def _rng(kind: str, setting: Setting, seed: int, vendor: str, defect: tuple[str, int] | None) -> np.random.Generator:
    return rng_for("acquisitions", seed, kind, vendor, *asdict(setting).values(), *(defect or ()))


def _noise_fraction(setting: Setting, defect: tuple[str, int] | None) -> float:
    base = dg.BASELINE_NOISE_SIGMA * setting.noise_factor
    return max(dg.NOISE_SIGMA[defect[1]], base) if defect and defect[0] == "noise" else base


def diffusion_series(setting: Setting, seed: int, vendor: str = "siemens", defect: tuple[str, int] | None = None,
                     head_scale: float = 1.0) -> tuple[np.ndarray, tuple[float, float, float], list[float], dict]:
    """(frames (volume, z, y, x) stored, spacing, b-value per volume, facts) of a DWI series as the
    site writes it (b=0 and three directions at b=B_VALUE), moved by the routine jitter, clean or
    with a DWI defect: noise (every b-value), ghosting (EPI Nyquist ghost), dropout (slices of one
    diffusion-weighted volume)."""
    p = PROTOCOLS[vendor][SeriesKind.DWI]
    geom = _geometry_4d(p.plane, setting)
    rng = _rng(SeriesKind.DWI, setting, seed, vendor, defect)
    tissues = tissues_at(setting.field_t)
    b_values = [0.0] + [B_VALUE] * len(DWI_DIRECTIONS)
    motions = random_motions(len(b_values), rng, JITTER_DEG, JITTER_MM)
    ref_labels = sample_labels(geom, head_scale)
    s0_ref = signal_of(p, ref_labels, tissues)
    scale = PEAK_STORED / max(s0_ref.max(), 1e-9)
    sigma = _noise_fraction(setting, defect) * float(np.percentile(s0_ref, 99))
    d_type, severity = defect or (None, 0)
    dropped = int(rng.integers(1, len(b_values))) if d_type == "dropout" else -1
    frames = []
    for v, (b, motion) in enumerate(zip(b_values, motions)):
        labels = ref_labels if v == 0 else sample_labels(geom, head_scale, motion)
        s = signal_of(p, labels, tissues) * np.exp(-b * adc_map(labels))
        if d_type == "ghosting":
            s = dg.epi_nyquist_ghost(s, severity, phase_axis=-2 if p.phase_dir == "COL" else -1)
        elif v == dropped:
            s, _ = dg.diffusion_dropout(s, severity, rng)
        frames.append(to_stored(dg.rician_noise(s, sigma, rng), scale).astype(np.float32))
    return np.stack(frames), _spacing(geom), b_values, _facts(setting, geom)


def adc_map_volume(setting: Setting, seed: int, vendor: str = "siemens", defect: tuple[str, int] | None = None,
                   head_scale: float = 1.0) -> tuple[np.ndarray, tuple[float, float, float], dict]:
    """(stored ADC map in 10^-6 mm^2/s, spacing, facts): fitted from a b=0 and a b=B_VALUE image with
    the series' noise (ADC = ln(S0 / Sb) / b), air set to a small |noise| as the vendors' maps have
    it; defects: scale (every value x or / ADC_SCALE[severity]), noise (the source images' noise at
    NOISE_SIGMA[severity]: a noisy map whose high diffusivities sink toward the noise floor)."""
    p = PROTOCOLS[vendor][SeriesKind.DWI]
    geom = _geometry_4d(p.plane, setting)
    rng = _rng(SeriesKind.ADC, setting, seed, vendor, defect)
    labels = sample_labels(geom, head_scale)
    s0 = signal_of(p, labels, tissues_at(setting.field_t))
    ref = float(np.percentile(s0, 99))
    sigma = _noise_fraction(setting, defect) * ref
    n0 = dg.rician_noise(s0, sigma, rng)
    nb = dg.rician_noise(s0 * np.exp(-B_VALUE * adc_map(labels)), sigma, rng)
    floor = 1e-6 * ref
    adc = np.log(np.maximum(n0, floor) / np.maximum(nb, floor)) / B_VALUE
    adc = np.clip(adc, 0.0, 4.0e-3)
    if defect and defect[0] == "scale":
        factor = dg.ADC_SCALE[defect[1]]
        adc = adc * (factor if rng.integers(0, 2) else 1.0 / factor)
    adc = np.where(n0 > 0.1 * ref, adc, np.abs(rng.normal(0.0, 5e-6, adc.shape)))
    stored = np.clip(np.rint(adc * 1e6), 0, 4095).astype(np.float32)
    return stored, _spacing(geom), _facts(setting, geom)


def _moved(m: VolumeMotion, rot: np.ndarray, tra: np.ndarray) -> VolumeMotion:
    return VolumeMotion(m.volume, tuple(float(a + b) for a, b in zip(m.rotation_deg, rot)),  # type: ignore[arg-type]
                        tuple(float(a + b) for a, b in zip(m.translation_mm, tra)))  # type: ignore[arg-type]


def dce_series(setting: Setting, seed: int, vendor: str = "siemens", defect: tuple[str, int] | None = None,
               head_scale: float = 1.0) -> tuple[np.ndarray, tuple[float, float, float], dict]:
    """(frames (phase, z, y, x) stored, spacing, facts) of a dynamic contrast series: DCE_BASELINE_PHASES
    pre-contrast phases, then the site's curve, with the routine jitter; defects: drift (gain changing
    between phases), uptake (DCE_UPTAKE_LEFT of the contrast reaches the tissue), motion (from a drawn
    phase on, the head stays moved by DCE_MOTION_MM / DCE_MOTION_DEG in a drawn direction)."""
    p = PROTOCOLS[vendor][SeriesKind.DCE]
    geom = _geometry_4d(p.plane, setting)
    rng = _rng(SeriesKind.DCE, setting, seed, vendor, defect)
    curve = (0.0,) * (DCE_BASELINE_PHASES - 1) + tuple(DCE_CURVE)
    motions = random_motions(len(curve), rng, JITTER_DEG, JITTER_MM)
    d_type, severity = defect or (None, 0)
    if d_type == "motion":
        start = int(rng.integers(1, len(curve)))
        direction = rng.normal(0.0, 1.0, 3)
        axis = rng.normal(0.0, 1.0, 3)
        tra = dg.DCE_MOTION_MM[severity] * direction / np.linalg.norm(direction)
        rot = dg.DCE_MOTION_DEG[severity] * axis / np.linalg.norm(axis)
        motions = [_moved(m, rot, tra) if i >= start else m for i, m in enumerate(motions)]
    gains = dg.dce_phase_gains(len(curve), severity, rng) if d_type == "drift" else np.ones(len(curve))
    # patients take up the same dose differently (cardiac output, weight): +-DCE_UPTAKE_SPREAD
    uptake = float(rng.uniform(1.0 - DCE_UPTAKE_SPREAD, 1.0 + DCE_UPTAKE_SPREAD))
    uptake *= dg.DCE_UPTAKE_LEFT[severity] if d_type == "uptake" else 1.0
    ref_labels = sample_labels(geom, head_scale)
    peak = signal_of(p, ref_labels, tissues_at(setting.field_t, contrast_tissues(1.0)))
    scale = PEAK_STORED / max(peak.max(), 1e-9)
    base = signal_of(p, ref_labels, tissues_at(setting.field_t))
    sigma = _noise_fraction(setting, defect) * float(np.percentile(base, 99))
    frames = []
    for i, (frac, motion) in enumerate(zip(curve, motions)):
        labels = ref_labels if i == 0 else sample_labels(geom, head_scale, motion)
        s = signal_of(p, labels, tissues_at(setting.field_t, contrast_tissues(frac * uptake))) * gains[i]
        frames.append(to_stored(dg.rician_noise(s, sigma, rng), scale).astype(np.float32))
    return np.stack(frames), _spacing(geom), _facts(setting, geom)
