"""Fixtures of the registration tests: small synthetic heads with known motion (exact ground truth
from the analytic phantom), cached per session so each is sampled once."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from synth.registration_pairs import Pair, make_pair, rigid_matrix

sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(2)

#: Small but whole-head grid: 64 x 64 x 56 at 3 mm (head 144 x 184 x 156 mm fits).
SMALL = {"fixed_shape_zyx": (56, 64, 64), "fixed_spacing_zyx": (3.0, 3.0, 3.0)}

#: The worst motion the acceptance asks for: 10 degrees about an oblique axis, 15 mm.
LARGE_MOTION = rigid_matrix((6.0, -5.0, 6.0), (9.0, -8.0, 8.5))


@pytest.fixture(scope="session")
def pair_cache() -> dict:
    return {}


@pytest.fixture(scope="session")
def small_pair(pair_cache):
    """Callable (fixed contrast, moving contrast, seed, **kw) -> Pair, cached."""

    def get(fixed_contrast: str = "T2", moving_contrast: str = "T2", seed: int = 0, **kw) -> Pair:
        key = (fixed_contrast, moving_contrast, seed, tuple(sorted((k, str(v)) for k, v in kw.items())))
        if key not in pair_cache:
            args = dict(SMALL, **kw)
            pair_cache[key] = make_pair(fixed_contrast=fixed_contrast, moving_contrast=moving_contrast,
                                        seed=seed, **args)
        return pair_cache[key]

    return get


def rotation_deg_of(m: np.ndarray) -> float:
    from curation.registration.transforms import rotation_angle_deg

    return rotation_angle_deg(m)
