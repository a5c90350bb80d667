"""The image runs an episode the way a runner does: game + player containers on a network, then replay mode.

Needs a Docker engine and the base image ``coworld/python-base:bookworm`` (``build_image.sh`` makes both);
the Orchard image itself is rebuilt here (offline, a few seconds) so it matches the working tree.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from orchard_testlib import ORCHARD_DIR, free_port, http_get, wait_until
from websockets.sync.client import connect

pytestmark = pytest.mark.docker

IMAGE = "coworld/orchard:0.1.0"
BASE = "coworld/python-base:bookworm"
DOCKER = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else (shutil.which("docker") or "docker")


def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout, check=check)


@pytest.fixture(scope="module")
def image() -> str:
    try:
        if docker("info", check=False, timeout=20).returncode != 0:
            pytest.skip("no Docker engine (run shared/tools/docker/docker-up.sh)")
    except (OSError, subprocess.TimeoutExpired):
        pytest.skip("no Docker CLI")
    if docker("image", "inspect", BASE, check=False).returncode != 0:
        pytest.skip(f"base image {BASE} missing (run examples/orchard/build_image.sh)")
    build = docker("build", "--network", "none", "-t", IMAGE, str(ORCHARD_DIR), check=False, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    return IMAGE


def test_episode_and_replay_in_containers(image: str, tmp_path: Path, manifest):
    run_id = secrets.token_hex(4)
    network = f"orchard-test-{run_id}"
    alias = f"orchard-game-{run_id}"
    player_ids = [p["player_id"] for p in manifest["certification"]["players"]]
    tokens = [secrets.token_urlsafe(16) for _ in player_ids]
    config = {**manifest["certification"]["game_config"], "tokens": tokens}
    workspace = tmp_path / "coworld"
    workspace.mkdir()
    (workspace / "config.json").write_text(json.dumps(config, indent=2))
    port, replay_port = free_port(), free_port()
    containers: list[str] = []
    docker("network", "create", network)
    try:
        game = f"orchard-test-game-{run_id}"
        containers.append(game)
        docker(
            "run", "-d", "--name", game, "--network", network, "--network-alias", alias,
            "-p", f"127.0.0.1:{port}:8080", "-v", f"{workspace}:/coworld:rw",
            "-e", "COGAME_HOST=0.0.0.0", "-e", "COGAME_PORT=8080",
            "-e", "COGAME_CONFIG_URI=file:///coworld/config.json",
            "-e", "COGAME_RESULTS_URI=file:///coworld/results.json",
            "-e", "COGAME_SAVE_REPLAY_URI=file:///coworld/replay.json",
            "--entrypoint", "python", image, "-m", "orchard.game",
        )  # fmt: skip

        def healthy() -> bool:
            try:
                return http_get(f"http://127.0.0.1:{port}/healthz", timeout=1)[0] == 200
            except OSError:
                return False

        wait_until(healthy, 60, "game container /healthz", interval=0.2)
        for slot, player_id in enumerate(player_ids):
            name = f"orchard-test-player-{run_id}-{slot}"
            containers.append(name)
            url = f"ws://{alias}:8080/player?slot={slot}&token={tokens[slot]}"
            docker(
                "run", "-d", "--name", name, "--network", network, "-e", f"COWORLD_PLAYER_WS_URL={url}",
                "--entrypoint", "python", image, "-m", f"orchard.players.{player_id}",
            )  # fmt: skip
        # like a runner: connect to /global after starting the players (the game may already be over)
        with connect(f"ws://127.0.0.1:{port}/global", open_timeout=10) as viewer:
            assert json.loads(viewer.recv(timeout=10))["type"] == "state"
        assert docker("wait", game, timeout=120).stdout.strip() == "0", docker("logs", game).stdout
        for name in containers[1:]:
            assert docker("wait", name, timeout=30).stdout.strip() == "0", docker("logs", name).stdout
        results = json.loads((workspace / "results.json").read_text())
        assert not list(Draft202012Validator(manifest["game"]["results_schema"]).iter_errors(results))
        assert results["ticks"] == config["max_ticks"]

        replay = f"orchard-test-replay-{run_id}"
        containers.append(replay)
        docker(
            "run", "-d", "--name", replay, "-p", f"127.0.0.1:{replay_port}:8080",
            "-v", f"{workspace}:/coworld:rw", "-e", "COGAME_REPLAY_SERVER=1", image,
        )  # fmt: skip

        def replay_healthy() -> bool:
            try:
                return http_get(f"http://127.0.0.1:{replay_port}/healthz", timeout=1)[0] == 200
            except OSError:
                return False

        wait_until(replay_healthy, 60, "replay container /healthz", interval=0.2)
        uri = "file:///coworld/replay.json"
        assert http_get(f"http://127.0.0.1:{replay_port}/client/replay?uri={uri}")[0] == 200
        with connect(f"ws://127.0.0.1:{replay_port}/replay?uri={uri}", open_timeout=10, max_size=None) as ws:
            first = json.loads(ws.recv(timeout=10))
        assert first["type"] == "replay" and first["results"]["scores"] == results["scores"]
    finally:
        for name in containers:
            docker("rm", "-f", name, check=False)
        docker("network", "rm", network, check=False)
