"""Benchmark: the `league_stats` dataset built from 10,000 event logs, and a DuckDB query over it.

    .venv/bin/python benchmarks/stats.py [--episodes 10000] [--rounds 100] [--rows 60] [--policies 50]

Writes synthetic reporter event logs (ts, player, key, value; two seats, `--rows` rows each) into a
local knowledge store exactly where the `episode_stats` asset keeps them (not timed), then times
(targets in brackets):

* build: every round's partition the way the `league_stats` asset writes it — fetch each episode's
  stats.parquet from the store, add its episode and per-row policy, write
  `round=<id>/part-0.parquet` [<= 30 s]
* query: the per-policy mean of one key with DuckDB over the hive-partitioned dataset, as
  `coworld league stats --sql` runs it (best of 3, and the first run) [<= 1 s]
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from coworld_pipeline.defs.knowledge.core import (  # noqa: E402
    duckdb_view_sql,
    episode_rows,
    write_round_stats,
)
from coworld_pipeline.runtime.artifacts import LocalArtifactStore  # noqa: E402

KEYS = ("harvest", "move", "score", "lead_change")


def event_log(rng: random.Random, rows: int) -> bytes:
    """One synthetic reporter event log; the last two rows are each slot's final_score."""
    ts = [*range(rows - 2), rows, rows]
    player = [rng.choice((-1, 0, 1)) for _ in range(rows - 2)] + [0, 1]
    key = [rng.choice(KEYS) for _ in range(rows - 2)] + ["final_score", "final_score"]
    value = [str(rng.randint(0, 20)) for _ in range(rows)]
    table = pa.table(
        {
            "ts": pa.array(ts, pa.int64()),
            "player": pa.array(player, pa.int64()),
            "key": pa.array(key, pa.string()),
            "value": pa.array(value, pa.string()),
        }
    )
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--rows", type=int, default=60)
    parser.add_argument("--policies", type=int, default=50)
    args = parser.parse_args()
    rng = random.Random(7)

    with tempfile.TemporaryDirectory(prefix="coworld-stats-bench-") as tmp:
        store = LocalArtifactStore(Path(tmp) / "knowledge")
        started = time.monotonic()
        rounds: dict[str, list[tuple[str, dict[int, str]]]] = {}
        for i in range(args.episodes):
            episode_id = f"ereq_{i:06d}"
            directory = store.episode_dir(episode_id)
            directory.mkdir(parents=True)
            (directory / "stats.parquet").write_bytes(event_log(rng, args.rows))
            seats = {0: f"p{rng.randrange(args.policies)}:v1", 1: f"p{rng.randrange(args.policies)}:v1"}
            rounds.setdefault(f"round_{i % args.rounds:04d}", []).append((episode_id, seats))
        setup = time.monotonic() - started
        print(f"setup: {args.episodes} event logs x {args.rows} rows written in {setup:.1f}s (not timed)")

        root = Path(tmp) / "stats" / "league_bench"
        started = time.monotonic()
        total = 0
        for round_id, episodes in rounds.items():
            tables = [episode_rows(e, seats, store.fetch(e, "stats.parquet") or b"") for e, seats in episodes]
            total += write_round_stats(root, round_id, tables)[1]
        build = time.monotonic() - started
        print(
            f"build:  {build:.2f}s for {args.episodes} episodes, {len(rounds)} round partitions, "
            f"{total} rows  [target <= 30 s] {'OK' if build <= 30 else 'MISSED'}"
        )

        import duckdb

        sql = (
            f"SELECT policy, avg(try_cast(value AS DOUBLE)) AS mean_final_score, count(*) AS n "
            f"FROM {duckdb_view_sql(root)} WHERE key = 'final_score' AND policy <> '' "
            f"GROUP BY policy ORDER BY mean_final_score DESC"
        )
        timings, result = [], []
        for _ in range(3):
            con = duckdb.connect()  # a fresh connection each time, as one CLI command has
            started = time.monotonic()
            result = con.execute(sql).fetchall()
            timings.append(time.monotonic() - started)
            con.close()
        best = min(timings)
        print(
            f"query:  {best:.3f}s best of 3 (first {timings[0]:.3f}s) per-policy mean of final_score "
            f"over {len(result)} policies  [target <= 1 s] {'OK' if best <= 1 else 'MISSED'}"
        )
        print(f"        top: {result[0][0]} mean {result[0][1]:.2f} over {result[0][2]} rows")


if __name__ == "__main__":
    main()
