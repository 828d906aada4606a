"""Brain tissue classes (CSF, GM, WM) of a brain MR volume: a brain mask by erosion of the head mask
and a three-class Gaussian mixture on the intensities inside it.

Why a histogram EM: a 1D mixture fitted on a 512-bin histogram gives the same classes as one fitted on
a million voxels, in about a millisecond, deterministically. Which class is which depends on the
weighting (T1: CSF < GM < WM; T2: WM < GM < CSF; FLAIR: CSF < WM < GM), so the order comes from the
series kind (configuration: include/quality/thresholds.yaml, `tissue_order`).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from curation.quality.masks import distance_2d
from curation.quality.parallel import both
from curation.vocabulary import SeriesKind

#: Intensity order (darkest first) of CSF/GM/WM by kind; the default is T1-like.
DEFAULT_TISSUE_ORDER: dict[str, tuple[str, str, str]] = {
    SeriesKind.T1W: ("csf", "gm", "wm"),
    SeriesKind.DCE: ("csf", "gm", "wm"),
    SeriesKind.T2W: ("wm", "gm", "csf"),
    SeriesKind.SWI: ("csf", "gm", "wm"),  # spoiled GRE at short TR: CSF (long T1) darkest
    SeriesKind.FLAIR: ("csf", "wm", "gm"),
    SeriesKind.PDW: ("csf", "wm", "gm"),
}


@dataclass
class GaussianMixture1D:
    """Weights, means and standard deviations of a 1D mixture, sorted by mean."""

    weights: np.ndarray
    means: np.ndarray
    sigmas: np.ndarray
    iterations: int
    converged: bool

    def log_resp(self, x: np.ndarray) -> np.ndarray:
        """log p(class | x) up to a constant per x (shape (n, k))."""
        x = np.asarray(x, dtype=np.float64)[:, None]
        return (np.log(self.weights) - np.log(self.sigmas) - 0.5 * ((x - self.means) / self.sigmas) ** 2)

    def classify(self, x: np.ndarray) -> np.ndarray:
        return np.argmax(self.log_resp(x), axis=1)


def _kmeans_1d(x: np.ndarray, h: np.ndarray, init: np.ndarray, iters: int = 100) -> tuple[np.ndarray, float]:
    """Lloyd's k-means on histogram bins (centres x, counts h): (sorted centres, inertia)."""
    centres = np.sort(np.asarray(init, dtype=np.float64))
    for _ in range(iters):
        lab = np.argmin(np.abs(x[:, None] - centres[None, :]), axis=1)
        new = np.array([(h[lab == j] * x[lab == j]).sum() / h[lab == j].sum() if h[lab == j].sum() > 0
                        else centres[j] for j in range(len(centres))])
        if np.allclose(new, centres):
            break
        centres = np.sort(new)
    lab = np.argmin(np.abs(x[:, None] - centres[None, :]), axis=1)
    return centres, float((h * (x - centres[lab]) ** 2).sum())


def _em(x: np.ndarray, h: np.ndarray, means: np.ndarray, sigmas: np.ndarray, weights: np.ndarray, floor: float,
        max_iter: int, tol: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, bool]:
    """EM on a histogram; each sigma is capped at half the distance to the nearest other mean, so no
    component can turn into a broad background that swallows the others' tails."""
    n = h.sum()
    prev = -np.inf
    it = 0
    converged = False
    for it in range(1, max_iter + 1):
        logp = np.log(weights) - np.log(sigmas) - 0.5 * ((x[:, None] - means) / sigmas) ** 2
        mx = logp.max(axis=1, keepdims=True)
        p = np.exp(logp - mx)
        s = p.sum(axis=1, keepdims=True)
        resp = p / s
        ll = float((h * (mx[:, 0] + np.log(s[:, 0]))).sum() / n)
        nk = (h[:, None] * resp).sum(axis=0) + 1e-12
        weights = np.maximum(nk / n, 1e-6)
        means = (h[:, None] * resp * x[:, None]).sum(axis=0) / nk
        sigmas = np.sqrt((h[:, None] * resp * (x[:, None] - means) ** 2).sum(axis=0) / nk)
        gaps = np.abs(means[:, None] - means[None, :]) + np.diag(np.full(len(means), np.inf))
        sigmas = np.clip(sigmas, floor, np.maximum(gaps.min(axis=1) / 2.0, floor))
        if abs(ll - prev) < tol * max(1.0, abs(ll)):
            converged = True
            break
        prev = ll
    return weights, means, sigmas, it, converged


