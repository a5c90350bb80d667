"""Postgres as the Dagster instance storage (dagster-postgres) and as the league database.

Runs when COWORLD_TEST_POSTGRES_URL points at a server (`scripts/postgres-up.sh` prints one); each
test gets fresh databases.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from coworld_pipeline.defs.league.settings import OrchestrationSettings
from coworld_pipeline.demo import ensure_demo_league
from coworld_pipeline.league import LeagueService
from tests.conftest import IN_CI
from tests.defs.test_commissioner import EPISODES, apply_partition_requests, make_defs

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_databases() -> Iterator[tuple[str, str]]:
    base = os.environ.get("COWORLD_TEST_POSTGRES_URL")
    if not base:
        if IN_CI:
            pytest.fail("CI must set COWORLD_TEST_POSTGRES_URL")
        pytest.skip("set COWORLD_TEST_POSTGRES_URL (scripts/postgres-up.sh) to run the Postgres variant")
    names = [f"coworld_dg_{uuid.uuid4().hex[:10]}", f"coworld_lg_{uuid.uuid4().hex[:10]}"]
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for name in names:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    urls = [make_url(base).set(database=n) for n in names]
    try:
        yield (
            urls[0].render_as_string(hide_password=False),
            urls[1].render_as_string(hide_password=False),
        )
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.execute(
                    text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
                )
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def test_round_on_postgres_instance_and_league_db(pg_databases, tmp_path: Path):
    dagster_url, league_url = pg_databases
    home = tmp_path / "home"
    service = LeagueService(database_url=league_url, home=home)
    league = ensure_demo_league(service, name="pg", episodes_per_pair=1, kick_off=True)
    defs = make_defs(home, parallelism=3, database_url=league_url)
    settings = OrchestrationSettings(episodes_per_run=8, parallelism=3)
    with dg.instance_for_test(overrides={"storage": {"postgres": {"postgres_url": dagster_url}}}) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        from coworld_pipeline.defs.league.sensors import commissioner_tick
        from coworld_pipeline.runtime.artifacts import LocalArtifactStore

        store = LocalArtifactStore(home)
        for _ in range(10):
            result, _ = commissioner_tick(instance, service, settings, store)
            apply_partition_requests(instance, result)
            requests = [
                r
                for r in result.run_requests or []
                if not (
                    r.run_key
                    and instance.get_runs(dg.RunsFilter(tags={"dagster/run_key": r.run_key}), limit=1)
                )
            ]
            if not requests:
                break
            for request in requests:
                tags = {**request.tags, **({"dagster/run_key": request.run_key} if request.run_key else {})}
                job = defs.resolve_job_def(request.job_name)
                assert job.execute_in_process(
                    instance=instance, tags=tags, partition_key=request.partition_key
                ).success
        assert len(instance.get_materialized_partitions(EPISODES)) == 3
        assert instance.get_materialized_partitions(dg.AssetKey("standings")) == {league.key}
    rnd = service.rounds(league_ref=league.id, limit=1).entries[0]
    assert rnd.status == "completed" and rnd.episodes == {"succeeded": 3}
    service.close()
