"""A CLI killed with SIGINT or SIGTERM mid-episode removes every process/container it started."""

from __future__ import annotations

import json
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import (
    COWORLD,
    REPO,
    leftover_runnables,
    make_testkit,
    managed_docker_objects,
    wait_for,
)


def interrupt_mid_episode(tmp_path: Path, runtime: str, sig: signal.Signals) -> None:
    manifest = make_testkit(tmp_path, game_env={"TESTKIT_FAULT": "hang"})
    workspace = tmp_path / "ws"
    proc = subprocess.Popen(
        [
            *COWORLD,
            "run-episode",
            str(manifest),
            "--runtime",
            runtime,
            "-o",
            str(workspace),
            "--timeout",
            "120",
            "--json",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Mid-episode: both players have started and the game is running.
        wait_for(lambda: (workspace / "logs" / "policy_agent_1.log").exists(), 60, "players to start", 0.05)
        if runtime == "docker":
            wait_for(lambda: len(managed_docker_objects()) >= 4, 30, "containers to exist", 0.05)
        else:
            wait_for(lambda: len(leftover_runnables()) >= 3, 30, "game and players to run", 0.05)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    info = json.loads((workspace / "error_info.json").read_text())
    assert info["error_type"] == "interrupted"
    assert (workspace / "logs" / "game.stdout.log").exists()
    assert leftover_runnables() == []
    assert managed_docker_objects() == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_process_runtime_cleans_up_on_signal(tmp_path: Path, sig: signal.Signals) -> None:
    interrupt_mid_episode(tmp_path, "process", sig)


@pytest.mark.docker
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_docker_runtime_cleans_up_on_signal(tmp_path: Path, sig: signal.Signals, docker_images: None) -> None:
    interrupt_mid_episode(tmp_path, "docker", sig)


def test_sigkilled_parent_takes_its_processes_along(tmp_path: Path) -> None:
    """SIGKILL cannot be caught: PR_SET_PDEATHSIG makes the children die with their parent."""
    manifest = make_testkit(tmp_path, game_env={"TESTKIT_FAULT": "hang"})
    workspace = tmp_path / "ws"
    proc = subprocess.Popen(
        [*COWORLD, "run-episode", str(manifest), "--runtime", "process", "-o", str(workspace), "--json"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: len(leftover_runnables()) >= 3, 60, "game and players to run", 0.05)
    proc.kill()
    proc.wait(timeout=30)
    wait_for(lambda: leftover_runnables() == [], 10, "children to die with their parent", 0.05)


@pytest.mark.docker
def test_janitor_reaps_containers_of_a_sigkilled_cli(tmp_path: Path, docker_images: None) -> None:
    manifest = make_testkit(tmp_path, game_env={"TESTKIT_FAULT": "hang"})
    proc = subprocess.Popen(
        [*COWORLD, "run-episode", str(manifest), "--runtime", "docker", "-o", str(tmp_path / "ws"), "--json"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: len(managed_docker_objects()) >= 4, 60, "game, players and the episode network", 0.05)
    proc.kill()
    proc.wait(timeout=30)
    assert managed_docker_objects(), "SIGKILL leaves containers: only the janitor can remove them"
    scratch = list(Path(tempfile.gettempdir()).glob(f"coworld-*-{proc.pid}-*"))
    assert scratch, "SIGKILL leaves the start gate's directory behind as well"
    janitor = subprocess.run(
        [*COWORLD, "janitor", "--json"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert janitor.returncode == 0, janitor.stderr
    reaped = json.loads(janitor.stdout)
    assert reaped["docker"] >= 4
    assert reaped["scratch_dirs"] >= len(scratch)
    assert managed_docker_objects() == []
    assert [path for path in scratch if path.exists()] == []
