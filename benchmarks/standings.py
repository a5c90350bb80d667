"""Benchmark: standings recomputed from 100k stored episode results over 1,000 policy versions.

    .venv/bin/python benchmarks/standings.py [--episodes 100000] [--policies 1000] [--db URL]

Fills a fresh league database (SQLite in a temp dir unless --db) with synthetic 2-seat episode
results, then times (targets in brackets):

* recompute: every rating from the stored per-slot results, in rating order, written back [<= 10 s]
* standings: the `results` query in-process (LeagueService.standings) [<= 0.5 s]
* `coworld results LEAGUE --json` (every row) and `coworld results LEAGUE` (the table, top rows), each
  as a separate process, wall clock including interpreter start-up [<= 0.5 s]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import insert  # noqa: E402

from coworld_pipeline.league.models import (  # noqa: E402
    EpisodeRequestRow,
    EpisodeSlot,
    Membership,
    Policy,
    PolicyVersion,
    Round,
    utcnow,
)
from coworld_pipeline.league.service import LeagueService  # noqa: E402


def fill(svc: LeagueService, n_episodes: int, n_policies: int, seed: int) -> str:
    svc.upload_coworld(REPO / "examples" / "orchard" / "coworld_manifest.json")
    league = svc.create_league("bench", "orchard", variants=["duel"])
    league_id = svc.resolve_league_id("bench")
    division_id = league.divisions[0].id.removeprefix("div_")
    rng = random.Random(seed)
    strength = [rng.gauss(0, 1) for _ in range(n_policies)]
    now = utcnow()
    policy_ids = [str(uuid.uuid4()) for _ in range(n_policies)]
    pv_ids = [str(uuid.uuid4()) for _ in range(n_policies)]
    round_id = str(uuid.uuid4())
    with svc.engine.begin() as conn:
        conn.execute(
            insert(Policy),
            [{"id": p, "name": f"bench-{i}", "created_at": now} for i, p in enumerate(policy_ids)],
        )
        conn.execute(
            insert(PolicyVersion),
            [
                {
                    "id": pv,
                    "policy_id": policy_ids[i],
                    "version": 1,
                    "image": "img",
                    "run": ["x"],
                    "env": {},
                    "secret_env_keys": [],
                    "secret_env_encrypted": None,
                    "runnable_hash": f"h{i}",
                    "created_at": now,
                }
                for i, pv in enumerate(pv_ids)
            ],
        )
        conn.execute(
            insert(Membership),
            [
                {
                    "id": str(uuid.uuid4()),
                    "league_id": league_id,
                    "division_id": division_id,
                    "policy_version_id": pv,
                    "status": "active",
                    "status_reason": "bench",
                    "consecutive_failures": 0,
                    "failure_episode_ids": [],
                    "created_at": now,
                    "updated_at": now,
                }
                for pv in pv_ids
            ],
        )
        conn.execute(
            insert(Round),
            [
                {
                    "id": round_id,
                    "league_id": league_id,
                    "round_number": 1,
                    "status": "completed",
                    "trigger": "bench",
                    "open_marker": None,
                    "commissioner": "round-robin",
                    "failed_slots": 0,
                    "started_at": now,
                }
            ],
        )
        batch = 10_000
        for start in range(0, n_episodes, batch):
            eps, slots = [], []
            for seq in range(start + 1, min(n_episodes, start + batch) + 1):
                a, b = rng.sample(range(n_policies), 2)
                sa = max(0.0, round(10 + 3 * strength[a] + rng.gauss(0, 2), 1))
                sb = max(0.0, round(10 + 3 * strength[b] + rng.gauss(0, 2), 1))
                eid = str(uuid.uuid4())
                eps.append(
                    {
                        "id": eid,
                        "round_id": round_id,
                        "league_id": league_id,
                        "division_id": division_id,
                        "request_id": f"b{seq}",
                        "variant_id": "duel",
                        "seed": seq,
                        "game_config": {},
                        "policy_version_ids": [pv_ids[a], pv_ids[b]],
                        "tags": {},
                        "status": "succeeded",
                        "attempt": 1,
                        "scores": [sa, sb],
                        "attempt_errors": [],
                        "reported": True,
                        "rated_seq": seq,
                        "created_at": now,
                        "finished_at": now,
                    }
                )
                slots.append({"ereq_id": eid, "slot": 0, "policy_version_id": pv_ids[a], "score": sa})
                slots.append({"ereq_id": eid, "slot": 1, "policy_version_id": pv_ids[b], "score": sb})
            conn.execute(insert(EpisodeRequestRow), eps)
            conn.execute(insert(EpisodeSlot), slots)
    return league_id


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=100_000)
    ap.add_argument("--policies", type=int, default=1_000)
    ap.add_argument("--db", default=None, help="database URL (default: a fresh SQLite file)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5, help="timed runs of each CLI command (median printed)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="coworld-bench-"))
    url = args.db or f"sqlite:///{tmp / 'bench.db'}"
    svc = LeagueService(url, tmp / "home")
    t0 = time.perf_counter()
    fill(svc, args.episodes, args.policies, args.seed)
    fill_s = time.perf_counter() - t0
    print(
        f"filled {args.episodes:,} episodes / {2 * args.episodes:,} slot results / {args.policies:,} policy "
        f"versions in {fill_s:.1f}s ({url.split(':')[0]})"
    )

    t0 = time.perf_counter()
    table = svc.recompute_standings("bench", write=True)
    recompute_s = time.perf_counter() - t0
    print(f"recompute standings + ratings: {recompute_s:.2f}s for {len(table):,} entrants (target <= 10 s)")

    t0 = time.perf_counter()
    rows = svc.standings("bench")[0].standings
    standings_s = time.perf_counter() - t0
    print(
        f"standings query (LeagueService.standings): {standings_s:.3f}s, {len(rows):,} rows (target <= 0.5 s)"
    )

    # Run the CLI as an installed package runs: with its modules' bytecode cached (the warm-up run
    # writes it even when this shell sets PYTHONDONTWRITEBYTECODE) and the OS file cache warm.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    base = [
        sys.executable,
        "-m",
        "coworld_cli.main",
        "results",
        "bench",
        "--db",
        url,
        "--home",
        str(tmp / "home"),
    ]
    cli_ok = True
    for extra in (["--json"], []):
        cmd = base + extra
        subprocess.run(cmd, capture_output=True, cwd=REPO, check=True, env=env)
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, cwd=REPO, check=True, env=env)
            times.append(time.perf_counter() - t0)
        cli_s = statistics.median(times)
        cli_ok = cli_ok and cli_s <= 0.5
        print(
            f"`{' '.join(['coworld results bench', *extra])}`: {cli_s:.3f}s median of {args.repeat} "
            f"(min {min(times):.3f}s), whole process incl. interpreter start-up, "
            f"{len(proc.stdout) // 1024} KiB of output (target <= 0.5 s)"
        )
    times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], capture_output=True, cwd=REPO, check=True, env=env)
        times.append(time.perf_counter() - t0)
    print(f"  for scale, starting a bare Python interpreter: {statistics.median(times):.3f}s")
    top = rows[:3]
    print("top 3:", ", ".join(f"{r.label} ({r.rating:.2f}, {r.episodes} eps)" for r in top))
    svc.close()
    ok = recompute_s <= 10 and standings_s <= 0.5 and cli_ok
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
