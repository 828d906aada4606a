"""One real annotation service per module (a subprocess on loopback), reached through the Airflow
connection `curate_annotation` set in the environment, as a worker or the triggerer would see it."""
from __future__ import annotations

import pytest

from tests.operators.world import ServiceWorld, start_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> ServiceWorld:
    w = start_world(tmp_path_factory.mktemp("service"))
    yield w
    w.server.stop()


@pytest.fixture
def connection(world: ServiceWorld, monkeypatch: pytest.MonkeyPatch) -> ServiceWorld:
    monkeypatch.setenv("AIRFLOW_CONN_CURATE_ANNOTATION", world.connection())
    return world
