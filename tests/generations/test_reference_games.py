"""Every Coworld generation runs unchanged: the reference packages' own example game, per generation.

For 0.1.0, 0.1.11 and 0.1.64: `validate`, `run-episode` (docker, and process where the game honours
COGAME_PORT), `certify`, `replay`, and a league round, all through the CLI as a user runs them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from coworld_pipeline.contract import load_manifest
from coworld_pipeline.runtime.probes import first_message, http_status, ws_url
from coworld_pipeline.runtime.process_runtime import ProcessRuntime
from coworld_pipeline.runtime.replay_server import serve_replay
from tests.conftest import COWORLD, REPO, run_cli
from tests.generations.packages import VERSIONS, image, make_package, require_reference
from tests.generations.reference import FAST, fast_request, shorten_certification


def printed_json(proc: subprocess.Popen[str]) -> dict:
    """The first JSON document a running command prints (read as it arrives: no polling)."""
    assert proc.stdout is not None
    text = ""
    for line in proc.stdout:
        text += line
        if line.startswith("}"):
            return json.loads(text)
    raise AssertionError(f"the command printed no JSON: {text}")


def ok_json(proc: subprocess.CompletedProcess[str]) -> dict:
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("version", VERSIONS)
def test_validate_records_the_generation(version: str, tmp_path: Path) -> None:
    require_reference(version)
    out = ok_json(run_cli("validate", str(make_package(version, tmp_path)), "--json"))
    assert out["generation"] == version and out["slots"] == "2" and out["warnings"] == []


@pytest.mark.docker
@pytest.mark.parametrize("version", VERSIONS)
def test_run_episode_certify_and_replay_on_docker(version: str, tmp_path: Path) -> None:
    require_reference(version, docker=True)
    manifest = make_package(version, tmp_path)
    out = ok_json(
        run_cli(
            "run-episode",
            str(manifest),
            str(fast_request(manifest, tmp_path)),
            "--json",
            "-o",
            str(tmp_path / "ep"),
        )
    )
    assert out["status"] == "success" and len(out["scores"]) == 2
    if version != "0.1.64":  # same checks, 16 s sooner; 0.1.64 certifies as shipped
        shorten_certification(manifest)
    cert = ok_json(run_cli("certify", str(manifest), "--json", "-o", str(tmp_path / "cert"), timeout=180))
    assert cert["ok"], cert
    checks = {c["check"] for c in cert["checks"]}
    if version == "0.1.64":  # its static viewer replaces the replay routes; /global must answer a Ping
        assert "replay_viewer bundle serves index.html and the replay" in checks
        assert "/global sends a first message and a Pong" in checks
    else:
        assert "/replay refuses a missing replay" in checks
    prefix = "/clients/" if version == "0.1.0" else "/client/"
    assert f"{prefix}global answers 2xx" in checks
    check_replay_command(version, manifest, tmp_path / "ep" / "replay.json.z")


def check_replay_command(version: str, manifest: Path, replay: Path) -> None:
    """`coworld replay` serves a stored replay (0.1.64: its static viewer) until interrupted."""
    server = subprocess.Popen(
        [*COWORLD, "replay", str(manifest), str(replay), "--json"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = printed_json(server)["url"]  # printed once the viewer answers
        base = "/".join(url.split("/", 3)[:3])
        path = "/" + url.split("/", 3)[3]
        assert http_status(base, path.split("#")[0], timeout=10) == 200
        if version == "0.1.64":  # the static viewer: bundle and replay from the platform
            assert http_status(base, "/replay", timeout=10) == 200
        else:
            query = path.split("?", 1)[1]
            message = first_message(ws_url(base, f"/replay?{query}"), 10, "/replay")
            assert json.loads(message)["type"] == "replay"
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    assert server.returncode == 0, server.stderr.read()


@pytest.mark.parametrize("version", ["0.1.11", "0.1.64"])  # 0.1.0 games ignore COGAME_PORT (below)
def test_run_episode_on_the_process_runtime(version: str, tmp_path: Path) -> None:
    require_reference(version)
    manifest = make_package(version, tmp_path)
    proc = run_cli(
        "run-episode",
        str(manifest),
        str(fast_request(manifest, tmp_path)),
        "--runtime",
        "process",
        "--verify-replay",
        "--json",
        "-o",
        str(tmp_path / "ep"),
    )
    out = ok_json(proc)
    assert out["status"] == "success" and len(out["scores"]) == 2


def test_a_game_binding_8080_itself_is_served_there_or_named(tmp_path: Path) -> None:
    """0.1.0's game binds 0.0.0.0:8080 whatever COGAME_PORT says: a clear failure while that port is
    taken, served on it once it is free."""
    require_reference("0.1.0")
    manifest = make_package("0.1.0", tmp_path)
    m = json.loads(manifest.read_text())
    # Its argvs name image paths (/app/...); on the host the same files sit in the package directory.
    m["game"]["runnable"]["run"] = ["python", "game/server.py"]
    m["player"][0]["run"] = ["python", "player/player.py"]
    manifest.write_text(json.dumps(m))
    request = fast_request(manifest, tmp_path)

    def run(name: str) -> dict:
        argv = ["run-episode", str(manifest), str(request), "--runtime", "process", "--json"]
        proc = run_cli(*argv, "-o", str(tmp_path / name))
        assert "Traceback" not in proc.stderr, proc.stderr
        return json.loads(proc.stdout)

    holder = socket.socket()
    try:
        holder.bind(("0.0.0.0", 8080))
        holder.listen()
    except OSError:
        pass  # someone else holds it: the failure below is the same
    try:
        out = run("taken")
    finally:
        holder.close()
    assert out["error"]["error_type"] == "game_start_failed", out
    assert "binds a fixed port itself" in out["error"]["message"]
    out = run("free")
    if out["status"] != "success":  # another process on this host took 8080 meanwhile
        assert "binds a fixed port itself" in out["error"]["message"], out
    else:
        assert len(out["scores"]) == 2


def test_a_0_1_64_game_replays_through_its_own_replay_mode(tmp_path: Path) -> None:
    """Without a served bundle, 0.1.64's game runs in replay mode from COGAME_LOAD_REPLAY_URI."""
    require_reference("0.1.64")
    manifest_path = make_package("0.1.64", tmp_path)
    ok_json(
        run_cli(
            "run-episode",
            str(manifest_path),
            str(fast_request(manifest_path, tmp_path)),
            "--runtime",
            "process",
            "--json",
            "-o",
            str(tmp_path / "ep"),
        )
    )
    runtime = ProcessRuntime(manifest_path.parent)
    with runtime.sandbox("replay-test", "replay") as box:
        server, url = serve_replay(
            box, load_manifest(manifest_path), tmp_path / "ep" / "replay.json", tmp_path / "rp", 30
        )
        assert "/client/replay?uri=" in url
        message = first_message(ws_url(server.base_url, "/replay"), 10, "/replay")
        assert json.loads(message)["type"] == "replay"


