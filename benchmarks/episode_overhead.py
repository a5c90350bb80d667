"""Runner overhead per episode: wall time of `coworld run-episode` minus the game's own episode time.

For each runtime, runs a 2-slot episode of the testkit game (its results report `episode_seconds`,
the time from all players connected to results written) several times and prints min/median of the
overhead, measured two ways:
- `cli`: the whole `coworld run-episode` process (includes the CLI interpreter's start-up and imports);
- `runner`: `run_episode()` called in-process, as the league and Dagster layers call it.
Targets: <= 1.0 s (process), <= 2.5 s (docker).

Then, side by side, our `run-episode --runtime docker` against the reference 0.1.64 CLI
(`.refvenvs/0.1.64`, scripts/reference-venvs.sh) on the same episode of the reference's own paintarena
(image from scripts/reference-images.sh, a 20-tick request), alternating the two, medians of the
wall time. Target: ours <= 0.6x the reference's. It then splits our median into parts (episode.json's
phases) and prints what the game's and players' own time alone, and with the game's container start,
is as a share of the reference's wall time: how close to the target a runner that cost nothing
could come (0.51x and 0.58x on 2026-12-04, when ours was 0.66x).

    .venv/bin/python benchmarks/episode_overhead.py [--repeat 5] [--runtime process --runtime docker]
                                                    [--no-reference | --only-reference]
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
sys.path.insert(0, str(REPO))  # tests.generations.reference lays the reference's paintarena out
MANIFEST = REPO / "tests" / "fixtures" / "testkit" / "coworld_manifest.json"
TARGETS = {"process": 1.0, "docker": 2.5}
REFERENCE_RATIO = 0.6
# Our episode.json phases, grouped for the side-by-side: "health" (the game booting until /healthz
# answers) and "playing" (players' programs released to the game's container exiting: the players'
# and the game's own work) are not the runner's; the rest is. Player containers start behind the
# start gate while the game boots, so "players" is only what is left of that when the game is ready.
OUR_PARTS = (
    ("CLI start-up, argument and manifest parsing, exit", ("cli",)),
    ("create and start the game's container (engine; network)", ("prepare", "images", "game")),
    ("game boots until /healthz answers (the game's own)", ("health",)),
    ("probes, release the players", ("probes", "players")),
    ("players and game play, the engine reports the game's exit", ("playing",)),
    ("outputs, container and network removal, results", ("players_exit", "cleanup", "results")),
)


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


def timed(argv: list[str], cwd: Path, what: str) -> float:
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=cwd)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return wall


def compare_with_reference(repeat: int) -> bool:
    """Ours vs the reference 0.1.64 CLI, same paintarena episode on Docker; True when on target."""
    from tests.generations.reference import fast_request, make_package, reference_cli

    if not reference_cli("0.1.64").exists():
        print("reference 0.1.64 not installed (bash scripts/reference-images.sh): comparison skipped")
        return True
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest = make_package("0.1.64", root)
        request = fast_request(manifest, root)
        phases: list[dict[str, float]] = []

        def ours(i: int) -> float:
            argv = [sys.executable, "-m", "coworld_cli.main", "run-episode", str(manifest), str(request)]
            argv += ["--runtime", "docker", "-o", str(root / f"ours{i}"), "--json"]
            wall = timed(argv, REPO, "ours")
            episode = json.loads((root / f"ours{i}" / "episode.json").read_text())
            phases.append({**episode["phase_seconds"], "cli": wall - episode["wall_seconds"]})
            return wall

        def reference(i: int) -> float:
            argv = [str(reference_cli("0.1.64")), "run-episode", str(manifest), str(request)]
            return timed([*argv, "-o", str(root / f"ref{i}")], root, "reference 0.1.64 run-episode")

        ours(-1), reference(-1)  # warm-up: image layers and bytecode caches
        runs = [(ours(i), reference(i)) for i in range(repeat)]  # alternating, so drift hits both
    mine, theirs = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
    ratio = mine / theirs
    print(f"\npaintarena 0.1.64, 20 ticks, docker: {repeat} alternating runs each (wall seconds)")
    # Both sides are mostly Docker daemon work and interpreter start-up: on a loaded machine the
    # ratio says little, so the load is part of the figure.
    print(f"load average (1 min) after the runs: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"{'cli':22} {'wall min':>9} {'wall med':>9}")
    print(f"{'ours run-episode':22} {min(r[0] for r in runs):9.3f} {mine:9.3f}")
    print(f"{'reference 0.1.64':22} {min(r[1] for r in runs):9.3f} {theirs:9.3f}")
    print("ours, median seconds per part:")
    for label, names in OUR_PARTS:
        part = statistics.median(sum(p.get(n, 0.0) for n in names) for p in phases[1:])
        print(f"  {label:58} {part:6.3f}")
    game_own = statistics.median(p["health"] + p["playing"] for p in phases[1:])
    with_start = statistics.median(p["health"] + p["playing"] + p["game"] for p in phases[1:])
    ok = ratio <= REFERENCE_RATIO
    verdict = "ok" if ok else "MISSED"
    print(f"ours / reference (medians): {ratio:.2f}x   target <= {REFERENCE_RATIO}x {verdict}")
    print(
        f"the game's and players' own time alone is {game_own / theirs:.2f}x the reference's wall time, "
        f"{with_start / theirs:.2f}x with the game's container start: what ours would be if our CLI, "
        f"runner and cleanup cost nothing"
    )
    return ok


def main() -> None:
    # Measure the platform as installed, with Python modules' bytecode cached: a shell that sets
    # PYTHONDONTWRITEBYTECODE would otherwise recompile the CLI, the game and the players every run.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--runtime", action="append", choices=sorted(TARGETS))
    parser.add_argument("--no-reference", action="store_true", help="skip the reference 0.1.64 comparison")
    parser.add_argument(
        "--only-reference", action="store_true", help="only the reference 0.1.64 comparison (docker)"
    )
    args = parser.parse_args()
    if args.only_reference:
        sys.exit(0 if compare_with_reference(args.repeat) else 1)
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
    if not args.no_reference and "docker" in (args.runtime or ["docker"]):
        failed |= not compare_with_reference(args.repeat)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
