"""Artifact stores against a real local directory and a real S3-compatible HTTP server (moto, subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path

import httpx
import pytest

from coworld_pipeline.runtime.artifacts import (
    ArtifactStore,
    LocalArtifactStore,
    S3ArtifactStore,
    read_uri,
    store_from_env,
)
from coworld_pipeline.runtime.process_runtime import free_port


@pytest.fixture(scope="module")
def s3_endpoint():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{url}/moto-api/", timeout=1.0)
            break
        except httpx.HTTPError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("moto server did not start") from None
            time.sleep(0.1)
    try:
        yield url
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
def aws_env(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def _workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    (ws / "logs").mkdir(parents=True)
    (ws / "config.json").write_text('{"tokens": ["a", "b"]}')
    (ws / "results.json").write_text('{"scores": [1, 2]}')
    (ws / "replay.json").write_text('{"frames": []}')
    (ws / "replay.json.z").write_bytes(zlib.compress(b'{"frames": []}'))
    (ws / "logs" / "game.stdout.log").write_text("hello\n")
    (ws / "logs" / "policy_agent_0.log").write_text("p0\n")
    return ws


EXPECTED = [
    "config.json",
    "logs/game.stdout.log",
    "logs/policy_agent_0.log",
    "replay.json",
    "replay.json.z",
    "results.json",
]


def test_local_store_roundtrip(tmp_path):
    store = LocalArtifactStore(tmp_path / "store")
    assert isinstance(store, ArtifactStore)
    assert store.game_output_uris("ereq_1") is None and store.output_fetcher("ereq_1") is None
    assert store.list_files("ereq_1") == [] and store.fetch("ereq_1", "results.json") is None

    uris = store.put_episode_dir("ereq_1", _workspace(tmp_path))
    assert sorted(uris) == EXPECTED
    assert store.list_files("ereq_1") == EXPECTED
    assert store.fetch("ereq_1", "logs/policy_agent_0.log") == b"p0\n"
    assert uris["results.json"] == store.uri_for("ereq_1", "results.json")
    assert uris["results.json"].startswith("file://")
    assert read_uri(uris["results.json"]) == b'{"scores": [1, 2]}'
    assert store.read_uri(uris["config.json"]) == b'{"tokens": ["a", "b"]}'
    # Storing a workspace that already is the episode directory is a no-op that still lists URIs.
    assert store.put_episode_dir("ereq_1", store.episode_dir("ereq_1")) == uris
    with pytest.raises(ValueError):
        store.uri_for("../x", "results.json")
    with pytest.raises(ValueError):
        store.fetch("ereq_1", "../../etc/passwd")


def test_s3_store_roundtrip_and_presigned_game_writes(tmp_path, s3_endpoint, aws_env):
    store = S3ArtifactStore("coworld-test", prefix="league/a", endpoint_url=s3_endpoint, create_bucket=True)
    assert isinstance(store, ArtifactStore)
    assert store.list_files("ereq_2") == [] and store.fetch("ereq_2", "results.json") is None

    # The game writes its outputs over plain HTTP with the presigned PUT URLs (what orchard.uris does).
    outputs = store.game_output_uris("ereq_2")
    assert set(outputs) == {"results", "replay"}
    for output, body in (("results", b'{"scores": [3, 4]}'), ("replay", b'{"frames": [1]}')):
        response = httpx.put(outputs[output], content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 200, response.text
    fetch = store.output_fetcher("ereq_2")
    assert fetch("results") == b'{"scores": [3, 4]}'
    assert fetch("replay") == b'{"frames": [1]}'

    # A retry gets fresh slots: the previous attempt's outputs are gone.
    store.game_output_uris("ereq_2")
    assert fetch("results") is None

    uris = store.put_episode_dir("ereq_2", _workspace(tmp_path))
    assert sorted(uris) == EXPECTED
    assert uris["results.json"] == "s3://coworld-test/league/a/episodes/ereq_2/results.json"
    assert store.list_files("ereq_2") == EXPECTED
    assert store.fetch("ereq_2", "logs/game.stdout.log") == b"hello\n"
    assert store.read_uri(uris["replay.json.z"]) == zlib.compress(b'{"frames": []}')
    assert httpx.get(store.browse_url(uris["results.json"])).content == b'{"scores": [1, 2]}'
    assert store.list_files("ereq_other") == []


def test_store_from_env(tmp_path, s3_endpoint, aws_env, monkeypatch):
    local = store_from_env({"COWORLD_HOME": str(tmp_path / "home")})
    assert isinstance(local, LocalArtifactStore) and local.root == (tmp_path / "home").resolve()
    env = {
        "COWORLD_ARTIFACT_STORE": "s3",
        "COWORLD_S3_BUCKET": "coworld-env",
        "COWORLD_S3_PREFIX": "p",
        "COWORLD_S3_ENDPOINT_URL": s3_endpoint,
    }
    s3 = store_from_env(env)
    assert isinstance(s3, S3ArtifactStore) and s3 is store_from_env(dict(env))
    s3.ensure_bucket()
    uris = s3.put_episode_dir("ereq_3", _workspace(tmp_path))
    # Module-level read_uri resolves s3:// through the environment's settings.
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert json.loads(read_uri(uris["results.json"])) == {"scores": [1, 2]}
    with pytest.raises(ValueError):
        store_from_env({"COWORLD_ARTIFACT_STORE": "s3"})
    with pytest.raises(ValueError):
        store_from_env({"COWORLD_ARTIFACT_STORE": "ftp"})
    assert os.environ["COWORLD_S3_BUCKET"] == "coworld-env"
