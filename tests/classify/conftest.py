import pytest

from tests.classify.sites import site


@pytest.fixture(scope="session")
def heldout_site():
    """(root, truth) of the held-out synthetic site (seed 4242, 6 patients)."""
    return site()
