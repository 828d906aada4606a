"""Fixtures of the annotation tests: generated de-identified DICOM, a service on SQLite or
PostgreSQL (in-process for API tests, a real uvicorn on loopback for the browser and schemathesis)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from annotation.app import create_app
from annotation.config import Settings
from tests.annotation import dicomgen

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def store_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local store with a deid zone holding a few small series and a multi-frame object."""
    root = tmp_path_factory.mktemp("store")
    for n in range(6):
        dicomgen.write_series(root / "deid" / f"series{n}", 3, seed=n, plant_phi=(n == 0))
    dicomgen.write_multiframe(root / "deid" / "mf" / "0000.dcm", frames=3)
    raw = dicomgen.write_series(root / "raw" / "seriesR", 1)
    assert raw
    return root


def series_uris(store_root: Path, n: int) -> list[str]:
    return [p.as_uri() for p in sorted((store_root / "deid" / f"series{n}").glob("*.dcm"))]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'annotation.db'}"
    return request.getfixturevalue("fresh_postgres_url")  # tests/fixtures/servers.py: dropped at session end


def make_client(database_url: str, **overrides) -> TestClient:
    settings = Settings(database_url=database_url, **overrides)
    return TestClient(create_app(settings), base_url="http://127.0.0.1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """`curate annotation serve` in a subprocess on loopback; its log kept for PHI checks."""

    def __init__(self, database_url: str, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        self.log_path = log_path
        full_env = {**os.environ, "ANNOTATION_DATABASE_URL": database_url, **(env or {})}
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "curate.main", "annotation", "serve", "--host", "127.0.0.1",
             "--port", str(self.port)],
            cwd=ROOT, env=full_env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/api/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("service did not start in 60 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture
def live_server_factory(tmp_path: Path):
    servers: list[LiveServer] = []

    def start(database_url: str | None = None, env: dict[str, str] | None = None) -> LiveServer:
        url = database_url or f"sqlite:///{tmp_path / f'live{len(servers)}.db'}"
        server = LiveServer(url, tmp_path / f"service{len(servers)}.log", env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