def fit_gmm_1d(values: np.ndarray, k: int = 3, bins: int = 512, max_iter: int = 300, tol: float = 1e-8,
               trim: float | None = None) -> GaussianMixture1D:
    """A k-class Gaussian mixture on the histogram of `values`: the best of a few k-means starts
    (quantile-spread and extreme-spread, so a small class at either end -- CSF in a brain mask -- is
    found), refined by EM with capped component widths. The histogram spans the 0.5 % to 99.5 %
    quantiles; with `trim`, the fit sees only the values between the `trim` and 1 - `trim` quantiles."""
    v = np.asarray(values).ravel()
    # Quantiles from a fine histogram: exact enough for starting points, and linear time.
    vmin, vmax = float(v.min()), float(v.max())
    fine, fedges = np.histogram(v, bins=8192, range=(vmin, vmax if vmax > vmin else vmin + 1.0))
    cdf = np.cumsum(fine) / max(fine.sum(), 1)

    def q(p: np.ndarray | float) -> np.ndarray:
        return fedges[1:][np.minimum(np.searchsorted(cdf, p), len(cdf) - 1)]

    def q_kept(p: np.ndarray) -> np.ndarray:  # quantiles of the values the fit sees
        return q(p) if trim is None else q(trim + (1.0 - 2.0 * trim) * p)

    lo, hi = (float(q(0.005)), float(q(0.995))) if trim is None else (float(q(trim)), float(q(1.0 - trim)))
    if hi <= lo:
        hi = lo + 1.0
    hist, edges = np.histogram(v, bins=bins, range=(lo, hi))
    x = (edges[:-1] + edges[1:]) / 2
    h = hist.astype(np.float64)
    floor = (hi - lo) / bins
    starts = [q_kept(np.array([(i + 0.5) / k for i in range(k)])), q_kept(np.linspace(0.01, 0.99, k)),
              q_kept(np.linspace(0.05, 0.95, k)), np.linspace(lo, hi, k)]
    best = min((_kmeans_1d(x, h, s) for s in starts), key=lambda r: r[1])
    centres = best[0]
    lab = np.argmin(np.abs(x[:, None] - centres[None, :]), axis=1)
    w0 = np.array([max(h[lab == j].sum(), 1.0) for j in range(k)])
    s0 = np.array([np.sqrt(max((h[lab == j] * (x[lab == j] - centres[j]) ** 2).sum() / w0[j], floor**2))
                   for j in range(k)])
    w0 = w0 / w0.sum()
    weights, means, sigmas, it, converged = _em(x, h, centres.copy(), s0.copy(), w0.copy(), floor, max_iter, tol)
    order = np.argsort(means)
    return GaussianMixture1D(weights[order], means[order], sigmas[order], it, converged)


def gm_wm_mixture(values: np.ndarray, trim: float, min_weight: float = 0.15, rounds: int = 3) -> GaussianMixture1D:
    """The GM/WM two-class mixture of brain-mask values, fitted without the outer `trim` on either side.

    Why the rounds: GM and WM are the bulk of a brain mask, each well over `min_weight` of it. When a
    component comes out smaller, it sits on another peak -- the ventricles of a thin slab through the
    midline (CSF is then more than the trim), skull or scalp that an in-plane-only brain mask keeps
    (a slab too thin for the through-plane erosion) -- and GM and WM were merged into the other one.
    Those values (beyond the boundary between the two components, on the small one's side) are left
    out and the mixture refitted, up to `rounds` times."""
    v = np.asarray(values).ravel()
    gmm = fit_gmm_1d(v, 2, trim=trim)
    for _ in range(rounds):
        small = int(np.argmin(gmm.weights))
        if gmm.weights[small] >= min_weight * gmm.weights.sum() or v.size < 300:
            break
        grid = np.linspace(gmm.means[0], gmm.means[1], 1024)
        cls = gmm.classify(grid)
        boundary = float(grid[np.argmax(cls == 1)])  # first point the upper component wins
        keep = v > boundary if small == 0 else v < boundary
        if keep.sum() < 300 or keep.all():
            break
        v = v[keep]
        gmm = fit_gmm_1d(v, 2, trim=trim)
    return gmm


