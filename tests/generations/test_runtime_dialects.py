"""0.1.64 runnable fields reach the runtime: `startup` (port, health path) and `resources` (limits)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import docker
import pytest

from coworld_pipeline.contract import load_manifest
from coworld_pipeline.contract.episode_request import certification_request
from coworld_pipeline.runtime import EpisodeOptions, ResourceLimits, make_runtime, run_episode
from coworld_pipeline.runtime.dialects import runnable_limits, thread_env
from coworld_pipeline.runtime.janitor import LABEL_OWNER, owner_label
from tests.conftest import make_testkit


def newer_testkit(tmp_path: Path) -> Path:
    path = make_testkit(tmp_path)
    data = json.loads(path.read_text())
    data["game"]["runnable"]["startup"] = {"port": 39123, "path": "/healthz", "timeout_seconds": 30}
    data["game"]["runnable"]["resources"] = {"requests": {"cpu": "250m"}, "limits": {"memory": "300Mi"}}
    for player in data["player"]:
        player["resources"] = {"limits": {"cpu": "1500m", "memory": "200Mi"}}
    path.write_text(json.dumps(data))
    return path


def test_resources_map_to_limits_over_the_platform_default(tmp_path: Path) -> None:
    m = load_manifest(newer_testkit(tmp_path))
    default = ResourceLimits(cpus=1.0, memory="1g", pids=64)
    assert runnable_limits(m.game.runnable, default) == ResourceLimits(0.25, str(300 * 2**20), 64)
    player = runnable_limits(m.player[0], default)
    assert player == ResourceLimits(1.5, str(200 * 2**20), 64)
    assert thread_env(player)["OMP_NUM_THREADS"] == "1"
    assert runnable_limits(load_manifest(make_testkit(tmp_path / "plain")).game.runnable, default) is None


@pytest.mark.docker
def test_startup_port_and_resources_on_docker(tmp_path: Path, docker_images: None) -> None:
    client = docker.from_env()
    seen: dict[str, Any] = {}

    def on_phase(phase: str, detail: str) -> None:
        if phase == "playing":
            # This process's containers only: other runs may share the engine.
            for c in client.containers.list(filters={"label": f"{LABEL_OWNER}={owner_label()}"}):
                seen[c.labels["io.coworld.role"] + c.name[-20:]] = c.attrs

    manifest = load_manifest(newer_testkit(tmp_path))
    outcome = run_episode(
        certification_request(manifest),
        tmp_path / "ws",
        make_runtime("docker"),
        # Links asked for: the game's `startup.port` is then published (else probed at its address).
        EpisodeOptions(timeout_seconds=60, on_phase=on_phase, on_game_ready=lambda _links: None),
    )
    assert outcome.ok, outcome.error
    game = next(a for k, a in seen.items() if k.startswith("game"))
    assert "39123/tcp" in game["NetworkSettings"]["Ports"]
    assert "COGAME_PORT=39123" in game["Config"]["Env"]
    assert game["HostConfig"]["NanoCpus"] == 250_000_000 and game["HostConfig"]["Memory"] == 300 * 2**20
    players = [a for k, a in seen.items() if k.startswith("player")]
    assert len(players) == 2
    for p in players:
        assert p["HostConfig"]["NanoCpus"] == 1_500_000_000 and p["HostConfig"]["Memory"] == 200 * 2**20
        assert "OMP_NUM_THREADS=1" in p["Config"]["Env"]
