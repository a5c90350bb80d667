"""`coworld league stats`'s query (defs/knowledge/core.py `query_stats`): DuckDB over a league's
dataset, bounded like every other input. One read-only statement; files only below the dataset;
a row cap; a time limit. A real DuckDB over a real parquet file, no Dagster."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from coworld_pipeline.defs.knowledge import core
from coworld_pipeline.defs.knowledge.core import StatsQueryError, query_stats


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "stats" / "league_1"
    (root / "round=r1").mkdir(parents=True)
    con = duckdb.connect()
    con.execute(
        "COPY (SELECT 5 AS ts, 0 AS player, 'final_score' AS key, '7' AS value, 'e1' AS episode, "
        f"'greedy:v1' AS policy) TO '{root / 'round=r1' / 'part-0.parquet'}' (FORMAT parquet)"
    )
    con.close()
    return root


def test_a_select_reads_the_dataset(dataset: Path):
    result = query_stats(dataset, "SELECT policy, value, round FROM league_stats")
    assert (result.columns, result.rows, result.truncated) == (
        ["policy", "value", "round"],
        [("greedy:v1", "7", "r1")],
        False,
    )
    described = query_stats(dataset, "WITH s AS (SELECT * FROM league_stats) SELECT count(*) FROM s")
    assert described.rows == [(1,)]


@pytest.mark.parametrize(
    ("sql", "why"),
    [
        ("COPY (SELECT 1) TO 'out.csv'", "got COPY"),
        ("SELECT 1; DROP VIEW league_stats", "got SELECT, DROP"),
        ("ATTACH 'other.db'", "got ATTACH"),
        ("INSTALL httpfs", "one read-only query"),
        ("SET enable_external_access = true", "one read-only query"),
        ("SELEC 1", "SQL error: Parser Error"),
        ("SELECT * FROM read_csv('/etc/passwd')", "Permission Error"),
        ("SELECT * FROM read_parquet('../../*.parquet')", "Permission Error"),
    ],
)
def test_anything_but_one_read_of_the_dataset_is_refused(dataset: Path, sql: str, why: str, tmp_path: Path):
    with pytest.raises(StatsQueryError, match=why.replace("(", r"\(")):
        query_stats(dataset, sql)
    assert sorted(p.name for p in dataset.rglob("*")) == ["part-0.parquet", "round=r1"]


def test_rows_and_time_are_bounded(dataset: Path, monkeypatch: pytest.MonkeyPatch):
    many = query_stats(dataset, "SELECT * FROM range(50000)")
    assert len(many.rows) == core.STATS_QUERY_ROWS and many.truncated
    monkeypatch.setattr(core, "STATS_QUERY_SECONDS", 0.3)
    with pytest.raises(StatsQueryError, match="ran longer than 0 s"):
        query_stats(dataset, "SELECT sum(a.range * b.range) FROM range(1000000) a, range(1000000) b")
