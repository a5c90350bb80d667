"""Every typed failure, provoked for real and observed through the `coworld run-episode` CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import make_testkit, run_cli

CASES = [
    # (error type, game env, player env, cert config overrides, extra CLI args, slot to blame)
    ("game_start_failed", {"TESTKIT_FAULT": "never_healthy"}, None, None, [], None),
    ("game_crashed", {"TESTKIT_FAULT": "crash"}, None, None, [], None),
    ("game_timeout", {"TESTKIT_FAULT": "hang"}, None, None, ["--timeout", "2"], None),
    ("player_crashed", None, {"TESTKIT_PLAYER": "crash"}, None, [], 1),
    (
        "player_never_connected",
        None,
        {"TESTKIT_PLAYER": "never_connect"},
        {"player_connect_timeout_seconds": 1},
        [],
        1,
    ),
    ("invalid_results", {"TESTKIT_FAULT": "bad_results"}, None, None, [], None),
    ("missing_results", {"TESTKIT_FAULT": "no_results"}, None, None, [], None),
    ("missing_replay", {"TESTKIT_FAULT": "no_replay"}, None, None, [], None),
    ("contract_violation", {"TESTKIT_FAULT": "accept_bad_token"}, None, None, [], None),
]


@pytest.mark.parametrize(
    ("error_type", "game_env", "player_env", "cert", "extra", "slot"), CASES, ids=[c[0] for c in CASES]
)
def test_failure_is_typed_and_keeps_logs(
    tmp_path: Path, error_type: str, game_env, player_env, cert, extra: list[str], slot: int | None
) -> None:
    manifest = make_testkit(tmp_path, game_env=game_env, player_env=player_env, cert_config=cert)
    workspace = tmp_path / "ws"
    proc = run_cli(
        "run-episode", str(manifest), "--runtime", "process", "-o", str(workspace), "--json", *extra
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    info = json.loads((workspace / "error_info.json").read_text())
    assert info["error_type"] == error_type
    assert info["failed_policy_index"] == slot
    assert json.loads(proc.stdout)["error"]["error_type"] == error_type
    logs = workspace / "logs"
    assert (logs / "game.stdout.log").exists() and (logs / "game.stderr.log").exists()
    if error_type not in ("game_start_failed", "contract_violation"):  # fail before players start
        assert (logs / "policy_agent_0.log").exists() and (logs / "policy_agent_1.log").exists()
    if error_type == "game_crashed":
        assert "boom: simulated crash" in (logs / "game.stderr.log").read_text()
        assert "boom" in info["details"]["game_stderr_tail"]
    if error_type == "player_crashed":
        assert "player crashing on purpose" in (logs / "policy_agent_1.log").read_text()
        assert "player crashing on purpose" in info["details"]["player_log_tail"]


@pytest.mark.docker
def test_image_missing(tmp_path: Path, docker_images: None) -> None:
    manifest = make_testkit(tmp_path, image="coworld/no-such-image:0")
    workspace = tmp_path / "ws"
    proc = run_cli("run-episode", str(manifest), "--runtime", "docker", "-o", str(workspace), "--json")
    assert proc.returncode == 1, proc.stderr
    info = json.loads((workspace / "error_info.json").read_text())
    assert info["error_type"] == "image_missing"
    assert info["blame"] == "platform"
    assert "coworld/no-such-image:0" in info["message"]
    assert (workspace / "logs").is_dir()
