"""Analytic chest phantom (body, fat, lungs, heart, aorta, spine, sternum, ribs, optional nodule) in
LPS mm, for CT slices and for projection radiographs (CR/DX) and the PNG/JPEG chest images.

Like the head phantom, labels are a function of a point, so any grid is exact. Radiographs are line
integrals of attenuation along the anterior-posterior axis (a PA view).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache

import numpy as np


class ChestTissue(IntEnum):
    BACKGROUND = 0
    SOFT = 1
    FAT = 2
    LUNG = 3
    HEART = 4
    AORTA = 5
    BONE = 6
    NODULE = 7


#: CT numbers (HU) without and with an iodinated contrast agent in the blood pool.
CHEST_HU = {
    ChestTissue.BACKGROUND: -1000.0, ChestTissue.SOFT: 40.0, ChestTissue.FAT: -100.0, ChestTissue.LUNG: -850.0,
    ChestTissue.HEART: 40.0, ChestTissue.AORTA: 40.0, ChestTissue.BONE: 700.0, ChestTissue.NODULE: 30.0,
}
CHEST_HU_CONTRAST = {**CHEST_HU, ChestTissue.HEART: 230.0, ChestTissue.AORTA: 300.0, ChestTissue.NODULE: 70.0}

#: Linear attenuation of water (1/mm) at an effective ~60 keV; mu = MU_WATER (1 + HU/1000).
MU_WATER = 0.0206


@dataclass(frozen=True)
class Nodule:
    """A round lung nodule (ground-truth finding for annotation): centre (LPS mm) and radius (mm)."""

    centre: tuple[float, float, float]
    radius: float


def _ell(p: np.ndarray, c, a) -> np.ndarray:
    x = (p[..., 0] - c[0]) / a[0]
    y = (p[..., 1] - c[1]) / a[1]
    z = (p[..., 2] - c[2]) / a[2]
    return np.sqrt(x * x + y * y + z * z)


def chest_labels_at(points_mm: np.ndarray, nodule: Nodule | None = None) -> np.ndarray:
    """Chest tissue label (uint8) at each LPS point (..., 3), chest centred on the origin."""
    p = np.asarray(points_mm, dtype=np.float64)
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    lab = np.zeros(p.shape[:-1], np.uint8)
    body_r = np.sqrt((x / 160.0) ** 2 + (y / 105.0) ** 2)
    in_body = (body_r < 1.0) & (np.abs(z) < 190.0)
    lab[in_body] = ChestTissue.FAT
    lab[in_body & (body_r < 0.93)] = ChestTissue.SOFT
    # Ribs: bands of the thoracic wall at regular heights, sloping down towards the front.
    wall = in_body & (body_r > 0.80) & (body_r < 0.87) & (z > -120.0) & (z < 150.0)
    rib_phase = np.mod(z + 0.18 * y - 150.0, 26.0)
    ribs = wall & (rib_phase < 8.0) & ~((np.abs(x) < 28.0) & (y < 0))
    lab[ribs] = ChestTissue.BONE
    lungs = (_ell(p, (-72.0, 8.0, 25.0), (58.0, 72.0, 125.0)) < 1.0) | (_ell(p, (74.0, 8.0, 20.0), (54.0, 72.0, 120.0)) < 1.0)
    lab[lungs & (z > -110.0)] = ChestTissue.LUNG
    lab[_ell(p, (22.0, -22.0, -45.0), (55.0, 45.0, 50.0)) < 1.0] = ChestTissue.HEART
    aorta_desc = (np.hypot(x - 18.0, y - 42.0) < 12.0) & (z > -130.0) & (z < 55.0)
    aorta_asc = (np.hypot(x - 4.0, y + 8.0) < 14.0) & (z > -20.0) & (z < 60.0)
    arch = (np.abs(_ell(p, (11.0, 17.0, 58.0), (1e9, 27.0, 27.0)) - 1.0) < 0.45) & (np.abs(x - 11.0) < 12.0) & (z > 55.0)
    lab[aorta_desc | aorta_asc | arch] = ChestTissue.AORTA
    spine = (np.hypot(x, y - 72.0) < 19.0) & in_body
    sternum = (np.abs(x) < 13.0) & (y > -104.0) & (y < -92.0) & (z > -90.0) & (z < 70.0)
    lab[spine | sternum] = ChestTissue.BONE
    if nodule is not None:
        lab[_ell(p, nodule.centre, (nodule.radius,) * 3) < 1.0] = ChestTissue.NODULE
    return lab


def chest_hu(labels: np.ndarray, contrast: bool = False) -> np.ndarray:
    table = CHEST_HU_CONTRAST if contrast else CHEST_HU
    lut = np.array([table[ChestTissue(i)] for i in range(len(ChestTissue))])
    return lut[labels]


@lru_cache(maxsize=4)
def _base_projection(n: int, extent_mm: float, n_depth: int) -> np.ndarray:
    """Attenuation line integral (PA, along y) on an n x n grid (rows: head to feet, columns: patient
    right to left), chest without nodule. Cached: the same for every patient of a site."""
    xs = np.linspace(-extent_mm / 2, extent_mm / 2, n)
    zs = np.linspace(extent_mm / 2, -extent_mm / 2, n)
    ys = np.linspace(-110.0, 110.0, n_depth)
    dy = ys[1] - ys[0]
    out = np.zeros((n, n))
    for y in ys:  # one coronal plane at a time keeps memory small
        zz, xx = np.meshgrid(zs, xs, indexing="ij")
        pts = np.stack([xx, np.full_like(xx, y), zz], axis=-1)
        hu = chest_hu(chest_labels_at(pts))
        out += MU_WATER * np.clip(1.0 + hu / 1000.0, 0.0, None) * dy
    return out


def projection(n: int, extent_mm: float, nodule: Nodule | None = None, n_depth: int = 110) -> np.ndarray:
    """PA line integral of attenuation (dimensionless), shape (n, n); a nodule is added analytically
    (sphere chord length x its attenuation above lung)."""
    base = _base_projection(n, extent_mm, n_depth).copy()
    if nodule is not None:
        xs = np.linspace(-extent_mm / 2, extent_mm / 2, n)
        zs = np.linspace(extent_mm / 2, -extent_mm / 2, n)
        zz, xx = np.meshgrid(zs, xs, indexing="ij")
        d2 = (xx - nodule.centre[0]) ** 2 + (zz - nodule.centre[2]) ** 2
        chord = 2.0 * np.sqrt(np.clip(nodule.radius ** 2 - d2, 0.0, None))
        dmu = MU_WATER * ((1 + CHEST_HU[ChestTissue.NODULE] / 1000) - (1 + CHEST_HU[ChestTissue.LUNG] / 1000))
        base += chord * dmu
    return base


def nodule_box(nodule: Nodule, n: int, extent_mm: float) -> list[int]:
    """[x, y, w, h] (pixels) of the nodule's shadow on the projection grid of `projection`."""
    px = extent_mm / (n - 1)
    cx = (nodule.centre[0] + extent_mm / 2) / px
    cy = (extent_mm / 2 - nodule.centre[2]) / px
    r = nodule.radius / px
    x0, y0 = int(np.floor(cx - r)), int(np.floor(cy - r))
    x1, y1 = int(np.ceil(cx + r)), int(np.ceil(cy + r))
    return [x0, y0, x1 - x0 + 1, y1 - y0 + 1]


def radiograph(line_integral: np.ndarray, bits: int = 12) -> np.ndarray:
    """Display values (MONOCHROME2: attenuating = bright) from line integrals, with a film-like curve."""
    hi = float(line_integral.max()) or 1.0
    v = 1.0 - np.exp(-2.2 * line_integral / hi)
    v = v / (1.0 - np.exp(-2.2))
    top = (1 << bits) - 1
    return np.clip(np.rint(v * top * 0.92 + top * 0.03), 0, top)
