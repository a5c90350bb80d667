"""The knowledge half under Dagster, in-process: a real league database, real orchard episodes and roles
on the process runtime, a real (temporary) Dagster instance. No daemon: the tests execute the run
requests the commissioner and knowledge sensors return, the way the daemon would."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import dagster as dg
import pytest

from coworld_pipeline.defs.knowledge import assets as knowledge_assets
from coworld_pipeline.defs.knowledge.core import stats_dir
from coworld_pipeline.defs.knowledge.resources import KnowledgeResource
from coworld_pipeline.defs.knowledge.sensors import (
    diagnose_policy_job,
    episode_knowledge_job,
    knowledge,
    knowledge_tick,
    league_stats_job,
    optimize_policy_job,
)
from coworld_pipeline.defs.league.assets import episodes, round_results, standings
from coworld_pipeline.defs.league.jobs import collate_round_job, play_episodes_job, refresh_standings_job
from coworld_pipeline.defs.league.resources import (
    ArtifactStoreResource,
    EpisodeRuntimeResource,
    LeagueResource,
)
from coworld_pipeline.defs.league.sensors import commissioner, commissioner_tick
from coworld_pipeline.defs.league.settings import OrchestrationSettings
from coworld_pipeline.league import LeagueError, LeagueService
from coworld_pipeline.runtime.artifacts import LocalArtifactStore
from tests.conftest import run_cli as cli
from tests.conftest import wait_for
from tests.league.conftest import FAST, orchard_copy

DERIVED = ["episode_bundles", "episode_reports", "episode_stats", "episode_grades"]
CRASHER = {
    "type": "reporter",
    "id": "crasher",
    "name": "Crasher",
    "description": "Exits 3 before writing anything.",
    "image": "coworld/orchard:0.1.0",
    "run": ["python", "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"],
}


def make_defs(home: Path, runtime: str = "process") -> dg.Definitions:
    league_resources = {
        "league": LeagueResource(home=str(home)),
        "episode_runtime": EpisodeRuntimeResource(runtime=runtime, parallelism=3),
        "artifacts": ArtifactStoreResource(kind="local", root=str(home)),
    }
    return dg.Definitions(
        assets=[
            episodes,
            round_results,
            standings,
            knowledge_assets.episode_bundles,
            knowledge_assets.reporter_run,
            knowledge_assets.episode_grades,
            knowledge_assets.diagnoser_advice,
            knowledge_assets.optimizer_plans,
            knowledge_assets.league_stats,
        ],
        jobs=[
            play_episodes_job,
            collate_round_job,
            refresh_standings_job,
            episode_knowledge_job,
            league_stats_job,
            diagnose_policy_job,
            optimize_policy_job,
        ],
        sensors=[commissioner, knowledge],
        resources={
            **league_resources,
            "knowledge": KnowledgeResource(**league_resources, timeout_seconds=120),
        },
    )


def drive(defs: dg.Definitions, instance: dg.DagsterInstance, service: LeagueService) -> list:
    """Tick both sensors and execute what they request until neither requests anything new."""
    settings = OrchestrationSettings(episodes_per_run=8, parallelism=3)
    store = LocalArtifactStore(service.home)
    done: set[str] = set()
    results = []
    cursor = None
    for _ in range(30):
        result, _ = commissioner_tick(instance, service, settings, store)
        requests = list(result.run_requests or [])
        partitions = list(result.dynamic_partitions_requests or [])
        knowledge_result, tick = knowledge_tick(instance, service, cursor, 40)
        cursor = tick.cursor
        requests += knowledge_result.run_requests or []
        partitions += knowledge_result.dynamic_partitions_requests or []
        for request in partitions:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        fresh = [r for r in requests if not r.run_key or r.run_key not in done]
        if not fresh and not knowledge_result.run_requests:
            return results
        for request in fresh:
            done.add(request.run_key or "")
            job = defs.resolve_job_def(request.job_name)
            outcome = job.execute_in_process(
                instance=instance,
                tags=request.tags,
                partition_key=request.partition_key,
                asset_selection=request.asset_selection,
                raise_on_error=False,
            )
            results.append((request, outcome))
    raise AssertionError("the league did not settle")


def orchard_league(service: LeagueService, manifest: Path, name: str, players: tuple[str, ...], **kw):
    coworld = service.upload_coworld(manifest)
    for p in players:
        try:
            service.upload_policy("coworld/orchard:0.1.0", p, run=["python", "-m", f"orchard.players.{p}"])
        except LeagueError:
            pass  # uploaded for the other league already
    league = service.create_league(name, coworld.id, variants=["duel"], config_overrides=FAST, **kw)
    for p in players:
        service.submit(p, league.id)
    service.open_round(league.id, trigger="test")
    return league


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    path = orchard_copy(tmp_path / "orchard")
    doc = json.loads(path.read_text())
    doc["reporter"].append(CRASHER)
    path.write_text(json.dumps(doc, indent=2))
    return path


def materializations(instance: dg.DagsterInstance, key: str, partition: str) -> list:
    return instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), asset_partitions=[partition]), limit=10
    ).records


def test_roles_are_league_settings(tmp_path: Path, manifest: Path):
    service = LeagueService(home=tmp_path / "home")
    coworld = service.upload_coworld(manifest)
    before = service.counts()
    with pytest.raises(LeagueError, match="reporter 'nope'"):
        service.create_league("bad", coworld.id, roles={"reporter": "nope"})
    with pytest.raises(LeagueError, match="grader 'softmax/default-reporter:latest'"):
        service.create_league("bad", coworld.id, roles={"grader": "softmax/default-reporter:latest"})
    with pytest.raises(LeagueError, match="unknown league role 'optimiser'"):
        service.create_league("bad", coworld.id, roles={"optimiser": "default"})
    assert service.counts() == before, "a bad role reference stores nothing"
    league = service.create_league(
        "good", coworld.id, roles={"reporter": "orchard-reporter", "grader": "default", "diagnoser": None}
    )
    assert league.roles == {"reporter": "orchard-reporter", "grader": "default"}
    assert service.leagues("good")[0].to_json()["roles"] == league.roles
    plain = service.create_league("plain", coworld.id)
    assert plain.roles == {} and plain.to_json()["roles"] == {}


def test_a_0001_database_upgrades(tmp_path: Path):
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, text

    from coworld_pipeline.league.db import MIGRATIONS_DIR

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(
            text(
                "INSERT INTO coworld_versions (id, name, version, content_hash, manifest, created_at) "
                "VALUES ('c1', 'orchard', '0.1.0', 'h', '{}', '2026-01-01')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO leagues (id, name, coworld_version_id, variants, commissioner, "
                "commissioner_config, config_overrides, failure_policy, paused, created_at) VALUES "
                "('l1', 'old', 'c1', '[\"duel\"]', 'round-robin', '{}', '{}', '{}', 0, '2026-01-01')"
            )
        )
        conn.commit()
    engine.dispose()
    service = LeagueService(database_url=url, home=tmp_path / "home")  # migrates on open
    assert service.leagues("old")[0].roles == {}


def test_knowledge_assets_materialize_for_a_league_that_enables_roles(tmp_path: Path, manifest: Path):
    home = tmp_path / "home"
    service = LeagueService(home=home)
    roles = {
        "reporter": "orchard-reporter",
        "grader": "orchard-drama-grader",
        "diagnoser": "orchard-diagnoser",
    }
    league = orchard_league(
        service,
        manifest,
        "knows",
        ("random", "greedy"),
        roles=roles,
        commissioner_config={"episodes_per_pair": 2},
    )
    defs = make_defs(home)
    with dg.instance_for_test() as instance:
        ran = drive(defs, instance, service)
        assert all(outcome.success for _, outcome in ran), [r.job_name for r, o in ran if not o.success]
        played = [e for e in service.episodes(league_ref=league.id) if e.status == "succeeded"]
        assert len(played) == 2
        for episode in played:
            for key in DERIVED:
                assert len(materializations(instance, key, episode.key)) == 1, (key, episode.id)
            stats = materializations(instance, "episode_stats", episode.key)[0].asset_materialization.metadata
            assert stats["rows"].value > 0
            assert stats["preview"].value.records
            assert Path(stats["artifact:stats.parquet"].value).is_file()
            grades = materializations(instance, "episode_grades", episode.key)
            grade = grades[0].asset_materialization.metadata
            assert isinstance(grade["score"].value, float)
            report = materializations(instance, "episode_reports", episode.key)[0].asset_materialization
            assert report.metadata["report"].value.strip()
            bundle = materializations(instance, "episode_bundles", episode.key)[0].asset_materialization
            assert "player_logs" not in bundle.metadata["include"].value

        # Per round: the league's stats dataset, opened the way the README says.
        rnd = service.rounds(league_ref=league.id, limit=1).entries[0]
        stats_meta = materializations(instance, "league_stats", rnd.key)[0].asset_materialization.metadata
        assert stats_meta["episodes_with_stats"].value == 2
        import duckdb

        root = stats_dir(home, league.id)
        rows = duckdb.sql(
            f"SELECT policy, count(*) FROM read_parquet('{root}/*/*.parquet', hive_partitioning = true) "
            f"WHERE round = '{rnd.id}' AND policy <> '' GROUP BY policy ORDER BY policy"
        ).fetchall()
        assert [r[0] for r in rows] == ["greedy:v1", "random:v1"]

        # Advice per league policy version, and the standings link the best-graded episodes.
        advice_keys = instance.get_dynamic_partitions("league_policies")
        assert len(advice_keys) == 2
        for key in advice_keys:
            advice = materializations(instance, "diagnoser_advice", key)[0].asset_materialization.metadata
            assert advice["episodes"].value == 2 and advice["advice"].value.strip()
        latest = instance.fetch_materializations(dg.AssetKey("standings"), limit=1).records[0]
        assert "best_graded_episodes" in latest.asset_materialization.metadata

        # The optimizer on request (its job, one partition).
        result = optimize_policy_job.resolve(
            asset_graph=defs.resolve_asset_graph(), resource_defs=defs.resources
        ).execute_in_process(instance=instance, partition_key=advice_keys[0], raise_on_error=False)
        assert result.success
        plan = materializations(instance, "optimizer_plans", advice_keys[0])[0].asset_materialization.metadata
        assert plan["plan"].value and len(plan["episodes"].value) == 2

    # The same knowledge from the CLI: settings, DuckDB over league_stats, the optimizer.
    at = ("--home", str(home))
    wide = {**os.environ, "COLUMNS": "1000"}  # one line stays one line (Rich wraps at the width)

    def run_cli(*args: str):
        return cli(*args, env=wide)

    shown = json.loads(run_cli("leagues", "knows", "--json", *at).stdout)
    assert shown["roles"] == roles
    bad = run_cli("league", "create", "x", "--coworld", league.coworld.id, "--grader", "ghost", *at)
    assert (
        bad.returncode == 2 and "grader 'ghost'" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    )
    sql = "SELECT policy, count(*) AS n FROM league_stats WHERE policy <> '' GROUP BY policy ORDER BY policy"
    out = run_cli("league", "stats", "knows", "--sql", sql, "--json", *at)
    assert out.returncode == 0, out.stderr
    assert [r["policy"] for r in json.loads(out.stdout)] == ["greedy:v1", "random:v1"]
    table = run_cli("league", "stats", "knows", "--sql", "SELECT '[red]x' AS a", *at)
    assert table.returncode == 0 and "[red]x" in table.stdout, "user text is printed, not parsed as markup"
    wrong = run_cli("league", "stats", "knows", "--sql", "SELEC nothing", *at)
    assert wrong.returncode == 2 and wrong.stderr.startswith("error: SQL error")
    assert len(wrong.stderr.strip().splitlines()) == 1
    made = run_cli(
        "optimize", "--league", "knows", "--policy", "greedy", "--runtime", "process", "--json", *at
    )
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["plan"] and len(json.loads(made.stdout)["episodes"]) == 2
    nobody = run_cli("optimize", "--league", "knows", "--policy", "ghost", "--runtime", "process", *at)
    assert nobody.returncode == 2 and "ghost" in nobody.stderr


@pytest.mark.docker
def test_roles_run_on_docker_inside_the_league(tmp_path: Path, manifest: Path, docker_images: None):
    """The same knowledge runs with the docker runtime: Orchard's reporter, grader, diagnoser and
    optimizer in its image."""
    home = tmp_path / "home"
    service = LeagueService(home=home)
    league = orchard_league(
        service,
        manifest,
        "boxed",
        ("random", "greedy"),
        roles={
            "reporter": "orchard-reporter",
            "grader": "orchard-drama-grader",
            "diagnoser": "orchard-diagnoser",
        },
        commissioner_config={"episodes_per_pair": 1},
    )
    defs = make_defs(home, "docker")
    with dg.instance_for_test() as instance:
        ran = drive(defs, instance, service)
        assert all(outcome.success for _, outcome in ran), [r.job_name for r, o in ran if not o.success]
        (episode,) = service.episodes(league_ref=league.id)
        assert episode.status == "succeeded"
        stats = materializations(instance, "episode_stats", episode.key)[0].asset_materialization.metadata
        assert stats["rows"].value > 0 and stats["runnable"].value == "orchard-reporter"
        grade = materializations(instance, "episode_grades", episode.key)[0].asset_materialization.metadata
        assert grade["builtin"].value is False and isinstance(grade["score"].value, float)
        rnd = service.rounds(league_ref=league.id, limit=1).entries[0]
        assert materializations(instance, "league_stats", rnd.key)
        advice_keys = instance.get_dynamic_partitions("league_policies")
        assert len(advice_keys) == 2
        for key in advice_keys:
            advice = materializations(instance, "diagnoser_advice", key)[0].asset_materialization.metadata
            assert advice["episodes"].value == 1 and advice["advice"].value.strip()
        result = optimize_policy_job.resolve(
            asset_graph=defs.resolve_asset_graph(), resource_defs=defs.resources
        ).execute_in_process(instance=instance, partition_key=advice_keys[0], raise_on_error=False)
        assert result.success
        plan = materializations(instance, "optimizer_plans", advice_keys[0])[0].asset_materialization.metadata
        assert plan["plan"].value


def test_lineage_connects_episodes_to_every_derived_asset(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("COWORLD_HOME", str(tmp_path / "nothing-here"))
    from coworld_pipeline.definitions import defs

    graph = defs().resolve_asset_graph()
    derived = [*DERIVED, "diagnoser_advice", "optimizer_plans", "league_stats", "round_results", "standings"]
    for key in derived:
        assert dg.AssetKey("episodes") in graph.get_ancestor_asset_keys(dg.AssetKey(key)), key
    assert not (tmp_path / "nothing-here").exists()


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_a_crashing_role_fails_its_materialization_and_touches_nothing(tmp_path: Path, manifest: Path):
    home = tmp_path / "home"
    service = LeagueService(home=home)
    league = orchard_league(
        service,
        manifest,
        "crashy",
        ("random", "greedy"),
        roles={"reporter": "crasher"},
        commissioner_config={"episodes_per_pair": 1},
    )
    defs = make_defs(home)
    with dg.instance_for_test() as instance:
        # Play the round first, then snapshot what the episode and the ratings are.
        settings = OrchestrationSettings(episodes_per_run=8, parallelism=3)
        for _ in range(10):
            result, _ = commissioner_tick(instance, service, settings, LocalArtifactStore(home))
            for request in result.dynamic_partitions_requests or []:
                instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
            plays = [r for r in result.run_requests or [] if r.job_name == "play_episodes"]
            if not plays:
                break
            for request in plays:
                defs.resolve_job_def(request.job_name).execute_in_process(
                    instance=instance, tags=request.tags, partition_key=request.partition_key
                )
        (episode,) = service.episodes(league_ref=league.id)
        assert episode.status == "succeeded"
        files_before = _tree_digest(Path(episode.workspace))
        standings_before = [r.to_json() for d in service.standings(league.id) for r in d.standings]

        result, _ = knowledge_tick(instance, service, None, 40)
        (request,) = result.run_requests
        assert set(request.asset_selection) == {
            dg.AssetKey(k) for k in ("episode_bundles", "episode_reports", "episode_stats")
        }
        run = episode_knowledge_job.resolve(
            asset_graph=defs.resolve_asset_graph(), resource_defs=defs.resources
        ).execute_in_process(
            instance=instance,
            partition_key=request.partition_key,
            asset_selection=request.asset_selection,
            tags=request.tags,
            raise_on_error=False,
        )
        assert not run.success
        failures = [e for e in run.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
        assert len(failures) == 1
        meta = failures[0].step_failure_data.user_failure_data.metadata
        assert meta["error_type"].value == "role_crashed"
        assert "exited with code 3" in meta["message"].value
        assert Path(meta["logs"].value, "role.stderr.log").read_text().strip() == "boom"
        restarts = [e for e in run.all_events if e.event_type == dg.DagsterEventType.STEP_RESTARTED]
        assert len(restarts) == knowledge_assets.ROLE_RETRY.max_retries, "retried like infrastructure"
        assert materializations(instance, "episode_reports", episode.key) == []
        assert len(materializations(instance, "episode_bundles", episode.key)) == 1

        again = service.episode(episode.id)
        assert again.status == "succeeded" and again.scores == episode.scores
        assert _tree_digest(Path(episode.workspace)) == files_before
        assert [r.to_json() for d in service.standings(league.id) for r in d.standings] == standings_before


@pytest.mark.slow
def test_knowledge_in_a_running_dagster_dev(tmp_path: Path, manifest: Path):
    """End to end through the GraphQL API: the daemon's sensors play a league's round and make its
    knowledge; the UI's asset graph connects `episodes` to it and shows the metadata."""
    from tests.defs.dagster_dev import DagsterDev

    root = tmp_path / "dev"
    seeded = LeagueService(home=root / "coworld_home")  # where DagsterDev points COWORLD_HOME
    roles = {"reporter": "orchard-reporter", "grader": "orchard-drama-grader"}
    league = orchard_league(
        seeded,
        manifest,
        "live",
        ("random", "greedy"),
        roles=roles,
        commissioner_config={"episodes_per_pair": 1},
    )
    seeded.close()
    dev = DagsterDev(root, {"COWORLD_DEMO": "0", "COWORLD_SENSOR_INTERVAL_SECONDS": "5"})
    try:
        nodes = dev.gql("{ assetNodes { assetKey { path } dependencyKeys { path } } }")["assetNodes"]
        parents = {n["assetKey"]["path"][0]: {d["path"][0] for d in n["dependencyKeys"]} for n in nodes}
        assert parents["episode_bundles"] == {"episodes"}
        assert parents["episode_grades"] == parents["episode_stats"] == {"episode_bundles"}
        assert parents["league_stats"] == {"episode_stats"} and "episodes" in parents["standings"]

        grades = wait_for(
            lambda: dev.materializations("episode_grades"), 240, "an episode_grades materialization", 2
        )
        assert "score" in grades[0]["metadata"]
        stats = wait_for(
            lambda: dev.materializations("league_stats"), 240, "a league_stats materialization", 2
        )
        assert stats[0]["metadata"]["episodes_with_stats"] == 1
        assert Path(stats[0]["metadata"]["dataset"]) == stats_dir(root / "coworld_home", league.id)
    finally:
        dev.stop()
