"""The cheaper forms of the mask steps give the same masks as the plain ones they replaced: Otsu from
a histogram of stored values, hole filling in one flood fill, labelling inside a bounding box, the
bound that spares labelling scattered zeros, OpenCV's erosion across slices, Laplacian on a box."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy import ndimage as nd

from curation.quality import artifacts, masks, tissues
from curation.quality.stats import Levels
from tests.quality.phantoms import SPACING, degraded


def blobs(seed: int, shape=(12, 40, 48), p: float = 0.45) -> np.ndarray:
    """Random blobby masks with holes and several components."""
    rng = np.random.default_rng(seed)
    return nd.gaussian_filter(rng.random(shape), 1.5) > p


def rotation_mask_by_labelling(volume: np.ndarray) -> np.ndarray:
    zero = volume <= 0
    labels, _ = nd.label(zero)
    faces = np.concatenate([labels[0].ravel(), labels[-1].ravel(), labels[:, 0].ravel(), labels[:, -1].ravel(),
                            labels[:, :, 0].ravel(), labels[:, :, -1].ravel()])
    m = np.isin(labels, faces[faces > 0])
    return m if m.sum() >= 500 else np.zeros(volume.shape, bool)


def test_otsu_from_counts_equals_otsu_on_the_voxels():
    for vol in (degraded("ge", "T1W", None, 0), degraded("philips", "FLAIR", "noise", 4)):
        lv = Levels.of(vol)
        for log in (False, True):
            assert masks.otsu_threshold(lv.values, log=log, counts=lv.counts()) == masks.otsu_threshold(vol, log=log)
        big = np.concatenate([vol] * 3)  # > 1e6 voxels: the regular subsample
        assert masks.head_mask(big, SPACING, levels=Levels.of(big))[1] == masks.head_mask(big, SPACING)[1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fill_holes_and_largest_component_equal_scipy(seed):
    m = blobs(seed)
    reference = np.stack([nd.binary_fill_holes(s) for s in m])
    assert np.array_equal(masks.fill_holes_2d(m), reference)
    islands = blobs(seed, p=0.55)
    labels, n = nd.label(islands)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    assert n > 1 and np.array_equal(masks.largest_component(islands), labels == np.argmax(sizes))


def test_rotation_mask_equals_labelling_with_scattered_zeros_and_with_padding():
    vol = degraded("siemens", "T2W", "noise", 1)
    rng = np.random.default_rng(5)
    vol[rng.random(vol.shape) < 0.002] = 0  # noise rounded to zero: no labelling needed
    assert not masks.rotation_mask(vol).any() and not rotation_mask_by_labelling(vol).any()
    vol[:, :20, :25] = 0  # padding after a rotation
    assert masks.rotation_mask(vol).sum() >= 500
    assert np.array_equal(masks.rotation_mask(vol), rotation_mask_by_labelling(vol))


def test_brain_mask_erodes_across_slices_like_a_minimum_filter():
    head = blobs(3, (30, 40, 48), 0.35)
    k = int(np.ceil(12.0 / SPACING[0]))
    across = nd.minimum_filter1d(head, size=2 * k + 1, axis=0, mode="constant", cval=False)
    reference = masks.distance_2d(across, (SPACING[1], SPACING[2])) > 12.0
    assert head.shape[0] > 2 * k + 2 and np.array_equal(tissues.brain_mask(head, SPACING), reference)


def test_laplacian_variance_on_the_box_equals_the_whole_slices():
    vol = degraded("ge", "T1W", "blur", 3)
    for m in (blobs(4, vol.shape, 0.6), np.ones(vol.shape, bool)):  # inside, and touching every edge
        lap = np.stack([cv2.Laplacian(s, cv2.CV_32F, ksize=1) for s in vol])
        reference = float(lap[m].astype(np.float64).var() / float(vol[m].mean()) ** 2)
        assert artifacts.laplacian_variance(vol, m) == reference
