"""Orchard test helpers: real subprocesses on loopback, polling with deadlines (no sleeps to synchronize)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ORCHARD_DIR = Path(__file__).resolve().parents[1]
if str(ORCHARD_DIR) not in sys.path:
    sys.path.insert(0, str(ORCHARD_DIR))

PYTHON = sys.executable


def subprocess_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("COGAME_", "COWORLD_")) and key != "PYTHONPATH"
    }
    env["PYTHONPATH"] = str(ORCHARD_DIR)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", errors="replace")


def artifacts_dir() -> Path:
    path = Path(os.environ.get("COWORLD_TEST_ARTIFACTS") or ORCHARD_DIR / "tests" / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class GameProcess:
    workdir: Path
    port: int
    tokens: list[str]
    process: subprocess.Popen
    players: list[subprocess.Popen] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def player_url(self, slot: int, token: str | None = None) -> str:
        return self.ws(f"/player?slot={slot}&token={token if token is not None else self.tokens[slot]}")

    def start_player(self, slot: int, module: str) -> subprocess.Popen:
        log = open(self.workdir / f"player{slot}.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [PYTHON, "-m", f"orchard.players.{module}"],
            cwd=ORCHARD_DIR,
            env=subprocess_env({"COWORLD_PLAYER_WS_URL": self.player_url(slot)}),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.players.append(proc)
        return proc

    def wait(self, timeout: float = 30) -> int:
        return self.process.wait(timeout=timeout)

    def stdout(self) -> str:
        return (self.workdir / "game.stdout.log").read_text()

    def stderr(self) -> str:
        return (self.workdir / "game.stderr.log").read_text()

    def results(self) -> dict[str, Any]:
        return json.loads((self.workdir / "results.json").read_text())

    def replay_bytes(self) -> bytes:
        return (self.workdir / "replay.json").read_bytes()

    def stop(self) -> None:
        for proc in [*self.players, self.process]:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def start_game(
    workdir: Path,
    config: dict[str, Any],
    extra_env: dict[str, str] | None = None,
    wait_healthy: bool = True,
) -> GameProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (workdir / "config.json").write_text(json.dumps(config, indent=2))
    env = subprocess_env(
        {
            "COGAME_HOST": "127.0.0.1",
            "COGAME_PORT": str(port),
            "COGAME_CONFIG_URI": (workdir / "config.json").as_uri(),
            "COGAME_RESULTS_URI": (workdir / "results.json").as_uri(),
            "COGAME_SAVE_REPLAY_URI": (workdir / "replay.json").as_uri(),
            **(extra_env or {}),
        }
    )
    process = subprocess.Popen(
        [PYTHON, "-m", "orchard.game"],
        cwd=ORCHARD_DIR,
        env=env,
        stdout=open(workdir / "game.stdout.log", "wb"),  # noqa: SIM115
        stderr=open(workdir / "game.stderr.log", "wb"),  # noqa: SIM115
    )
    game = GameProcess(workdir, port, list(config.get("tokens", [])), process)
    if wait_healthy:

        def healthy() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"game exited early: {(workdir / 'game.stderr.log').read_text()}")
            try:
                return http_get(f"{game.base}/healthz", timeout=1)[0] == 200
            except OSError:
                return False

        wait_until(healthy, 15, "game /healthz")
    return game


def start_replay_server(workdir: Path, extra_env: dict[str, str] | None = None) -> GameProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = subprocess_env({"COGAME_HOST": "127.0.0.1", "COGAME_PORT": str(port), **(extra_env or {})})
    if "COGAME_LOAD_REPLAY_URI" not in env:
        env["COGAME_REPLAY_SERVER"] = "1"
    process = subprocess.Popen(
        [PYTHON, "-m", "orchard.game"],
        cwd=ORCHARD_DIR,
        env=env,
        stdout=open(workdir / "replay-server.stdout.log", "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
    server = GameProcess(workdir, port, [], process)

    def healthy() -> bool:
        if process.poll() is not None:
            raise AssertionError("replay server exited early")
        try:
            return http_get(f"{server.base}/healthz", timeout=1)[0] == 200
        except OSError:
            return False

    wait_until(healthy, 15, "replay server /healthz")
    return server


def make_config(
    seed: int = 5, max_ticks: int = 60, tick_rate: float = 0, slots: int = 2, **extra: Any
) -> dict[str, Any]:
    return {
        "tokens": [f"token-{slot}-{seed}" for slot in range(slots)],
        "players": [{"name": f"Player {slot}"} for slot in range(slots)],
        "seed": seed,
        "max_ticks": max_ticks,
        "tick_rate": tick_rate,
        "final_linger_seconds": 0,
        **extra,
    }


def run_full_episode(workdir: Path, config: dict[str, Any], modules: list[str]) -> GameProcess:
    game = start_game(workdir, config)
    try:
        for slot, module in enumerate(modules):
            game.start_player(slot, module)
        assert game.wait(timeout=60) == 0, game.stderr()
        for proc in game.players:
            assert proc.wait(timeout=15) == 0
    finally:
        game.stop()
    return game