@pytest.mark.docker
@pytest.mark.parametrize("version", VERSIONS)
def test_a_league_of_each_generation_plays_a_round(version: str, tmp_path: Path) -> None:
    require_reference(version, docker=True)
    manifest = make_package(version, tmp_path)
    env = {**os.environ, "COWORLD_HOME": str(tmp_path / "home")}
    env.pop("COWORLD_DATABASE_URL", None)
    player = json.loads(manifest.read_text())["player"][0]["run"]

    def cli(*args: str) -> dict:
        return ok_json(run_cli(*args, "--json", env=env, timeout=300))

    cli("upload-coworld", str(manifest))
    for name in ("left", "right"):
        cli("upload-policy", image(version), "--name", name, *[f"--run={a}" for a in player])
    config = [f"--config={k}={json.dumps(v)}" for k, v in FAST.items()]
    cli("league", "create", "ladder", "--coworld", "paintarena", "--variant", "default", *config)
    for name in ("left", "right"):
        cli("submit", name, "--league", "ladder")
    out = cli("round", "run", "--league", "ladder", "--runtime", "docker")
    assert out["status"] == "completed", out
    assert out["episodes"].get("succeeded", 0) >= 1 and set(out["episodes"]) == {"succeeded"}, out
    assert len(out["rankings"]) == 2