@dataclass
class TissueClasses:
    """Hard tissue masks (bool) inside the brain mask, and the mixture they came from."""

    brain: np.ndarray
    csf: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    gmm: GaussianMixture1D
    order: tuple[str, str, str]
    method: str = "gmm3"

    def sizes(self) -> dict[str, int]:
        return {name: np.count_nonzero(getattr(self, name)) for name in ("brain", "csf", "gm", "wm")}


def _noise_sigma(volume: np.ndarray, mask: np.ndarray) -> float:
    """Noise standard deviation inside a mask: Immerkaer's Laplacian-difference estimator, per slice."""
    kern = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
    total, n = 0.0, 0
    for k in range(volume.shape[0]):
        m = mask[k]
        if m.sum() < 20:
            continue
        conv = cv2.filter2D(volume[k], cv2.CV_32F, kern, borderType=cv2.BORDER_REFLECT)
        total += float(np.abs(conv[m], dtype=np.float32).sum(dtype=np.float64))
        n += int(m.sum())
    return float(np.sqrt(np.pi / 2.0) * total / (6.0 * n)) if n else 0.0


def brain_mask(head: np.ndarray, spacing: tuple[float, float, float], depth_mm: float = 12.0,
               distance_in: np.ndarray | None = None) -> np.ndarray:
    """The head mask eroded by `depth_mm`: scalp and skull stripped, the brain kept.

    Crude by design (no template is shipped): it keeps what lies deeper than a scalp-plus-skull
    thickness from the head's outline -- a disc in-plane, a box across slices (so the caps of the
    head in the first and last slices are not taken for brain). Volumes too thin for the box are
    eroded in-plane only.
    """
    if distance_in is not None:
        return distance_in > depth_mm
    out = np.zeros(head.shape, dtype=bool)
    if not head.any():
        return out
    # Only the head's bounding box (plus a border of background) matters: same result, less work.
    zz, yy, xx = (np.flatnonzero(head.any(axis=ax)) for ax in ((1, 2), (0, 2), (0, 1)))
    box = (slice(zz[0], zz[-1] + 1), slice(max(yy[0] - 1, 0), yy[-1] + 2), slice(max(xx[0] - 1, 0), xx[-1] + 2))
    sub = head[box]
    k = int(np.ceil(depth_mm / max(spacing[0], 1e-3)))
    if head.shape[0] > 2 * k + 2:  # through-plane: as deep in the head k slices up and down
        # a minimum over 2k+1 slices (outside: not head), as OpenCV's erosion of the (slices, voxels) image
        flat = np.ascontiguousarray(sub).view(np.uint8).reshape(sub.shape[0], -1)
        sub = cv2.erode(flat, np.ones((2 * k + 1, 1), np.uint8), borderType=cv2.BORDER_CONSTANT,
                        borderValue=0).view(bool).reshape(sub.shape)
    out[box] = distance_2d(sub, (spacing[1], spacing[2])) > depth_mm
    return out


