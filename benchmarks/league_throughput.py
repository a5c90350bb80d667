"""League throughput under Dagster: one round of fast orchard duels, against the ideal and the CLI.

    .venv/bin/python benchmarks/league_throughput.py [--episodes-per-pair 14] [--pool 2] [--parallelism 2]

1. Starts `dagster dev` on a fresh instance (the repo's dagster.yaml, storage in a temp dir), creates
   a league of orchard's three players (round-robin, `duel`, 3 pairs x N games) that is due, lets the
   `open_rounds` schedule open its round at the next minute (`--open-via direct`: open it from here
   and let the sensor pick it up) and measures the round's wall time from the moment it is open
   until the league closes it. The commissioner
   sensor, run queue, pool and run workers are the real ones; the league database tells when the
   round is done (the `standings` materialization that follows is timed too).
2. Ideal = sum of the episodes' own wall times / concurrency, where concurrency = pool limit (episode
   runs at once) x per-run parallelism p: the episodes-at-once budget (a round smaller than K runs as
   one run playing pool x p episodes at once).
3. Baseline: the same round with `coworld round run --parallel <concurrency>` (no Dagster).

Target: Dagster round wall <= 1.5 x ideal.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from coworld_pipeline.demo import ensure_demo_league  # noqa: E402
from coworld_pipeline.league import LeagueService  # noqa: E402


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(fn, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = fn()
            if value:
                return value
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(interval)


def gql(url: str, query: str, variables: dict | None = None) -> Any:
    body = httpx.post(url, json={"query": query, "variables": variables or {}}, timeout=30).json()
    if body.get("errors"):
        raise RuntimeError(body["errors"])
    return body["data"]


def make_league(
    home: Path, episodes_per_pair: int, interval_minutes: float | None = None
) -> tuple[LeagueService, dict[str, Any]]:
    service = LeagueService(home=home)
    league = ensure_demo_league(
        service,
        name="throughput",
        episodes_per_pair=episodes_per_pair,
        kick_off=False,
        interval_minutes=interval_minutes,
    )
    return service, league


def episode_seconds(service: LeagueService, round_id: str) -> list[float]:
    return [float(e.wall_seconds or 0.0) for e in service.episodes(round_ref=round_id, limit=10_000)]


def dagster_round(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    dagster_home, coworld_home = root / "dagster_home", root / "coworld_home"
    dagster_home.mkdir(parents=True)
    text = (REPO / "dagster.yaml").read_text().replace(".dagster_home", str(dagster_home))
    text = text.replace("default_limit: 2", f"default_limit: {args.pool}")
    (dagster_home / "dagster.yaml").write_text(text)
    port = free_port()
    url = f"http://127.0.0.1:{port}/graphql"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "COWORLD_HOME": str(coworld_home),
        "COWORLD_DEMO": "0",
        "COWORLD_RUNTIME": "process",
        "COWORLD_EPISODES_PER_RUN": str(args.per_run),
        "COWORLD_EPISODE_PARALLELISM": str(args.parallelism),
    }
    log = (root / "dagster_dev.log").open("wb")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("dagster")),
            "dev",
            "-w",
            "workspace.yaml",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        started = time.monotonic()
        wait_until(
            lambda: gql(url, "{ assetNodes { assetKey { path } } }")["assetNodes"], 180, "dagster dev", 1
        )
        ready = time.monotonic() - started
        if args.open_via == "schedule":
            # Due at once; the `open_rounds` schedule opens it at the next minute and requests its runs.
            service, league = make_league(coworld_home, args.episodes_per_pair, interval_minutes=1.0)
            round_id = wait_until(
                lambda: service.open_round_for(league.id), 150, "the scheduled round", 0.05
            )
            t0, t0_epoch = time.monotonic(), time.time()
        else:
            service, league = make_league(coworld_home, args.episodes_per_pair)
            # Let the daemon settle (first sensor tick) so that the round is not timed against start-up.
            time.sleep(args.settle)
            t0, t0_epoch = time.monotonic(), time.time()
            round_id = service.open_round(league.id, "benchmark").round_id
        info = wait_until(
            lambda: (r := service.round(round_id)).status != "running" and r,
            1800,
            "the round to close",
            0.1,
        )
        round_wall = time.monotonic() - t0

        def standings_done():
            data = gql(
                url,
                """query($p: [String!]!) { assetOrError(assetKey: {path: $p}) {
                ... on Asset { assetMaterializations(limit: 5) { partition } } } }""",
                {"p": ["standings"]},
            )
            mats = (data["assetOrError"] or {}).get("assetMaterializations") or []
            return any(m["partition"] == league.key for m in mats)

        wait_until(standings_done, 300, "the standings materialization", 0.2)
        standings_wall = time.monotonic() - t0
        runs = gql(
            url,
            """{ runsOrError(filter: {tags: [{key: "coworld/kind", value: "episodes"}]}) {
                              ... on Runs { results { runId status startTime endTime } } } }""",
        )
        runs = runs["runsOrError"]["results"]
        seconds = episode_seconds(service, round_id)
        timeline = sorted(
            (round(r["startTime"] - t0_epoch, 1), round((r["endTime"] or 0) - t0_epoch, 1)) for r in runs
        )
        return {
            "dagster_ready_seconds": round(ready, 1),
            "status": info.status,
            "episodes": info.episodes,
            "round_wall_seconds": round(round_wall, 2),
            "until_standings_seconds": round(standings_wall, 2),
            "episode_runs": len(runs),
            "episode_run_start_end_seconds": timeline,
            "episode_seconds_sum": round(sum(seconds), 2),
            "episode_seconds_mean": round(sum(seconds) / max(1, len(seconds)), 2),
        }
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=15)
                break
            except subprocess.TimeoutExpired:
                continue
        log.close()


def cli_round(args: argparse.Namespace, root: Path, concurrency: int) -> dict[str, Any]:
    home = root / "cli_home"
    service, league = make_league(home, args.episodes_per_pair)
    t0 = time.monotonic()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "coworld_cli.main",
            "round",
            "run",
            "--league",
            league.id,
            "--parallel",
            str(concurrency),
            "--runtime",
            "process",
            "--json",
        ],
        cwd=REPO,
        env={**os.environ, "COWORLD_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    wall = time.monotonic() - t0
    if out.returncode != 0:
        raise SystemExit(f"coworld round run failed: {out.stderr[-2000:]}")
    result = json.loads(out.stdout)
    seconds = episode_seconds(service, result["round_id"])
    return {
        "status": result["status"],
        "episodes": result["episodes"],
        "round_wall_seconds": round(float(result["wall_seconds"]), 2),
        "command_wall_seconds": round(wall, 2),
        "episode_seconds_sum": round(sum(seconds), 2),
        "episode_seconds_mean": round(sum(seconds) / max(1, len(seconds)), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--episodes-per-pair", type=int, default=14, help="3 pairs x N episodes (default 42)")
    parser.add_argument(
        "--pool", type=int, default=2, help="coworld_episodes pool limit (episode runs at once)"
    )
    parser.add_argument("--parallelism", type=int, default=2, help="episodes at once within a run")
    parser.add_argument("--per-run", type=int, default=50, help="K: max episodes per run")
    parser.add_argument(
        "--open-via",
        choices=["schedule", "direct"],
        default="schedule",
        help="schedule: the open_rounds schedule opens the round at the next minute (production path; "
        "the wait for the minute is not timed); direct: open_round() from here, then the sensor picks it up",
    )
    parser.add_argument("--settle", type=float, default=8.0, help="direct: seconds to wait after start-up")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    args = parser.parse_args()
    concurrency = args.pool * args.parallelism

    with tempfile.TemporaryDirectory(prefix="coworld-bench-") as tmp:
        root = Path(tmp)
        dag = dagster_round(args, root)
        cli = None if args.skip_baseline else cli_round(args, root, concurrency)

    dag_ideal = dag["episode_seconds_sum"] / concurrency
    figures: dict[str, Any] = {
        "episodes": sum(dag["episodes"].values()),
        "concurrency": {
            "pool": args.pool,
            "parallelism": args.parallelism,
            "episodes_at_once": concurrency,
            "per_run_max": args.per_run,
        },
        "opened_by": args.open_via,
        "dagster": dag,
        "ideal_seconds": round(dag_ideal, 2),
        "dagster_vs_ideal": round(dag["round_wall_seconds"] / dag_ideal, 2),
        "target_vs_ideal": 1.5,
    }
    if cli:
        cli_ideal = cli["episode_seconds_sum"] / concurrency
        figures["cli"] = cli
        figures["cli_ideal_seconds"] = round(cli_ideal, 2)
        figures["cli_vs_ideal"] = round(cli["round_wall_seconds"] / cli_ideal, 2)
        figures["dagster_vs_cli"] = round(dag["round_wall_seconds"] / cli["round_wall_seconds"], 2)
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(
        f"league throughput: {figures['episodes']} orchard duel episodes, {concurrency} at once "
        f"(pool {args.pool} x parallelism {args.parallelism}), <= {args.per_run} per run, "
        f"{os.cpu_count()} CPUs, round opened by {args.open_via}"
    )
    print(
        f"  dagster  round wall {dag['round_wall_seconds']:7.2f}s  (standings materialized at "
        f"{dag['until_standings_seconds']:.2f}s; {dag['episode_runs']} episode runs; mean episode "
        f"{dag['episode_seconds_mean']:.2f}s)"
    )
    print(
        f"  ideal    sum/concurrency {dag_ideal:7.2f}s  -> dagster = "
        f"{figures['dagster_vs_ideal']:.2f} x ideal "
        f"(target <= 1.5)"
    )
    if cli:
        print(
            f"  cli      round wall {cli['round_wall_seconds']:7.2f}s  (`coworld round run --parallel "
            f"{concurrency}`; mean episode {cli['episode_seconds_mean']:.2f}s; its ideal "
            f"{figures['cli_ideal_seconds']:.2f}s -> {figures['cli_vs_ideal']:.2f} x)"
        )
        print(f"  dagster / cli = {figures['dagster_vs_cli']:.2f}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
