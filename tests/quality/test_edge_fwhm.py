"""fwhm_edge against textbook optics: a sharp-edged object blurred by a Gaussian of sigma voxels has
a point-spread FWHM of 2 sqrt(2 ln 2) sigma = 2.355 sigma, whatever the matrix it is sampled on, and
an ideal step sampled at voxel centres spans one voxel (issue 19: the autocorrelation FWHM grows with
the matrix instead)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from curation.quality.artifacts import edge_fwhm

GAUSS_FWHM = 2.0 * math.sqrt(2.0 * math.log(2.0))


def ellipsoid(matrix: int, slices: int = 12, fov_mm: float = 240.0) -> np.ndarray:
    """An ellipsoid (semi-axes 90 x 70 mm in-plane) of value 1000 on 0, sampled at voxel centres."""
    c = (np.arange(matrix) + 0.5) * fov_mm / matrix - fov_mm / 2
    y, x = np.meshgrid(c, c, indexing="ij")
    inside = (x / 90.0) ** 2 + (y / 70.0) ** 2 <= 1.0
    return np.repeat(inside[None].astype(np.float64) * 1000.0, slices, axis=0)


def blurred(vol: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    out = ndimage.gaussian_filter(vol, (0, sigma, sigma)) if sigma else vol.copy()
    return out + np.random.default_rng(seed).normal(0, 2.0, vol.shape)  # SNR 500


@pytest.mark.parametrize("sigma", [1.0, 1.5])
def test_gaussian_blur_reads_as_its_fwhm_at_every_matrix(sigma):
    got = []
    for matrix in (96, 192, 384):
        vol = blurred(ellipsoid(matrix), sigma)
        got.append(edge_fwhm(vol, vol > 500)["fwhm_edge"])
    assert all(abs(g - GAUSS_FWHM * sigma) / (GAUSS_FWHM * sigma) < 0.08 for g in got), (sigma, got)
    assert max(got) / min(got) < 1.05, got


def test_wider_blur_still_reads_wider():
    """Beyond sigma 1.5 the 7-voxel window no longer holds the whole edge (EDGE_SPAN): the reading
    grows more slowly than the blur, but it still grows -- enough to tell a blurred series."""
    vol = ellipsoid(192)
    got = [edge_fwhm(b, b > 500)["fwhm_edge"] for b in (blurred(vol, s) for s in (1.5, 2.0, 3.0))]
    assert got[0] < got[1] < got[2], got


def test_sharp_step_is_one_voxel_at_every_matrix():
    sharp = []
    for matrix in (96, 192, 384):
        vol = blurred(ellipsoid(matrix), 0.0)
        sharp.append(edge_fwhm(vol, vol > 500)["fwhm_edge"])
    # width 1 voxel, reported on the Gaussian scale (x 2.355 / sqrt(2 pi) = 0.94)
    assert all(abs(s - GAUSS_FWHM / math.sqrt(2 * math.pi)) < 0.05 for s in sharp), sharp


def test_empty_mask_is_nan():
    assert math.isnan(edge_fwhm(np.zeros((4, 32, 32)), np.zeros((4, 32, 32), bool))["fwhm_edge"])
