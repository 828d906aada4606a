"""Analytic chest phantom (body, fat, lungs, heart, aorta, spine, sternum, ribs, and the findings a
patient may have: a nodule, a consolidation-like opacity, a pleural effusion) in LPS mm, for CT slices
and for projection radiographs (CR/DX) and the PNG/JPEG chest images.

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
    OPACITY = 8
    EFFUSION = 9


#: CT numbers (HU) without and with an iodinated contrast agent in the blood pool.
CHEST_HU = {
    ChestTissue.BACKGROUND: -1000.0, ChestTissue.SOFT: 40.0, ChestTissue.FAT: -100.0, ChestTissue.LUNG: -850.0,
    ChestTissue.HEART: 40.0, ChestTissue.AORTA: 40.0, ChestTissue.BONE: 700.0, ChestTissue.NODULE: 30.0,
    ChestTissue.OPACITY: 20.0, ChestTissue.EFFUSION: 10.0,
}
#: Consolidated lung enhances a little; pleural fluid does not.
CHEST_HU_CONTRAST = {**CHEST_HU, ChestTissue.HEART: 230.0, ChestTissue.AORTA: 300.0, ChestTissue.NODULE: 70.0,
                     ChestTissue.OPACITY: 45.0}

#: Linear attenuation of water (1/mm) at an effective ~60 keV; mu = MU_WATER (1 + HU/1000).
MU_WATER = 0.0206


@dataclass(frozen=True)
class Nodule:
    """A round lung nodule (ground-truth finding for annotation): centre (LPS mm) and radius (mm)."""

    centre: tuple[float, float, float]
    radius: float


#: The two lungs: (centre, semi-axes) in LPS mm; lung tissue lies inside above LUNG_FLOOR_Z.
RIGHT_LUNG = ((-72.0, 8.0, 25.0), (58.0, 72.0, 125.0))
LEFT_LUNG = ((74.0, 8.0, 20.0), (54.0, 72.0, 120.0))
LUNG_FLOOR_Z = -110.0
#: How far the fluid surface of an effusion climbs the lateral chest wall (the meniscus), mm.
MENISCUS_MM = 20.0


@dataclass(frozen=True)
class Opacity:
    """A consolidation-like opacity: the lung inside an axis-aligned ellipsoid (centre, semi-axes, LPS
    mm) becomes fluid-dense. Only lung changes, so the opacity takes the lung's edge where it meets it."""

    centre: tuple[float, float, float]
    axes: tuple[float, float, float]


@dataclass(frozen=True)
class Effusion:
    """A pleural effusion: the lung of one side ("right" or "left") below a fluid surface `level_mm`
    above the lung's lowest point, rising by MENISCUS_MM towards the lateral wall, becomes fluid."""

    side: str
    level_mm: float

    def surface_z(self, x: np.ndarray) -> np.ndarray:
        (cx, _, cz), (ax, _, az) = RIGHT_LUNG if self.side == "right" else LEFT_LUNG
        lateral = np.clip((x - cx) / ax * (-1.0 if self.side == "right" else 1.0), 0.0, 1.0)
        return cz - az + self.level_mm + MENISCUS_MM * lateral * lateral


@dataclass(frozen=True)
class ChestFindings:
    """What one patient's chest shows (each optional); CT, topogram, radiograph and pictures share it."""

    nodule: Nodule | None = None
    opacity: Opacity | None = None
    effusion: Effusion | None = None

    def any(self) -> bool:
        return any((self.nodule, self.opacity, self.effusion))


def _ell(p: np.ndarray, c, a) -> np.ndarray:
    x = (p[..., 0] - c[0]) / a[0]
    y = (p[..., 1] - c[1]) / a[1]
    z = (p[..., 2] - c[2]) / a[2]
    return np.sqrt(x * x + y * y + z * z)


def chest_labels_at(points_mm: np.ndarray, nodule: Nodule | None = None,
                    findings: ChestFindings | None = None) -> np.ndarray:
    """Chest tissue label (uint8) at each LPS point (..., 3), chest centred on the origin. `nodule`
    (or `findings.nodule`) is drawn over everything; an opacity or effusion replaces lung only."""
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
    right = _ell(p, *RIGHT_LUNG) < 1.0
    left = _ell(p, *LEFT_LUNG) < 1.0
    lab[(right | left) & (z > LUNG_FLOOR_Z)] = ChestTissue.LUNG
    lab[_ell(p, (22.0, -22.0, -45.0), (55.0, 45.0, 50.0)) < 1.0] = ChestTissue.HEART
    aorta_desc = (np.hypot(x - 18.0, y - 42.0) < 12.0) & (z > -130.0) & (z < 55.0)
    aorta_asc = (np.hypot(x - 4.0, y + 8.0) < 14.0) & (z > -20.0) & (z < 60.0)
    arch = (np.abs(_ell(p, (11.0, 17.0, 58.0), (1e9, 27.0, 27.0)) - 1.0) < 0.45) & (np.abs(x - 11.0) < 12.0) & (z > 55.0)
    lab[aorta_desc | aorta_asc | arch] = ChestTissue.AORTA
    spine = (np.hypot(x, y - 72.0) < 19.0) & in_body
    sternum = (np.abs(x) < 13.0) & (y > -104.0) & (y < -92.0) & (z > -90.0) & (z < 70.0)
    lab[spine | sternum] = ChestTissue.BONE
    if findings is not None:
        nodule = nodule or findings.nodule
        if findings.effusion is not None:
            side = right if findings.effusion.side == "right" else left
            lab[side & (lab == ChestTissue.LUNG) & (z < findings.effusion.surface_z(x))] = ChestTissue.EFFUSION
        if findings.opacity is not None:
            inside = _ell(p, findings.opacity.centre, findings.opacity.axes) < 1.0
            lab[inside & (lab == ChestTissue.LUNG)] = ChestTissue.OPACITY
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
    xs, zs, ys = _grid(n, extent_mm, n_depth)
    dy = ys[1] - ys[0]
    out = np.zeros((n, n))
    for y in ys:  # one coronal plane at a time keeps memory small
        zz, xx = np.meshgrid(zs, xs, indexing="ij")
        pts = np.stack([xx, np.full_like(xx, y), zz], axis=-1)
        hu = chest_hu(chest_labels_at(pts))
        out += MU_WATER * np.clip(1.0 + hu / 1000.0, 0.0, None) * dy
    return out


