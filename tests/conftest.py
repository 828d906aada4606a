"""Suite-wide pytest configuration: server fixtures (PostgreSQL, S3, Orthanc) come from
tests/fixtures/servers.py and start on loopback only when a test asks for them; an Airflow home of the
tests' own comes from tests/fixtures/airflow.py.

Hypothesis runs derandomized by default, so CI's verdict on a commit does not depend on the draw
(a property test that fails, fails on every run); `HYPOTHESIS_PROFILE=explore` draws fresh examples
while developing."""
import os

from hypothesis import settings

settings.register_profile("deterministic", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))

pytest_plugins = ["tests.fixtures.servers", "tests.fixtures.airflow"]


def pytest_addoption(parser) -> None:  # noqa: ANN001 - pytest.Parser
    """The scale suite's inputs (tests/scale, run by benchmarks/end_to_end.py, deselected otherwise)."""
    group = parser.getgroup("scale", "the scale suite (tests/scale)")
    group.addoption("--scale-run", default=None, help="a benchmark run's description (JSON) to check")
    group.addoption("--scale-reference", default=None,
                    help="an earlier benchmark output (JSON with a digest) the run must equal")