def tissue_classes(volume: np.ndarray, head: np.ndarray, spacing: tuple[float, float, float],
                   kind: str | None = None, depth_mm: float = 12.0,
                   order: dict[str, tuple[str, str, str]] | None = None, smooth_sigma: float = 2.0,
                   min_csf_fraction: float = 0.05, csf_sigmas: float = 4.0,
                   min_csf_floor: float = 0.005, gm_wm_trim: float = 0.035,
                   min_gm_wm_weight: float = 0.15) -> TissueClasses | None:
    """CSF/GM/WM masks by a Gaussian mixture on the brain-mask intensities (None if the brain is tiny)."""
    brain_full = brain_mask(head, spacing, depth_mm)
    if np.count_nonzero(brain_full) < 300:
        return None
    # Work inside the brain's bounding box (the classes are empty outside it).
    zz, yy, xx = (np.flatnonzero(brain_full.any(axis=ax)) for ax in ((1, 2), (0, 2), (0, 1)))
    pad = int(np.ceil(3 * smooth_sigma)) + 1
    box = (slice(zz[0], zz[-1] + 1), slice(max(yy[0] - pad, 0), yy[-1] + 1 + pad),
           slice(max(xx[0] - pad, 0), xx[-1] + 1 + pad))
    brain = brain_full[box]
    volume = volume[box]
    # The mixture is fitted to, and the voxels classified on, a denoised copy (in-plane Gaussian):
    # its histogram keeps separate peaks at noise levels where the raw one has merged them, and
    # classes follow anatomy rather than single noisy voxels (the job FAST's Markov field does).
    # Metrics are then computed on the original intensities inside these classes.
    if smooth_sigma > 0:
        vol32 = np.asarray(volume, dtype=np.float32)
        noise = _noise_sigma(vol32, brain)
        src = np.empty(volume.shape, dtype=np.float32)
        d = 2 * int(np.ceil(2 * smooth_sigma)) + 1

        def smooth(first: int) -> None:  # every other slice (OpenCV does not split slices this small)
            for k in range(first, volume.shape[0], 2):
                if noise > 0:  # edge-preserving: smooths within a tissue, not across GM/WM borders
                    src[k] = cv2.bilateralFilter(vol32[k], d, 3.0 * noise, smooth_sigma)
                else:
                    src[k] = vol32[k]

        both(lambda: smooth(1), lambda: smooth(0))
    else:
        src = np.asarray(volume, dtype=np.float32)
    vals = src[brain]
    tissue_order = (order or DEFAULT_TISSUE_ORDER).get(kind or "", ("csf", "gm", "wm"))
    csf_low = tissue_order.index("csf") == 0
    lo, hi = float(vals.min()), float(vals.max())
    nb = 4096
    grid = np.linspace(lo, hi, nb)
    idx = np.clip(((vals - lo) / max(hi - lo, 1e-12) * (nb - 1) + 0.5).astype(np.int64), 0, nb - 1)
    # GM and WM first; CSF is what lies more than `csf_sigmas` widths beyond them on CSF's side (4,
    # not 3: at 3 the class took in GM/CSF partial-volume voxels, and its SNR, a third of MRIQC's
    # snr_total, jumped when a mild defect moved that border).
    # Their mixture is fitted without the outer `gm_wm_trim` of the values on either side: when noise
    # has merged the GM and WM peaks, the CSF partial-volume tail (or bright vessels) would otherwise
    # take a component of its own and leave "WM" a few hundred voxels (seen from 2 % noise on FLAIR,
    # from mild bias fields and on low-contrast T1).
    gmm2 = gm_wm_mixture(vals, gm_wm_trim, min_gm_wm_weight)
    near = 0 if csf_low else 1
    edge = gmm2.means[near] + (-1 if csf_low else 1) * csf_sigmas * gmm2.sigmas[near]
    is_csf = vals < edge if csf_low else vals > edge
    # Every brain has some CSF (ventricles): at least the most extreme `min_csf_floor` of the voxels
    # on CSF's side, so the class is never empty when the tail is hidden by noise or smoothing.
    floor_edge = np.quantile(vals, min_csf_floor if csf_low else 1.0 - min_csf_floor)
    is_csf |= (vals <= floor_edge) if csf_low else (vals >= floor_edge)
    if is_csf.mean() >= min_csf_fraction:
        # CSF is a class of its own here (ventricles, sulci): three tissue peaks.
        gmm = fit_gmm_1d(vals, 3)
        tissue_ranks = (1, 2) if csf_low else (0, 1)
        if min(gmm.weights[list(tissue_ranks)]) >= min_gm_wm_weight * gmm.weights[list(tissue_ranks)].sum():
            ranks = gmm.classify(grid)[idx]
            method = "gmm3"
        else:  # the three peaks are CSF, skull/vessels and GM+WM: the tail rule below serves
            gmm = gmm2
            method = "gmm2+tail"
    else:
        gmm, method = gmm2, "gmm2+tail"
    if method == "gmm2+tail":
        # Little CSF (a thin layer, small ventricles): a third component would land on partial-volume
        # voxels between GM and WM, so CSF is the tail and GM/WM the two-class mixture.
        ranks = np.where(is_csf, 0 if csf_low else 2, gmm2.classify(grid)[idx] + (1 if csf_low else 0))
    cls = ranks
    masks = {}
    for rank, name in enumerate(tissue_order):
        m = np.zeros(brain_full.shape, dtype=bool)
        sub = np.zeros(brain.shape, dtype=bool)
        sub[brain] = cls == rank
        m[box] = sub
        masks[name] = m
    return TissueClasses(brain=brain_full, csf=masks["csf"], gm=masks["gm"], wm=masks["wm"], gmm=gmm,
                         order=tuple(tissue_order), method=method)
