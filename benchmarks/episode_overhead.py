"""Runner overhead per episode: wall time of `coworld run-episode` minus the game's own episode time.

For each runtime, runs a 2-slot episode of the testkit game (its results report `episode_seconds`,
the time from all players connected to results written) several times and prints min/median of the
overhead, measured two ways:
- `cli`: the whole `coworld run-episode` process (includes the CLI interpreter's start-up and imports);
- `runner`: `run_episode()` called in-process, as the league and Dagster layers call it.
Targets: <= 1.0 s (process), <= 2.5 s (docker).

    .venv/bin/python benchmarks/episode_overhead.py [--repeat 5] [--runtime process --runtime docker]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "tests" / "fixtures" / "testkit" / "coworld_manifest.json"
TARGETS = {"process": 1.0, "docker": 2.5}


def one(runtime: str, workspace: Path) -> tuple[float, float]:
    started = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "coworld_cli.main",
            "run-episode",
            str(MANIFEST),
            "--runtime",
            runtime,
            "-o",
            str(workspace),
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"{runtime} episode failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    game = json.loads((workspace / "results.json").read_text())["episode_seconds"]
    return wall, game


def one_in_process(runtime: str, workspace: Path) -> tuple[float, float]:
    from coworld_pipeline.contract import load_manifest
    from coworld_pipeline.contract.episode_request import certification_request
    from coworld_pipeline.runtime import EpisodeOptions, make_runtime, run_episode

    request = certification_request(load_manifest(MANIFEST))
    rt = make_runtime(runtime, base_dir=MANIFEST.parent)
    started = time.monotonic()
    outcome = run_episode(request, workspace, rt, EpisodeOptions(timeout_seconds=60))
    wall = time.monotonic() - started
    if not outcome.ok:
        raise SystemExit(f"{runtime} episode failed: {outcome.error}")
    return wall, json.loads((workspace / "results.json").read_text())["episode_seconds"]


def main() -> None:
    # Measure the platform as installed, with Python modules' bytecode cached: a shell that sets
    # PYTHONDONTWRITEBYTECODE would otherwise recompile the CLI, the game and the players every run.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--runtime", action="append", choices=sorted(TARGETS))
    args = parser.parse_args()
    print(
        f"{'runtime':8} {'measured':8} {'wall min':>9} {'wall med':>9} {'game med':>9} "
        f"{'overhead min':>13} {'overhead med':>13} {'target':>7}"
    )
    failed = False
    for runtime in args.runtime or ["process", "docker"]:
        for label, measure in (("cli", one), ("runner", one_in_process)):
            with tempfile.TemporaryDirectory() as tmp:
                measure(runtime, Path(tmp) / "warmup")
                runs = [measure(runtime, Path(tmp) / f"ws{i}") for i in range(args.repeat)]
            overheads = [wall - game for wall, game in runs]
            med = statistics.median(overheads)
            ok = med <= TARGETS[runtime]
            failed |= not ok
            print(
                f"{runtime:8} {label:8} {min(w for w, _ in runs):9.3f} "
                f"{statistics.median(w for w, _ in runs):9.3f} {statistics.median(g for _, g in runs):9.3f} "
                f"{min(overheads):13.3f} {med:13.3f} {TARGETS[runtime]:7.1f} {'ok' if ok else 'MISSED'}"
            )
    print("(seconds; cli = the whole `coworld run-episode` process, incl. interpreter start-up and imports;")
    print(" runner = run_episode() in-process. Both include the game's and players' own process start-up.)")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
