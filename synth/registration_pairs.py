"""Synthetic head volumes with known rigid motion, for validating registration and motion correction.

The head phantom (`synth.phantom`) is analytic in patient space, so a volume "after the
patient moved by T" is sampled exactly by evaluating the head at T^-1 of each voxel's position: no
interpolation, hence exact ground truth. Each voxel averages sub-samples so partial volume looks
like a scanner's, and Rician noise is added to the magnitude.

Convention: `true_matrix` maps a point of the fixed (reference) image's space to the moving
image's space, as every matrix in `curation.registration`.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from curation.registration.transforms import apply, rigid_matrix
from curation.vocabulary import SeriesKind
from synth.phantom import Tissue, ct_hu, head_labels_at, mr_signal

#: Sequence parameters of each contrast (ms): spin echo unless a TI or gradient echo is given.
CONTRASTS: dict[str, dict] = {
    "T1": {"tr": 500.0, "te": 12.0},
    "T2": {"tr": 4000.0, "te": 100.0},
    "PD": {"tr": 3000.0, "te": 12.0},
    SeriesKind.FLAIR: {"tr": 9000.0, "te": 120.0, "ti": 2500.0},
    "DWI_B0": {"tr": 4000.0, "te": 80.0, "b": 0.0},
    "DWI_B1000": {"tr": 4000.0, "te": 80.0, "b": 1000.0},
}

#: Apparent diffusion coefficients (mm^2/s) for diffusion weighting.
ADC: dict[Tissue, float] = {
    Tissue.BACKGROUND: 0.0,
    Tissue.CSF: 3.0e-3,
    Tissue.GM: 0.8e-3,
    Tissue.WM: 0.7e-3,
    Tissue.SKULL: 0.5e-3,
    Tissue.SCALP: 1.0e-3,
    Tissue.LESION: 1.1e-3,
}


def axial_grid(shape_zyx: Sequence[int], spacing_zyx: Sequence[float], direction: np.ndarray | None = None) -> sitk.Image:
    """Empty float32 image of the given grid, centred on the origin (the head's centre)."""
    nz, ny, nx = (int(v) for v in shape_zyx)
    img = sitk.Image(nx, ny, nz, sitk.sitkFloat32)
    img.SetSpacing(tuple(float(s) for s in spacing_zyx[::-1]))
    d = np.eye(3) if direction is None else np.asarray(direction, dtype=np.float64)
    img.SetDirection(tuple(d.ravel()))
    half = (np.array([nx, ny, nz], dtype=np.float64) - 1) / 2.0
    img.SetOrigin(tuple(-(d @ (np.asarray(spacing_zyx[::-1], dtype=np.float64) * half))))
    return img


def _signal(labels: np.ndarray, contrast: str) -> np.ndarray:
    if contrast == SeriesKind.CT:
        return ct_hu(labels)
    par = CONTRASTS[contrast]
    s = mr_signal(labels, tr=par["tr"], te=par["te"], ti=par.get("ti"))
    b = par.get("b", 0.0)
    if b:
        adc = np.zeros(int(max(Tissue)) + 1)
        for t, v in ADC.items():
            adc[int(t)] = v
        s = s * np.exp(-b * adc[labels])
    return s


def sample_head(
    grid: sitk.Image,
    contrast: str = "T1",
    true_matrix: np.ndarray | None = None,
    noise: float = 0.02,
    supersample: int = 2,
    seed: int = 0,
    scale: float = 1000.0,
) -> sitk.Image:
    """The head as seen on `grid` after the patient moved by `true_matrix` (fixed -> moving space).

    noise: Rician noise SD as a fraction of the brightest tissue (MR); HU SD / 1000 for CT.
    """
    size = np.asarray(grid.GetSize())
    d = np.asarray(grid.GetDirection()).reshape(3, 3)
    sp = np.asarray(grid.GetSpacing())
    org = np.asarray(grid.GetOrigin())
    inverse = np.linalg.inv(true_matrix) if true_matrix is not None else np.eye(4)
    n = max(1, int(supersample))
    offsets = (np.arange(n) + 0.5) / n - 0.5
    k, j, i = np.meshgrid(np.arange(size[2]), np.arange(size[1]), np.arange(size[0]), indexing="ij")
    ijk = np.stack([i, j, k], axis=-1).astype(np.float64)
    acc = np.zeros(ijk.shape[:-1], dtype=np.float64)
    for ox in offsets:
        for oy in offsets:
            for oz in offsets:
                pts = (ijk + (ox, oy, oz)) * sp @ d.T + org
                acc += _signal(head_labels_at(apply(inverse, pts)), contrast)
    acc /= n**3
    rng = np.random.default_rng(seed)
    if contrast == SeriesKind.CT:
        out = acc + rng.normal(0.0, noise * 1000.0, acc.shape)
    else:
        sigma = noise * float(acc.max() or 1.0)
        out = np.hypot(acc + rng.normal(0.0, sigma, acc.shape), rng.normal(0.0, sigma, acc.shape)) * scale
    img = sitk.GetImageFromArray(out.astype(np.float32))
    img.CopyInformation(grid)
    return img


def head_mask_points(grid: sitk.Image, true_matrix: np.ndarray | None = None, stride: int = 1) -> np.ndarray:
    """LPS points (N, 3) of `grid`'s voxels inside the head (where the TRE is averaged)."""
    size = np.asarray(grid.GetSize())
    k, j, i = np.meshgrid(*(np.arange(0, s, stride) for s in size[::-1]), indexing="ij")
    ijk = np.stack([i, j, k], axis=-1).reshape(-1, 3).astype(np.float64)
    d = np.asarray(grid.GetDirection()).reshape(3, 3)
    pts = ijk * np.asarray(grid.GetSpacing()) @ d.T + np.asarray(grid.GetOrigin())
    inverse = np.linalg.inv(true_matrix) if true_matrix is not None else np.eye(4)
    inside = head_labels_at(apply(inverse, pts)) != Tissue.BACKGROUND
    return pts[inside]


@dataclass
class Pair:
    """A fixed/moving pair with its true fixed -> moving matrix."""

    fixed: sitk.Image
    moving: sitk.Image
    true_matrix: np.ndarray
    head_points: np.ndarray  # fixed-space points inside the head, for TRE


def random_rigid(rng: np.random.Generator, max_rotation_deg: float = 10.0, max_translation_mm: float = 15.0) -> np.ndarray:
    """A rigid motion with a random axis, |angle| <= max_rotation_deg and |shift| <= max_translation_mm."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = rng.uniform(0.3, 1.0) * max_rotation_deg
    shift = rng.normal(size=3)
    shift *= rng.uniform(0.3, 1.0) * max_translation_mm / np.linalg.norm(shift)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    a = np.deg2rad(angle)
    r = np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = shift
    return m


def make_pair(
    fixed_shape_zyx: Sequence[int] = (64, 128, 128),
    fixed_spacing_zyx: Sequence[float] = (3.0, 1.8, 1.8),
    moving_shape_zyx: Sequence[int] | None = None,
    moving_spacing_zyx: Sequence[float] | None = None,
    fixed_contrast: str = "T2",
    moving_contrast: str = "T2",
    true_matrix: np.ndarray | None = None,
    noise: float = 0.02,
    supersample: int = 2,
    seed: int = 0,
) -> Pair:
    """Fixed and moving head volumes (same or different grids and contrasts) and the true motion."""
    rng = np.random.default_rng(seed)
    m = random_rigid(rng) if true_matrix is None else np.asarray(true_matrix, dtype=np.float64)
    fgrid = axial_grid(fixed_shape_zyx, fixed_spacing_zyx)
    mgrid = axial_grid(moving_shape_zyx or fixed_shape_zyx, moving_spacing_zyx or fixed_spacing_zyx)
    fixed = sample_head(fgrid, fixed_contrast, None, noise, supersample, seed=seed + 1)
    moving = sample_head(mgrid, moving_contrast, m, noise, supersample, seed=seed + 2)
    return Pair(fixed, moving, m, head_mask_points(fgrid, stride=2))


__all__ = ["CONTRASTS", "Pair", "axial_grid", "head_mask_points", "make_pair", "random_rigid", "rigid_matrix", "sample_head"]
