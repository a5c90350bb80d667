"""Players started early behind the start gate run nothing until it opens, then their own argv as PID 1."""

from __future__ import annotations

import secrets
from pathlib import Path

import docker
import pytest

from coworld_pipeline.runtime import make_runtime
from coworld_pipeline.runtime.base import LaunchSpec
from coworld_pipeline.runtime.start_gate import gate_binary
from tests.conftest import wait_for

pytestmark = pytest.mark.docker


def test_a_prepared_player_runs_only_once_released(tmp_path: Path, docker_images: None) -> None:
    if gate_binary() is None:
        pytest.skip("no C compiler on this host: players start the ordinary way")
    client = docker.from_env()
    runtime = make_runtime("docker")
    run_id = secrets.token_hex(8)
    log = tmp_path / "player.log"
    spec = LaunchSpec(
        role="player",
        name="player-0",
        image="coworld/testkit:dev",
        run=["sh", "-c", 'echo "ran as pid $$ with $MARK"; sleep 30'],
        env={"MARK": "its own env"},
        stdout_path=log,
        slot=0,
    )
    with runtime.sandbox(run_id, "gatetest") as box:
        release = box.prepare(spec)
        name = f"coworld-gatetest-player-0-{run_id}"
        wait_for(
            lambda: any(c.status == "running" for c in client.containers.list(filters={"name": name})),
            30,
            "the gated player container to run",
            0.05,
        )
        # Its container runs, yet its program has not started: nothing in its log.
        assert not log.exists() or log.read_text() == ""
        release()
        text = wait_for(
            lambda: log.read_text() if log.exists() and "ran as" in log.read_text() else None,
            30,
            "the player's own program to run",
            0.05,
        )
        # The gate exec'd the program in its place: PID 1, with the player's env.
        assert "ran as pid 1 with its own env" in text
    assert not client.containers.list(all=True, filters={"name": name})
