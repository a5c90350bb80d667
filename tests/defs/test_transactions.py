"""One league episode goes down once and back once: claim-and-prepare (a write), the runtime, record (a
write). Counted on the league database's own SQL transactions while a real Dagster run plays real
Orchard episodes on the process runtime."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from sqlalchemy import event
from sqlalchemy.engine import Engine

from coworld_pipeline.defs.league.assets import episodes
from coworld_pipeline.defs.league.jobs import play_episodes_job
from coworld_pipeline.defs.league.resources import (
    ArtifactStoreResource,
    EpisodeRuntimeResource,
    LeagueResource,
)
from coworld_pipeline.defs.league.settings import TAG_RANGE_END, TAG_RANGE_START
from coworld_pipeline.league.service import LeagueService
from tests.league.conftest import FAST, orchard_league


class LeagueTransactions:
    """Reads and writes begun on engines of one database URL (Dagster's own storage is not counted)."""

    def __init__(self, url: str):
        self.url, self.reads, self.writes = url, 0, 0
        self._lock = threading.Lock()

    def __call__(self, conn) -> None:
        if conn.engine.url.render_as_string(hide_password=False) != self.url:
            return
        with self._lock:
            if conn.get_execution_options().get("coworld_write"):
                self.writes += 1
            else:
                self.reads += 1


@contextmanager
def counting(url: str) -> Iterator[LeagueTransactions]:
    counter = LeagueTransactions(url)
    event.listen(Engine, "begin", counter)
    try:
        yield counter
    finally:
        event.remove(Engine, "begin", counter)


def play(defs: dg.Definitions, instance: dg.DagsterInstance, keys: list[str]) -> None:
    job = defs.resolve_job_def(play_episodes_job.name)
    result = job.execute_in_process(
        instance=instance, tags={TAG_RANGE_START: keys[0], TAG_RANGE_END: keys[-1]}, raise_on_error=True
    )
    assert result.success


def test_one_episode_costs_two_writes_and_no_reads(tmp_path: Path):
    home = tmp_path / "home"
    url = f"sqlite:///{(home / 'coworld.db').resolve()}"
    service = LeagueService(url, home)
    league = orchard_league(service, "tx", players=("random", "greedy", "planner"), overrides=FAST)
    round_id = service.open_round(league.id).round_id
    assert round_id is not None
    keys = [f"ereq_{e}" for e in service.pending_episodes(round_id)]
    assert len(keys) == 6
    defs = dg.Definitions(
        assets=[episodes],
        jobs=[play_episodes_job],
        resources={
            "league": LeagueResource(database_url=url, home=str(home)),
            "episode_runtime": EpisodeRuntimeResource(runtime="process", parallelism=2),
            "artifacts": ArtifactStoreResource(kind="local", root=str(home)),
        },
    )
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("episodes", keys)
        with counting(url) as one:
            play(defs, instance, keys[:1])
        with counting(url) as three:
            play(defs, instance, keys[1:4])
    assert [service.episode(k).status for k in keys[:4]] == ["succeeded"] * 4
    print(
        f"league transactions: 1 episode {one.reads}r/{one.writes}w, "
        f"3 episodes {three.reads}r/{three.writes}w"
    )
    # Per episode: one claim-and-prepare and one record, nothing read back.
    per_episode_writes = (three.writes - one.writes) / 2
    per_episode_reads = (three.reads - one.reads) / 2
    assert per_episode_writes <= 2 and per_episode_reads <= 0, (one.__dict__, three.__dict__)
    # Per run on top of that: opening the database (one read) and feeding the round (one write).
    assert one.writes <= 3 and one.reads <= 2, one.__dict__
    service.close()
