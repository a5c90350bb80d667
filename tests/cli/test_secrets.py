"""--secret-env reaches only player processes/containers: never the game, a log we write, an
artifact or the CLI's output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coworld_pipeline.contract.episode_request import certification_request
from coworld_pipeline.contract.manifest import load_manifest
from coworld_pipeline.runtime import EpisodeOptions, make_runtime, run_episode
from tests.conftest import make_testkit, run_cli

SECRET_VALUE = "s3cr3t-value-9f8e7d"


def env_keys(log: Path) -> list[str]:
    for line in log.read_text().splitlines():
        if line.startswith("ENV_KEYS="):
            return json.loads(line.removeprefix("ENV_KEYS="))
    raise AssertionError(f"no ENV_KEYS line in {log}")


@pytest.mark.parametrize("runtime", ["process", pytest.param("docker", marks=pytest.mark.docker)])
def test_secret_env_reaches_only_players(
    tmp_path: Path, runtime: str, request: pytest.FixtureRequest
) -> None:
    if runtime == "docker":
        request.getfixturevalue("docker_images")
    manifest = make_testkit(
        tmp_path, game_env={"TESTKIT_FAULT": "print_env"}, player_env={"TESTKIT_PLAYER": "print_env"}
    )
    workspace = tmp_path / "ws"
    proc = run_cli(
        "run-episode",
        str(manifest),
        "--runtime",
        runtime,
        "-o",
        str(workspace),
        "--secret-env",
        f"MY_API_KEY={SECRET_VALUE}",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "MY_API_KEY" in env_keys(workspace / "logs" / "policy_agent_1.log")
    assert "MY_API_KEY" not in env_keys(workspace / "logs" / "game.stdout.log")
    assert SECRET_VALUE not in proc.stdout + proc.stderr
    for path in workspace.rglob("*"):
        if path.is_file():
            assert SECRET_VALUE.encode() not in path.read_bytes(), f"secret leaked into {path}"


def test_malformed_secret_env_is_a_usage_error_without_the_value(tmp_path: Path) -> None:
    manifest = make_testkit(tmp_path)
    proc = run_cli("run-episode", str(manifest), "--runtime", "process", "--secret-env", SECRET_VALUE)
    assert proc.returncode == 2
    assert "--secret-env" in proc.stderr
    assert SECRET_VALUE not in proc.stdout + proc.stderr


@pytest.mark.parametrize("runtime", ["process", pytest.param("docker", marks=pytest.mark.docker)])
def test_players_get_every_generations_env_and_only_their_own_secrets(
    tmp_path: Path, runtime: str, request: pytest.FixtureRequest
) -> None:
    """0.1.0 players read COGAMES_ENGINE_WS_URL, later ones COWORLD_PLAYER_WS_URL: both are set.
    A slot's secret (a league policy's --secret-env) reaches that slot only."""
    if runtime == "docker":
        request.getfixturevalue("docker_images")
    path = make_testkit(
        tmp_path, game_env={"TESTKIT_FAULT": "print_env"}, player_env={"TESTKIT_PLAYER": "print_env"}
    )
    data = json.loads(path.read_text())
    data["player"][0]["env"] = {"TESTKIT_PLAYER": "print_env"}
    path.write_text(json.dumps(data))
    workspace = tmp_path / "ws"
    outcome = run_episode(
        certification_request(load_manifest(path)),
        workspace,
        make_runtime(runtime, base_dir=path.parent),
        EpisodeOptions(timeout_seconds=60, secret_env={1: {"SLOT1_API_KEY": SECRET_VALUE}}),
    )
    assert outcome.ok, outcome.error
    keys = [set(env_keys(workspace / "logs" / f"policy_agent_{slot}.log")) for slot in (0, 1)]
    for slot_keys in keys:
        assert {"COWORLD_PLAYER_WS_URL", "COGAMES_ENGINE_WS_URL"} <= slot_keys
    assert "SLOT1_API_KEY" in keys[1] and "SLOT1_API_KEY" not in keys[0]
    assert "SLOT1_API_KEY" not in env_keys(workspace / "logs" / "game.stdout.log")
    for file in workspace.rglob("*"):
        if file.is_file():
            assert SECRET_VALUE.encode() not in file.read_bytes(), f"secret leaked into {file}"
