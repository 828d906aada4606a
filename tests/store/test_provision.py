"""`curate store init` creates the store's bucket on a real S3 server (SeaweedFS) and is a no-op the
second time, as docker-compose's s3-init job runs it on every start."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys

import pytest

pytestmark = pytest.mark.server


def _init(uri: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "curate", "store", "init", "--store", uri, "--json"],
                          env=env, capture_output=True, text=True, timeout=120)


def test_init_creates_the_bucket_once(s3_server, tmp_path):
    env = dict(os.environ, **s3_server.env(), CURATE_HOME=str(tmp_path))
    bucket = f"site-{secrets.token_hex(4)}"
    first = _init(f"s3://{bucket}/north", env)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"store": f"s3://{bucket}/north", "state": "created"}
    s3_server.client().head_bucket(Bucket=bucket)
    again = _init(f"s3://{bucket}/north", env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["state"] == "exists"


def test_init_names_a_refusal(s3_server, tmp_path):
    env = {**os.environ, **s3_server.env(), "CURATE_HOME": str(tmp_path), "AWS_SECRET_ACCESS_KEY": "wrong"}
    out = _init(f"s3://site-{secrets.token_hex(4)}", env)
    assert out.returncode != 0
    assert "cannot be" in out.stderr and "Traceback" not in out.stderr


def test_init_of_a_folder_store(tmp_path):
    out = _init(str(tmp_path / "store"), dict(os.environ, CURATE_HOME=str(tmp_path)))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "store").is_dir()
