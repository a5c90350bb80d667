"""Orchard tick-speed benchmark.

Runs a 100-tick, 2-slot, ``tick_rate`` 0 Orchard episode (game server + greedy + planner player processes,
all on loopback) several times and reports the game time: from the episode start (all players connected) to
the results being written, as logged by the game (``episode_seconds=...``). Target: <= 1.5 s.

    .venv/bin/python benchmarks/orchard_tick_speed.py [--runs 5] [--ticks 100] [--target 1.5]

Exit status 1 when the median exceeds the target.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ORCHARD_DIR = Path(__file__).resolve().parents[1] / "examples" / "orchard"
EPISODE_RE = re.compile(r"episode_seconds=([0-9.]+)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def env_for(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COGAME_", "COWORLD_"))}
    env["PYTHONPATH"] = str(ORCHARD_DIR)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def wait_healthy(port: int, process: subprocess.Popen, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("game exited before becoming healthy")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError("game never became healthy")


def run_once(workdir: Path, seed: int, ticks: int) -> tuple[float, dict]:
    workdir.mkdir(parents=True, exist_ok=True)
    tokens = [f"bench-{seed}-0", f"bench-{seed}-1"]
    config = {
        "tokens": tokens,
        "players": [{"name": "Greedy"}, {"name": "Planner"}],
        "seed": seed,
        "max_ticks": ticks,
        "tick_rate": 0,
        "final_linger_seconds": 0,
    }
    (workdir / "config.json").write_text(json.dumps(config))
    port = free_port()
    game = subprocess.Popen(
        [sys.executable, "-m", "orchard.game"],
        cwd=ORCHARD_DIR,
        env=env_for(
            {
                "COGAME_HOST": "127.0.0.1",
                "COGAME_PORT": str(port),
                "COGAME_CONFIG_URI": (workdir / "config.json").as_uri(),
                "COGAME_RESULTS_URI": (workdir / "results.json").as_uri(),
                "COGAME_SAVE_REPLAY_URI": (workdir / "replay.json").as_uri(),
            }
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    players = []
    try:
        wait_healthy(port, game)
        for slot, module in enumerate(("greedy", "planner")):
            url = f"ws://127.0.0.1:{port}/player?slot={slot}&token={tokens[slot]}"
            players.append(
                subprocess.Popen(
                    [sys.executable, "-m", f"orchard.players.{module}"],
                    cwd=ORCHARD_DIR,
                    env=env_for({"COWORLD_PLAYER_WS_URL": url}),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        output, _ = game.communicate(timeout=120)
        if game.returncode != 0:
            raise RuntimeError(f"game exited {game.returncode}:\n{output}")
        for player in players:
            player.wait(timeout=15)
    finally:
        for process in [*players, game]:
            if process.poll() is None:
                process.kill()
                process.wait()
    match = EPISODE_RE.search(output)
    if not match:
        raise RuntimeError(f"no episode_seconds line in game output:\n{output}")
    return float(match.group(1)), json.loads((workdir / "results.json").read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ticks", type=int, default=100)
    parser.add_argument("--target", type=float, default=1.5, help="seconds; the median must not exceed it")
    args = parser.parse_args(argv)
    times = []
    with tempfile.TemporaryDirectory(prefix="orchard-bench-") as tmp:
        for run in range(args.runs):
            seconds, results = run_once(Path(tmp) / f"run{run}", seed=100 + run, ticks=args.ticks)
            times.append(seconds)
            print(
                f"run {run}: episode_seconds={seconds:.4f} ticks={results['ticks']} "
                f"scores={results['scores']}"
            )
    median = statistics.median(times)
    print(
        f"orchard tick speed ({args.ticks} ticks, 2 slots, tick_rate 0, greedy vs planner): "
        f"min={min(times):.4f}s median={median:.4f}s max={max(times):.4f}s "
        f"per_tick_median={median / args.ticks * 1000:.2f}ms target<={args.target}s"
    )
    return 0 if median <= args.target else 1


if __name__ == "__main__":
    raise SystemExit(main())
