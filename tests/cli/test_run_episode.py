"""`coworld run-episode` / `play` / `replay` / `certify` with the Orchard example, as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from coworld_pipeline.contract import load_manifest
from coworld_pipeline.contract.episode_request import certification_request
from tests.conftest import COWORLD, ORCHARD_DIR, REPO, run_cli

MANIFEST = str(ORCHARD_DIR / "coworld_manifest.json")
IMAGE = "coworld/orchard:0.1.0"


@pytest.mark.parametrize("runtime", ["process", pytest.param("docker", marks=pytest.mark.docker)])
def test_orchard_certifies(runtime: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    if runtime == "docker":
        request.getfixturevalue("docker_images")
    proc = run_cli("certify", MANIFEST, "--runtime", runtime, "-o", str(tmp_path / "cert"), "--json")
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, report
    assert report["ok"]
    names = {c["check"] for c in report["checks"]}
    for needed in (
        "/player refuses a bad token",
        "/global sends a first message and a Pong",  # Orchard is a 0.1.64 Coworld: ping/pong checked
        "/replay sends a first message",  # (0.1.64 replay mode: COGAME_LOAD_REPLAY_URI, no ?uri= to refuse)
        "results.json matches results_schema",
        "images present",
    ):
        assert needed in names
    assert (tmp_path / "cert" / "replay.json").exists()


def test_one_image_fills_every_slot_of_a_four_player_variant(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    proc = run_cli(
        "run-episode",
        MANIFEST,
        IMAGE,
        "--run",
        "python",
        "--run",
        "-m",
        "--run",
        "orchard.players.greedy",
        "--variant",
        "four",
        "--runtime",
        "process",
        "-o",
        str(ws),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["slot_count"] == 4 and len(summary["scores"]) == 4
    assert len(list((ws / "logs").glob("policy_agent_*.log"))) == 4
    assert {"results.json", "replay.json", "replay.json.z", "config.json"} <= set(summary["files"])


def test_wrong_number_of_images_is_a_usage_error() -> None:
    proc = run_cli("run-episode", MANIFEST, IMAGE, IMAGE, "--runtime", "process")
    assert proc.returncode == 2
    assert "give 1 image (all slots) or 3 images" in proc.stderr


def test_unknown_variant_and_run_without_image_are_usage_errors() -> None:
    assert (
        "unknown variant 'nope'"
        in run_cli("run-episode", MANIFEST, "--variant", "nope", "--runtime", "process").stderr
    )
    assert run_cli("run-episode", MANIFEST, "--run", "x", "--runtime", "process").returncode == 2
    assert run_cli("run-episode", MANIFEST, "--runtime", "podman").returncode == 2


def test_limits_no_container_can_run_with_are_usage_errors(tmp_path: Path) -> None:
    """Named before anything starts: NaN CPUs used to fail as a platform_error once the game was being
    created, and a pids limit of 0 or less ran with no limit at all (Docker's reading of it)."""
    out = tmp_path / "out"
    proc = run_cli(
        "run-episode", MANIFEST, "-o", str(out), "--json",
        "--game-cpus", "nan", "--player-memory", "lots", "--game-memory", "2m", "--pids-limit", "-5",
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    problems = {p["path"]: p["message"] for p in json.loads(proc.stdout)["problems"]}
    assert problems == {
        "--game-cpus": "nan is not a CPU count from 0.01 to 1024",
        "--game-memory": "'2m' is not between 6m and 1 PiB",
        "--player-memory": "'lots' is not a memory size like 512m, 2g or a byte count",
        "--pids-limit": "-5 is not a process count from 1 to 4,194,304",
    }
    assert not out.exists()
    huge = run_cli("run-episode", MANIFEST, "-o", str(out), "--game-memory", "9" * 400, "--json")
    assert huge.returncode == 2 and "is not a memory size a machine can have" in huge.stdout, huge.stdout
    human = run_cli("round", "run", "--league", "any", "--player-cpus", "0", "--runtime", "process")
    assert human.returncode == 2 and "--player-cpus: 0.0 is not a CPU count" in human.stderr, human.stderr
    # A limit from the environment is named by its variable; an option given too is what counts.
    env = {**os.environ, "COWORLD_GAME_MEMORY": "lots", "COWORLD_PIDS_LIMIT": "0"}
    from_env = run_cli("run-episode", MANIFEST, "-o", str(out), "--pids-limit", "-1", "--json", env=env)
    problems = {p["path"] for p in json.loads(from_env.stdout)["problems"]}
    assert from_env.returncode == 2 and problems == {"COWORLD_GAME_MEMORY", "--pids-limit"}, from_env.stdout


def test_request_file_with_policy_names(tmp_path: Path) -> None:
    data = certification_request(load_manifest(MANIFEST)).to_json_dict()
    data["policy_names"] = ["Greedy Gus", "Planner Pam", "Random Rae"]
    path = tmp_path / "request.json"
    path.write_text(json.dumps(data))
    ws = tmp_path / "ws"
    proc = run_cli("run-episode", MANIFEST, str(path), "--runtime", "process", "-o", str(ws), "--json")
    assert proc.returncode == 0, proc.stderr
    assert "Planner Pam" in (ws / "replay.json").read_text()


def test_same_seed_same_players_same_replay(tmp_path: Path) -> None:
    replays = []
    for i in range(2):
        ws = tmp_path / f"ws{i}"
        proc = run_cli(
            "run-episode", MANIFEST, "--seed", "1234", "--runtime", "process", "-o", str(ws), "--json"
        )
        assert proc.returncode == 0, proc.stderr
        replays.append((ws / "replay.json").read_bytes())
    assert replays[0] == replays[1]
    other = tmp_path / "ws-other"
    # The human output, stderr (the phase table) and stdout (the summary) on one pipe, as in a log file.
    human = run_cli(
        "run-episode",
        MANIFEST,
        "--seed",
        "99",
        "--runtime",
        "process",
        "-o",
        str(other),
        stderr=subprocess.STDOUT,
    )
    assert human.returncode == 0, human.stdout
    assert (other / "replay.json").read_bytes() != replays[0]
    lines = human.stdout.splitlines()
    assert any(line.startswith("└") for line in lines), (
        "the phase table's last border is on a line of its own"
    )
    assert any(line.startswith("episode succeeded in") for line in lines), human.stdout


def test_play_prints_links_and_finishes(tmp_path: Path) -> None:
    proc = run_cli(
        "play", MANIFEST, "--runtime", "process", "--no-open-browser", "-o", str(tmp_path / "ws"), "--json"
    )
    assert proc.returncode == 0, proc.stderr
    links = json.loads(proc.stdout[: proc.stdout.index("\n}\n") + 2])["links"]
    assert len(links["players"]) == 3 and "token=" in links["players"][0]  # the certification's slots
    assert links["global"].endswith("/client/global") and links["admin"].endswith("/client/admin")


@pytest.mark.parametrize("runtime", ["process", pytest.param("docker", marks=pytest.mark.docker)])
def test_replay_serves_a_compressed_replay_until_interrupted(
    tmp_path: Path, runtime: str, request: pytest.FixtureRequest
) -> None:
    if runtime == "docker":
        request.getfixturevalue("docker_images")
    ws = tmp_path / "ws"
    assert run_cli("run-episode", MANIFEST, "--runtime", "process", "-o", str(ws)).returncode == 0
    proc = subprocess.Popen(
        [*COWORLD, "replay", MANIFEST, str(ws / "replay.json.z"), "--runtime", runtime, "--json"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        buffer = line
        while proc.stdout and not buffer.rstrip().endswith("}"):
            buffer += proc.stdout.readline()
        url = json.loads(buffer)["url"]
        assert "/client/replay?uri=" in url
        assert httpx.get(url, timeout=10).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_replay_of_a_missing_file_is_a_usage_error() -> None:
    proc = run_cli("replay", MANIFEST, "/nonexistent/replay.json", "--runtime", "process")
    assert proc.returncode == 2 and "no replay file" in proc.stderr
