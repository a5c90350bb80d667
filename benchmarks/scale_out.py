"""A round played by N Celery workers, each on its own Docker engine, against its ideal time.

    .venv/bin/python benchmarks/scale_out.py --workers 2 --episodes 40 [--per-run 10] [--parallelism 2]

Prints one line and exits 0 when every episode succeeded and ran once (one attempt, rated once)
and every worker played episodes (else 1; bad arguments: 2):

    workers=2 episodes=40 per_worker=[a, b] wall=W ideal=I ratio=R

1. Starts Redis (`scripts/redis-up.sh`), one more Docker engine per worker after the first
   (`scripts/docker-engine-up.sh`, the orchard image loaded into it), `dagster dev` on the Celery
   executor (COWORLD_EXECUTOR=celery, docker runtime) and N `celery worker`s of one pool process
   each; worker i runs as host `cw-host-<i>` (tests/defs/celery_hosts.py) on engine i. The
   `coworld_episodes` pool is set to 2 x N runs: a run only coordinates, and a second run per
   worker keeps a step waiting in the queue while the first one plays.
2. Opens one round-robin round of Orchard duels with exactly --episodes episodes (P entrants, P
   the largest of 2..6 whose P(P-1)/2 pairs divide it) and measures its wall time W from the
   moment it is open until the league closes it.
3. Ideal I = the sum of the episodes' own wall times / (N x p): every worker playing p episodes at
   once all the time. R = W / I. `per_worker` is how many episodes each worker played (the
   `played_by` the league recorded).

Everything started is stopped and removed at the end (Redis only if this run started it).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from coworld_pipeline.demo import ORCHARD_MANIFEST  # noqa: E402
from coworld_pipeline.league import LeagueService  # noqa: E402
from tests.defs.celery_hosts import MAIN_ENGINE, CeleryWorker, redis_answers, script  # noqa: E402
from tests.defs.dagster_dev import DagsterDev  # noqa: E402
from tests.defs.helpers import wait_for  # noqa: E402

REDIS_PORT = 18821
REDIS_DB = 2  # the test uses db 1
DAGSTER_PORT = 18823
ENTRANTS = ("random", "greedy", "planner")  # orchard's players; more entrants repeat them


def log(message: str) -> None:
    print(f"[scale_out {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def engine_env(index: int) -> dict[str, str]:
    """Engine of worker `index` >= 1 (worker 0 plays on the main engine)."""
    return {"COWORLD_ENGINE_NAME": f"cw-s{index + 1}", "COWORLD_ENGINE_NET": f"10.{220 + index}"}


def entrant_count(episodes: int) -> int:
    return max(p for p in range(2, 7) if episodes % (p * (p - 1) // 2) == 0)


def open_round(service: LeagueService, episodes: int) -> tuple[str, str]:
    """A round-robin league of duels whose one round has exactly `episodes` episodes; (league, round)."""
    import json

    entrants = entrant_count(episodes)
    pairs = entrants * (entrants - 1) // 2
    coworld = service.upload_coworld(ORCHARD_MANIFEST)
    specs = {p["id"]: p for p in json.loads(ORCHARD_MANIFEST.read_text())["player"]}
    names = []
    for i in range(entrants):
        spec = specs[ENTRANTS[i % len(ENTRANTS)]]
        name = f"{spec['id']}-{i}"
        service.upload_policy(spec["image"], name, run=list(spec["run"]), env={"BENCH_ENTRANT": str(i)})
        names.append(name)
    league = service.create_league(
        "scale-out",
        f"{coworld.name}:{coworld.version}",
        variants=["duel"],
        commissioner="round-robin",
        commissioner_config={"episodes_per_pair": episodes // pairs},
        interval_minutes=None,
    )
    for name in names:
        service.submit(name, league.id)
    round_id = service.open_round(league.id, "benchmark").round_id
    assert round_id
    return league.id, f"round_{round_id}"


def measure(args: argparse.Namespace, root: Path, engines: list[str], broker: str) -> tuple[str, bool]:
    env = {
        "COWORLD_DEMO": "0",
        "COWORLD_RUNTIME": "docker",
        "COWORLD_EXECUTOR": "celery",
        "COWORLD_CELERY_BROKER_URL": broker,
        "COWORLD_CELERY_VISIBILITY_TIMEOUT": str(args.visibility_timeout),
        "COWORLD_EPISODES_PER_RUN": str(args.per_run),
        "COWORLD_EPISODE_PARALLELISM": str(args.parallelism),
        "COWORLD_GAME_MEMORY": "256m",
        "COWORLD_PLAYER_MEMORY": "256m",
    }
    dev = DagsterDev(root / "dev", env, port=DAGSTER_PORT)
    env = {**env, "DAGSTER_HOME": str(dev.dagster_home), "COWORLD_HOME": str(dev.coworld_home)}
    workers = [
        CeleryWorker(f"w{i}", f"cw-host-{i}", engine, env, root / f"worker-{i}.log")
        for i, engine in enumerate(engines)
    ]
    try:
        dagster = str(Path(sys.executable).with_name("dagster"))
        subprocess.run(
            [dagster, "instance", "concurrency", "set", "coworld_episodes", str(2 * args.workers)],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.wait_ready()
        service = LeagueService(home=dev.coworld_home)
        log(f"dagster dev and {args.workers} worker(s) ready; opening a round of {args.episodes}")
        opened = time.monotonic()
        league_id, round_pub = open_round(service, args.episodes)
        info = wait_for(
            lambda: (lambda r: r if r.status != "running" else None)(service.round(round_pub)),
            args.timeout,
            "the round to close",
            0.2,
        )
        wall = time.monotonic() - opened
        episodes = service.episodes(round_ref=round_pub, limit=100_000)
        events = service.events(league_id, event_type="episode_rated", limit=100_000)
        rated = [e.episode_request_id for e in events]
        played = [(e.played_by or {}).get("worker") for e in episodes]
        per_worker = [played.count(w.node) for w in workers]
        for w in workers:
            pairs = zip(episodes, played, strict=True)
            mine = [float(e.wall_seconds or 0) for e, node in pairs if node == w.node]
            mean = sum(mine) / max(1, len(mine))
            log(f"{w.node} on {w.docker_host}: {len(mine)} episodes, {mean:.1f}s each")
        ideal = sum(float(e.wall_seconds or 0.0) for e in episodes) / (args.workers * args.parallelism)
        ok = (
            info.episodes == {"succeeded": args.episodes}
            and len(episodes) == args.episodes
            and all(e.attempts == 1 for e in episodes)
            and sorted(rated) == sorted(e.id for e in episodes)
            and all(n > 0 for n in per_worker)
        )
        if not ok:
            log(f"round {info.status} {info.episodes}; attempts {[e.attempts for e in episodes]}")
        line = (
            f"workers={args.workers} episodes={len(episodes)} per_worker=[{', '.join(map(str, per_worker))}] "
            f"wall={wall:.1f} ideal={ideal:.1f} ratio={wall / ideal if ideal else float('inf'):.2f}"
        )
        return line, ok
    finally:
        for worker in workers:
            worker.stop()
        dev.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--per-run", type=int, default=10, help="K: episodes per Dagster run (one step)")
    parser.add_argument("--parallelism", type=int, default=2, help="p: episodes a step plays at once")
    parser.add_argument("--visibility-timeout", type=int, default=300)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds the round may take")
    args = parser.parse_args()
    problems = [
        f"{name} must be between {low} and {high}, got {value}"
        for name, value, low, high in (
            ("--workers", args.workers, 1, 8),
            ("--episodes", args.episodes, 1, 10_000),
            ("--per-run", args.per_run, 1, 500),
            ("--parallelism", args.parallelism, 1, 16),
            ("--visibility-timeout", args.visibility_timeout, 5, 86_400),
        )
        if not low <= value <= high
    ]
    if problems:
        print("scale_out: " + "; ".join(problems), file=sys.stderr)
        return 2

    started_redis = not redis_answers(REDIS_PORT)
    redis_env = {"COWORLD_REDIS_PORT": str(REDIS_PORT)}
    engines_up: list[dict[str, str]] = []
    try:
        broker = script("redis-up.sh", "up", env=redis_env).rsplit("/", 1)[0] + f"/{REDIS_DB}"
        flush = ["redis-cli", "-p", str(REDIS_PORT), "-n", str(REDIS_DB), "flushdb"]
        subprocess.run(flush, check=True, capture_output=True)  # stdout is the result line only
        engines = [MAIN_ENGINE]
        for i in range(1, args.workers):
            engines_up.append(engine_env(i))
            engines.append(script("docker-engine-up.sh", "up", env=engine_env(i)))
            script("docker-engine-up.sh", "load", "coworld/orchard:0.1.0", env=engine_env(i))
        with tempfile.TemporaryDirectory(prefix="cw-scale-out-") as tmp:
            line, ok = measure(args, Path(tmp), engines, broker)
        print(line, flush=True)
        return 0 if ok else 1
    finally:
        for engine in engines_up:
            script("docker-engine-up.sh", "down", env=engine)
        if started_redis:
            script("redis-up.sh", "down", env=redis_env)


if __name__ == "__main__":
    sys.exit(main())