def _grid(n: int, extent_mm: float, n_depth: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Columns (x, patient right to left), rows (z, head to feet) and depths (y) of the projection."""
    return (np.linspace(-extent_mm / 2, extent_mm / 2, n), np.linspace(extent_mm / 2, -extent_mm / 2, n),
            np.linspace(-110.0, 110.0, n_depth))


def _extent_xz(findings: ChestFindings) -> tuple[float, float, float, float] | None:
    """(x0, x1, z0, z1) mm enclosing the opacity and the effusion (None: neither)."""
    spans = []
    if findings.opacity is not None:
        (cx, _, cz), (ax, _, az) = findings.opacity.centre, findings.opacity.axes
        spans.append((cx - ax, cx + ax, cz - az, cz + az))
    if findings.effusion is not None:
        (cx, _, cz), (ax, _, az) = RIGHT_LUNG if findings.effusion.side == "right" else LEFT_LUNG
        spans.append((cx - ax, cx + ax, max(cz - az, LUNG_FLOOR_Z), cz - az + findings.effusion.level_mm + MENISCUS_MM))
    if not spans:
        return None
    return min(s[0] for s in spans), max(s[1] for s in spans), min(s[2] for s in spans), max(s[3] for s in spans)


@lru_cache(maxsize=32)
def findings_delta(n: int, extent_mm: float, findings: ChestFindings, n_depth: int = 110) -> np.ndarray:
    """What the opacity and effusion add to the PA line integral, shape (n, n): the same sums as the
    base projection, done only over the rows and columns they can reach (the nodule is analytic).
    Cached (read-only): the topogram, the radiograph and the pictures of a patient share it."""
    out = np.zeros((n, n))
    out.setflags(write=False)
    span = _extent_xz(findings)
    if span is None:
        return out
    xs, zs, ys = _grid(n, extent_mm, n_depth)
    px = extent_mm / (n - 1)
    cols = np.flatnonzero((xs >= span[0] - px) & (xs <= span[1] + px))
    rows = np.flatnonzero((zs >= span[2] - px) & (zs <= span[3] + px))
    if not cols.size or not rows.size:
        return out
    zz, yy, xx = np.meshgrid(zs[rows], ys, xs[cols], indexing="ij")
    pts = np.stack([xx, yy, zz], axis=-1)
    only = ChestFindings(opacity=findings.opacity, effusion=findings.effusion)
    mu_with = MU_WATER * np.clip(1.0 + chest_hu(chest_labels_at(pts, findings=only)) / 1000.0, 0.0, None)
    mu_without = MU_WATER * np.clip(1.0 + chest_hu(chest_labels_at(pts)) / 1000.0, 0.0, None)
    out = np.zeros((n, n))
    out[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] = (mu_with - mu_without).sum(axis=1) * (ys[1] - ys[0])
    out.setflags(write=False)
    return out


def _single(findings: ChestFindings) -> dict[str, ChestFindings]:
    """The opacity and the effusion each on its own (they never overlap: their shadows add)."""
    out = {}
    if findings.opacity is not None:
        out["opacity"] = ChestFindings(opacity=findings.opacity)
    if findings.effusion is not None:
        out["effusion"] = ChestFindings(effusion=findings.effusion)
    return out


def shadow_masks(findings: ChestFindings, n: int, extent_mm: float) -> dict[str, np.ndarray]:
    """Each finding's shadow on the `n` x `n` projection grid: the pixels whose ray crosses it."""
    out = {}
    if findings.nodule is not None:
        xs, zs, _ = _grid(n, extent_mm, 1)
        c, r = findings.nodule.centre, findings.nodule.radius
        out["nodule"] = ((xs[None, :] - c[0]) ** 2 + (zs[:, None] - c[2]) ** 2) < r * r
    for name, one in _single(findings).items():
        out[name] = findings_delta(n, extent_mm, one) > 0
    return {k: v for k, v in sorted(out.items()) if v.any()}


def projection(n: int, extent_mm: float, nodule: Nodule | ChestFindings | None = None,
               n_depth: int = 110) -> np.ndarray:
    """PA line integral of attenuation (dimensionless), shape (n, n); a nodule is added analytically
    (sphere chord length x its attenuation above lung), an opacity or effusion by `findings_delta`."""
    base = _base_projection(n, extent_mm, n_depth).copy()
    if isinstance(nodule, ChestFindings):
        for one in _single(nodule).values():
            base += findings_delta(n, extent_mm, one, n_depth)
        nodule = nodule.nodule
    if nodule is not None:
        xs, zs, _ = _grid(n, extent_mm, n_depth)
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
