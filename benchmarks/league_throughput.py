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

4. The time from the round's last episode finishing (league database) to the `standings`
   materialization of its league (Dagster's event timestamp): the run that plays the last episode
   closes the round and logs round_results and standings itself (defs/league/closing.py).
5. The commissioner tick (the sensor's body, real SQLite instance) with one 10,002-episode round: the
   first tick (adds every partition, requests the first runs) and two ticks with those runs queued.

Targets: Dagster round wall <= 1.15 x ideal; standings <= 2 s after the last episode; tick <= 5 s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from coworld_pipeline.demo import ensure_demo_league  # noqa: E402
from coworld_pipeline.league import LeagueService  # noqa: E402

TARGET_VS_IDEAL = 1.15
TARGET_STANDINGS_SECONDS = 2.0
TARGET_TICK_SECONDS = 5.0


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


def epoch(when: datetime) -> float:
    """Seconds since the epoch of a league timestamp (stored as naive UTC)."""
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def first_claim(service: LeagueService, round_id: str) -> datetime:
    """The earliest claim time of the round's episodes (league database)."""
    from sqlalchemy import func, select

    from coworld_pipeline.league import ids
    from coworld_pipeline.league.models import EpisodeRequestRow

    raw = ids.raw_id("round", round_id)
    query = select(func.min(EpisodeRequestRow.claimed_at)).where(EpisodeRequestRow.round_id == raw)
    return service.store.read(lambda s: s.execute(query).scalar_one())


def sensor_ticks(episodes_per_pair: int, root: Path) -> dict[str, Any]:
    """The commissioner tick (the sensor's body, on a real SQLite Dagster instance) with one round of
    3 x N episodes: the first tick (adds every partition, requests the first runs), then ticks while
    those runs are queued (the steady state of a big round)."""
    import dagster as dg
    from dagster._core.utils import make_new_run_id

    from coworld_pipeline.defs.league.sensors import commissioner_tick
    from coworld_pipeline.defs.league.settings import SETTINGS
    from coworld_pipeline.runtime.artifacts import LocalArtifactStore

    home = root / "ticks_home"
    service, league = make_league(home, episodes_per_pair)
    t0 = time.monotonic()
    round_id = service.open_round(league.id, "benchmark").round_id
    opened = time.monotonic() - t0
    store = LocalArtifactStore(home)
    ticks: list[float] = []
    (root / "ticks_dagster").mkdir()
    with dg.DagsterInstance.local_temp(str(root / "ticks_dagster")) as instance:
        for _ in range(3):
            started = time.monotonic()
            result, _report = commissioner_tick(instance, service, SETTINGS, store)
            ticks.append(time.monotonic() - started)
            for request in result.dynamic_partitions_requests or []:  # what the daemon does next
                instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
            for request in result.run_requests or []:  # queued runs
                instance.add_run(
                    dg.DagsterRun(
                        job_name=request.job_name,
                        run_id=make_new_run_id(),
                        tags=request.tags,
                        status=dg.DagsterRunStatus.NOT_STARTED,  # counts as in flight, like queued
                    )
                )
        partitions = len(instance.get_dynamic_partitions("episodes"))
    return {
        "episodes": len(service.episodes(round_ref=round_id, limit=100_000)),
        "partitions": partitions,
        "open_round_seconds": round(opened, 2),
        "tick_seconds": [round(t, 2) for t in ticks],
    }


def warm_up(home: Path, dagster_home: Path) -> None:
    """A 3-episode round of another league first, as in a league platform that is already running:
    its run is spawned and starts the daemon's fork server (defs/prefork.py), so the measured
    round's runs are forked from a warm process."""
    service = LeagueService(home=home)
    league = ensure_demo_league(service, name="warmup", episodes_per_pair=1, kick_off=False)
    round_id = service.open_round(league.id, "benchmark warm-up").round_id
    wait_until(lambda: service.round(round_id).status != "running", 300, "the warm-up round", 0.2)
    # Paused, so that the schedule does not open its next round beside the measured one (it did:
    # a warm-up round took one of the pool's two slots and halved the measured round's parallelism).
    service.set_paused(league.id, True)
    wait_until(lambda: fork_server_of(dagster_home), 120, "the fork server", 0.2)


def fork_server_of(dagster_home: Path) -> bool:
    """Whether a fork server (defs/prefork.py) of the instance in `dagster_home` is running."""
    mark = f"DAGSTER_HOME={dagster_home}".encode()
    for proc in Path("/proc").iterdir():
        try:
            cmdline, environ = (proc / "cmdline").read_bytes(), (proc / "environ").read_bytes()
        except OSError:
            continue
        if b"coworld_pipeline.defs.prefork" in cmdline and mark in environ.split(b"\0"):
            return True
    return False


def dagster_round(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    dagster_home, coworld_home = root / "dagster_home", root / "coworld_home"
    dagster_home.mkdir(parents=True)
    text = (REPO / "dagster.yaml").read_text().replace(".dagster_home", str(dagster_home))
    text = text.replace("default_limit: 2", f"default_limit: {args.pool}")
    if args.launcher == "default":  # Dagster's own: a fresh interpreter spawned per run
        text = text.replace("  module: coworld_pipeline.defs.prefork\n  class: PreforkRunLauncher\n", "")
        text = text.replace("run_launcher:\n\n", "\n")
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
        if not args.cold:
            warm_up(coworld_home, dagster_home)
        if args.open_via == "schedule":
            # Due at once; the `open_rounds` schedule opens it at the next minute and requests its runs.
            service, league = make_league(coworld_home, args.episodes_per_pair, interval_minutes=1.0)
            round_id = wait_until(lambda: service.open_round_for(league.id), 150, "the scheduled round", 0.05)
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

        def standings_done() -> float | None:
            data = gql(
                url,
                """query($p: [String!]!) { assetOrError(assetKey: {path: $p}) {
                ... on Asset { assetMaterializations(limit: 5) { partition timestamp } } } }""",
                {"p": ["standings"]},
            )
            mats = (data["assetOrError"] or {}).get("assetMaterializations") or []
            return next((float(m["timestamp"]) / 1000 for m in mats if m["partition"] == league.key), None)

        standings_at = wait_until(standings_done, 300, "the standings materialization", 0.2)
        standings_wall = standings_at - t0_epoch
        played = service.episodes(round_ref=round_id, limit=10_000)
        last_finished = max(epoch(e.finished_at) for e in played if e.finished_at)
        # A claim's time is renewed while its episode plays (every lease / 4), so the earliest one is
        # the round's first claim: the first wave's episodes are shorter than a renewal period.
        first_claimed = epoch(first_claim(service, round_id))
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
            "last_episode_to_standings_seconds": round(standings_at - last_finished, 2),
            "open_to_first_claim_seconds": round(first_claimed - t0_epoch, 2),
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
    parser.add_argument(
        "--launcher",
        choices=["prefork", "default"],
        default="prefork",
        help="prefork: the repo's dagster.yaml (runs forked from a warm process); default: Dagster's "
        "DefaultRunLauncher (a fresh interpreter per run), for comparison",
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="measure the first round of a fresh dagster dev (default: a 3-episode warm-up round first)",
    )
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument(
        "--tick-episodes-per-pair",
        type=int,
        default=3334,
        help="the sensor tick is timed with one round of 3 x N episodes (default 10,002); 0 skips it",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    parser.add_argument("--keep", action="store_true", help="keep the instance and league (path printed)")
    args = parser.parse_args()
    concurrency = args.pool * args.parallelism

    with (
        contextlib.nullcontext(tempfile.mkdtemp(prefix="coworld-bench-"))
        if args.keep
        else (tempfile.TemporaryDirectory(prefix="coworld-bench-")) as tmp
    ):
        root = Path(tmp)
        if args.keep:
            print(f"keeping {root}", file=sys.stderr)
        dag = dagster_round(args, root)
        cli = None if args.skip_baseline else cli_round(args, root, concurrency)
        ticks = sensor_ticks(args.tick_episodes_per_pair, root) if args.tick_episodes_per_pair else None

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
        "launcher": args.launcher,
        "warm": not args.cold,
        "dagster": dag,
        "ideal_seconds": round(dag_ideal, 2),
        "dagster_vs_ideal": round(dag["round_wall_seconds"] / dag_ideal, 2),
        "target_vs_ideal": TARGET_VS_IDEAL,
        "last_episode_to_standings_seconds": dag["last_episode_to_standings_seconds"],
        "target_last_episode_to_standings_seconds": TARGET_STANDINGS_SECONDS,
    }
    if ticks:
        figures["sensor_ticks"] = ticks
        figures["max_tick_seconds"] = max(ticks["tick_seconds"])
        figures["target_tick_seconds"] = TARGET_TICK_SECONDS
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
        f"{os.cpu_count()} CPUs, round opened by {args.open_via}, {args.launcher} run launcher"
        + ("" if args.cold else " (after a warm-up round)")
    )
    print(
        f"  dagster  round wall {dag['round_wall_seconds']:7.2f}s  (standings materialized at "
        f"{dag['until_standings_seconds']:.2f}s; {dag['episode_runs']} episode runs; mean episode "
        f"{dag['episode_seconds_mean']:.2f}s)"
    )
    print(
        f"  ideal    sum/concurrency {dag_ideal:7.2f}s  -> dagster = "
        f"{figures['dagster_vs_ideal']:.2f} x ideal "
        f"(target <= {TARGET_VS_IDEAL})"
    )
    start = dag["open_to_first_claim_seconds"]
    print(
        f"  start    the round's first episode was claimed {start:.2f}s after it opened; from there the "
        f"round took {(dag['round_wall_seconds'] - start) / dag_ideal:.2f} x ideal (a partial last wave "
        f"included: {figures['episodes']} episodes, {concurrency} at once)"
    )
    print(
        f"  standings materialized {dag['last_episode_to_standings_seconds']:.2f}s after the round's last "
        f"episode finished (target <= {TARGET_STANDINGS_SECONDS})"
    )
    if ticks:
        print(
            f"  sensor tick with a {ticks['episodes']:,}-episode round: {ticks['tick_seconds']} s "
            f"(first: adds {ticks['partitions']:,} partitions; then with its runs queued; "
            f"target <= {TARGET_TICK_SECONDS}); opening that round took {ticks['open_round_seconds']:.1f}s"
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
