"""The commissioner sensor, the assets and recovery, in-process: a real league database, real orchard
episodes on the process runtime, a real (temporary) Dagster instance. No daemon: the tests execute
the run requests the sensor returns, the way the daemon would."""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._core.utils import make_new_run_id

from coworld_pipeline.defs.league.assets import RESULTS_CHECK, episodes, round_results, standings
from coworld_pipeline.defs.league.jobs import collate_round_job, play_episodes_job, refresh_standings_job
from coworld_pipeline.defs.league.planning import KeyOrder, plan_batches
from coworld_pipeline.defs.league.resources import (
    ArtifactStoreResource,
    EpisodeRuntimeResource,
    LeagueResource,
)
from coworld_pipeline.defs.league.schedules import open_due_rounds, open_rounds
from coworld_pipeline.defs.league.sensors import commissioner, commissioner_tick
from coworld_pipeline.defs.league.settings import (
    TAG_KIND,
    TAG_PARALLELISM,
    TAG_RANGE_END,
    TAG_RANGE_START,
    TAG_ROUND,
    OrchestrationSettings,
)
from coworld_pipeline.demo import ensure_demo_league
from coworld_pipeline.league import LeagueService
from coworld_pipeline.runtime.artifacts import LocalArtifactStore
from tests.league.conftest import FAST, ORCHARD_MANIFEST

EPISODES = dg.AssetKey("episodes")


def make_defs(home: Path, parallelism: int = 4, database_url: str | None = None) -> dg.Definitions:
    return dg.Definitions(
        assets=[episodes, round_results, standings],
        jobs=[play_episodes_job, collate_round_job, refresh_standings_job],
        sensors=[commissioner],
        schedules=[open_rounds],
        resources={
            "league": LeagueResource(home=str(home), database_url=database_url),
            "episode_runtime": EpisodeRuntimeResource(runtime="process", parallelism=parallelism),
            "artifacts": ArtifactStoreResource(kind="local", root=str(home)),
        },
    )


def apply_partition_requests(instance: dg.DagsterInstance, result: dg.SensorResult) -> None:
    for request in result.dynamic_partitions_requests or []:
        assert len(request.partition_keys) <= 500
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))


def execute(
    defs: dg.Definitions, instance: dg.DagsterInstance, request: dg.RunRequest
) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def(request.job_name)
    return job.execute_in_process(
        instance=instance,
        tags=request.tags,
        partition_key=request.partition_key,
        raise_on_error=False,
    )


def drive(defs, instance, service, settings, max_ticks=20) -> list[dg.RunRequest]:
    """Tick, execute every requested run, repeat until a tick requests nothing."""
    executed = []
    for _ in range(max_ticks):
        store = LocalArtifactStore(service.home)
        result, _report = commissioner_tick(instance, service, settings, store)
        apply_partition_requests(instance, result)
        requests = [
            r
            for r in result.run_requests or []
            if r.run_key not in {x.run_key for x in executed if x.run_key}
        ]
        if not requests:
            return executed
        for request in requests:
            outcome = execute(defs, instance, request)
            assert outcome.success, request
            executed.append(request)
    raise AssertionError("the round did not settle")


@pytest.fixture
def league_home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def test_definitions_load_without_services(monkeypatch, tmp_path):
    monkeypatch.setenv("COWORLD_HOME", str(tmp_path / "nothing-here"))
    from coworld_pipeline.definitions import defs

    loaded = defs() if callable(defs) else defs
    dg.Definitions.validate_loadable(loaded)
    repo = loaded.get_repository_def()
    assert {EPISODES, dg.AssetKey("round_results"), dg.AssetKey("standings")} <= set(repo.assets_defs_by_key)
    assert {s.name for s in repo.sensor_defs} == {"commissioner", "knowledge"}  # knowledge: defs/knowledge
    assert {s.name for s in repo.schedule_defs} == {"open_rounds"}
    check_keys = {key for a in repo.assets_defs_by_key.values() for key in a.check_keys}
    assert dg.AssetCheckKey(EPISODES, RESULTS_CHECK) in check_keys
    spec = next(iter(repo.assets_defs_by_key[EPISODES].check_specs))
    assert spec.blocking
    assert not (tmp_path / "nothing-here").exists(), "loading must not create the league database"


def test_idle_pool_slots_raise_the_parallelism_of_few_runs():
    from coworld_pipeline.defs.league.sensors import with_parallelism

    settings = OrchestrationSettings(parallelism=2)
    one, two = [dg.RunRequest(job_name="play_episodes", tags={"x": str(i)}) for i in range(2)]
    assert with_parallelism([one], settings, 2)[0].tags[TAG_PARALLELISM] == "4"
    assert with_parallelism([one], settings, 0)[0].tags[TAG_PARALLELISM] == "2"
    assert [r.tags[TAG_PARALLELISM] for r in with_parallelism([one, two], settings, 2)] == ["2", "2"]
    assert [r.tags[TAG_PARALLELISM] for r in with_parallelism([one, two], settings, 4)] == ["4", "4"]


def test_plan_batches_groups_adjacent_keys():
    order = KeyOrder([f"e{i}" for i in range(10)])
    order.extend(["e10", "e11", "e3"])
    batches = plan_batches(order, ["e0", "e1", "e2", "e4", "e5", "e6", "e7", "e8", "e9", "e10"], 4, 10)
    assert [b.keys for b in batches] == [("e0", "e1", "e2"), ("e4", "e5", "e6", "e7"), ("e8", "e9", "e10")]
    assert order.covered(batches[0].tags()) == ["e0", "e1", "e2"]
    assert len(plan_batches(order, [f"e{i}" for i in range(12)], 4, 2)) == 2
    assert order.covered({"dagster/partition": "e5"}) == ["e5"]
    assert order.covered({}) == []


def test_round_under_the_commissioner_in_process(league_home):
    service = LeagueService(home=league_home)
    league = ensure_demo_league(service, name="inproc", episodes_per_pair=2, kick_off=False)
    defs = make_defs(league_home)
    settings = OrchestrationSettings(episodes_per_run=4, parallelism=4)
    with dg.instance_for_test() as instance:
        # The schedule opens the round (league due: it never had one), saying so in the tick's log; a
        # second tick opens nothing.
        said: list[str] = []
        opened, _ = open_due_rounds(service, "test", log=said.append)
        assert len(opened) == 1 and said == ["inproc: opened round 1 (inproc.r1)"]
        assert open_due_rounds(service, "test") == ([], ["inproc: round 1 is still open"])
        skipped = service.events("inproc", event_type="schedule_skipped")
        assert [e.headline for e in skipped] == ["no round opened for inproc: round 1 is still open"]
        open_due_rounds(service, "test")  # the same reason again: no second event
        assert len(service.events("inproc", event_type="schedule_skipped")) == 1
        # Paused: the next tick says so (its skip reason) and so does an event.
        service.set_paused("inproc", True)
        assert open_due_rounds(service, "test") == ([], ["inproc: paused"])
        assert service.events("inproc", event_type="schedule_skipped")[-1].headline.endswith("inproc: paused")
        service.set_paused("inproc", False)

        started = time.monotonic()
        result, report = commissioner_tick(instance, service, settings)
        assert report.seconds < 5
        assert report.added_partitions == 6 and report.requested_episodes == 6
        play = [r for r in result.run_requests if r.job_name == "play_episodes"]
        assert instance.get_dynamic_partitions("episodes") == []
        apply_partition_requests(instance, result)
        order = KeyOrder(instance.get_dynamic_partitions("episodes"))
        assert sorted(k for r in play for k in order.covered(r.tags)) == sorted(order.keys)
        assert all(len(order.covered(r.tags)) <= 4 for r in play)

        # A tick while those runs are queued requests nothing new for the round.
        for request in play:
            instance.add_run(
                dg.DagsterRun(
                    job_name="play_episodes",
                    run_id=make_new_run_id(),
                    tags=request.tags,
                    status=dg.DagsterRunStatus.NOT_STARTED,
                )
            )
        again, _ = commissioner_tick(instance, service, settings)
        assert not [r for r in again.run_requests or [] if r.job_name == "play_episodes"]
        for record in instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.NOT_STARTED])):
            instance.report_run_canceled(record.dagster_run)

        executed = drive(defs, instance, service, settings)
        elapsed = time.monotonic() - started
        # The run that played the last episode closed the round and logged its round_results and the
        # standings itself: no collate or standings run was needed (closing.py).
        closers = {
            key.path[0]: [
                r.event_log_entry.run_id for r in instance.fetch_materializations(key, limit=10).records
            ]
            for key in (dg.AssetKey("round_results"), dg.AssetKey("standings"))
        }

    kinds = [r.tags[TAG_KIND] for r in executed]
    assert kinds.count("round_results") == 0 and kinds.count("standings") == 0, kinds
    assert len(closers["round_results"]) == 1 and closers["round_results"] == closers["standings"]
    rnd = service.rounds(league_ref=league.id, limit=1).entries[0]
    assert rnd.status == "completed" and rnd.episodes == {"succeeded": 6}, rnd
    assert elapsed < 120


def test_materializations_metadata_and_check(league_home):
    service = LeagueService(home=league_home)
    league = ensure_demo_league(service, name="meta", episodes_per_pair=1, kick_off=True)
    defs = make_defs(league_home)
    settings = OrchestrationSettings(episodes_per_run=8, parallelism=3)
    with dg.instance_for_test() as instance:
        drive(defs, instance, service, settings)
        keys = instance.get_dynamic_partitions("episodes")
        assert len(keys) == 3
        assert instance.get_materialized_partitions(EPISODES) == set(keys)
        for key in keys:
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=EPISODES, asset_partitions=[key]), limit=10
            ).records
            assert len(records) == 1, "each episode is materialized exactly once"
            meta = records[0].asset_materialization.metadata
            assert meta["status"].value == "succeeded"
            assert {"slot_0_policy", "slot_1_policy", "slot_0_score", "slot_1_score"} <= set(meta)
            assert meta["duration_seconds"].value > 0
            assert meta["error_type"].value == ""
            assert "coworld replay-open " + key in meta["replay_command"].value
            assert Path(meta["artifact:results.json"].value).is_file()
            assert Path(meta["artifact:replay.json.z"].value).is_file()
        evaluation = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(EPISODES, RESULTS_CHECK)]
        )[dg.AssetCheckKey(EPISODES, RESULTS_CHECK)]
        assert evaluation.status.value == "SUCCEEDED"

        rr = instance.fetch_materializations(dg.AssetKey("round_results"), limit=1).records[0]
        assert rr.asset_materialization.metadata["status"].value == "completed"
        assert rr.asset_materialization.metadata["rankings"].value.records
        st = instance.fetch_materializations(dg.AssetKey("standings"), limit=1).records[0]
        assert st.partition_key == league.key == league.name  # readable partition keys
        order = st.asset_materialization.metadata["order"].value
        assert sorted(order) == ["greedy:v1", "planner:v1", "random:v1"]
        assert "| rank | policy |" in st.asset_materialization.metadata["standings"].value
        # The league overview comes first: the round's progress and when the next one opens.
        overview = st.asset_materialization.metadata
        assert "round 1 (meta.r1) completed: 3/3 played" in overview["overview"].value
        assert overview["current_round"].value == "meta.r1" and overview["failed_episodes"].value == 0
        assert re.fullmatch(r"~\d\d:\d\d UTC \(cadence 1 min\)", overview["next_round"].value)


def test_dead_run_episodes_are_requeued_and_counted_once(league_home):
    """A run claims an episode and dies: the sensor requeues it, a new run plays it, the late outcome of
    the lost attempt is ignored, so the episode counts exactly once."""
    service = LeagueService(home=league_home)
    league = ensure_demo_league(service, name="recover", episodes_per_pair=1, kick_off=True)
    settings = OrchestrationSettings(episodes_per_run=8, parallelism=2)
    with dg.instance_for_test() as instance:
        result, _ = commissioner_tick(instance, service, settings)
        apply_partition_requests(instance, result)
        (request,) = [r for r in result.run_requests if r.job_name == "play_episodes"]
        order = KeyOrder(instance.get_dynamic_partitions("episodes"))
        victim = order.covered(request.tags)[0]

        # The "run" claims the episode and hangs, then its run is reported dead.
        release = threading.Event()
        claimed = threading.Event()

        def hanging_runner(req: Any, workspace: Path, secrets: dict) -> Any:
            claimed.set()
            release.wait(60)
            raise RuntimeError("the lost attempt finishes late")

        lost_attempt = threading.Thread(
            target=service.execute_episode, args=(victim, "process", None, hanging_runner)
        )
        lost_attempt.start()
        assert claimed.wait(30)
        dead = dg.DagsterRun(
            job_name="play_episodes",
            run_id=make_new_run_id(),
            tags=request.tags,
            status=dg.DagsterRunStatus.FAILURE,
        )
        instance.add_run(dead)

        result, report = commissioner_tick(instance, service, settings)
        assert report.requeued == [victim]
        requested = [order.covered(r.tags) for r in result.run_requests if r.job_name == "play_episodes"]
        assert [k for keys in requested for k in keys].count(victim) == 1

        release.set()
        lost_attempt.join(30)
        defs = make_defs(league_home)
        for r in result.run_requests:
            assert execute(defs, instance, r).success
        drive(defs, instance, service, settings)

    episode = service.episode(victim)
    assert episode.status == "succeeded" and episode.attempts == 2
    assert [e["error_type"] for e in episode.attempt_errors] == ["interrupted"]
    rated = service.events(league.id, event_type="episode_rated", limit=100)
    assert [e.episode_request_id for e in rated].count(episode.id) == 1
    # Events name the episode by its readable partition key.
    assert episode.key == victim and any(e.headline.startswith(f"episode {victim} rated") for e in rated)
    assert service.events(league.id, event_type="late_result_ignored", limit=10)
    standings_rows = service.standings(league.id)[0].standings
    assert sum(r.episodes for r in standings_rows) == 2 * 3  # 3 episodes, 2 seats, each counted once


def test_a_tick_with_1000_episodes_stays_fast(league_home):
    service = LeagueService(home=league_home)
    league = ensure_demo_league(service, name="big", episodes_per_pair=334, kick_off=False)
    settings = OrchestrationSettings(episodes_per_run=16, max_runs_per_tick=40)
    with dg.instance_for_test() as instance:
        t0 = time.monotonic()
        assert service.open_round(league.id, "test").opened
        opened = time.monotonic() - t0
        started = time.monotonic()
        result, report = commissioner_tick(instance, service, settings)
        first_tick = time.monotonic() - started
        assert report.added_partitions == 1002
        assert len(result.dynamic_partitions_requests) >= 3  # chunks of <= 500 episode keys
        play = [r for r in result.run_requests if r.job_name == "play_episodes"]
        assert len(play) == 40 and report.deferred_episodes == 1002 - report.requested_episodes
        apply_partition_requests(instance, result)
        for request in play:  # the daemon would create these runs: they are now queued
            instance.add_run(
                dg.DagsterRun(
                    job_name="play_episodes",
                    run_id=make_new_run_id(),
                    tags=request.tags,
                    status=dg.DagsterRunStatus.NOT_STARTED,
                )
            )
        started = time.monotonic()
        result2, report2 = commissioner_tick(instance, service, settings)
        second_tick = time.monotonic() - started
        order = KeyOrder(instance.get_dynamic_partitions("episodes"))
        first = {k for r in play for k in order.covered(r.tags)}
        second = {k for r in result2.run_requests or [] for k in order.covered(r.tags)}
        assert not first & second and len(first) + len(second) == 1002
        assert report2.added_partitions == 0
    print(f"open_round {opened:.2f}s, first tick {first_tick:.2f}s, second tick {second_tick:.2f}s")
    assert first_tick < 20 and second_tick < 20


def test_sensor_and_schedule_definitions_evaluate(league_home):
    service = LeagueService(home=league_home)
    ensure_demo_league(service, name="ctx", episodes_per_pair=1, kick_off=True)
    resources = {
        "league": LeagueResource(home=str(league_home)),
        "artifacts": ArtifactStoreResource(kind="local", root=str(league_home)),
    }
    with dg.instance_for_test() as instance:
        with dg.build_sensor_context(instance=instance, resources=resources) as context:
            result = commissioner(context)
        assert isinstance(result, dg.SensorResult)
        assert {r.tags[TAG_ROUND] for r in result.run_requests} == {service.rounds(limit=1).entries[0].id}
        assert all(TAG_RANGE_START in r.tags and TAG_RANGE_END in r.tags for r in result.run_requests)
        with dg.build_schedule_context(
            instance=instance, resources=resources, scheduled_execution_time=datetime.now(UTC)
        ) as schedule_context:
            skip = open_rounds(schedule_context)  # the demo league has an open round: nothing is due
        assert isinstance(skip, dg.SkipReason)


def test_schedule_opens_due_rounds_and_requests_their_first_runs(league_home):
    service = LeagueService(home=league_home)
    league = ensure_demo_league(service, name="sched", episodes_per_pair=2, kick_off=False)
    resources = {
        "league": LeagueResource(home=str(league_home)),
        "artifacts": ArtifactStoreResource(kind="local", root=str(league_home)),
    }
    pools = {"concurrency": {"pools": {"granularity": "run", "default_limit": 2}}}
    with dg.instance_for_test(overrides=pools) as instance:
        with dg.build_schedule_context(
            instance=instance, resources=resources, scheduled_execution_time=datetime.now(UTC)
        ) as context:
            requests = open_rounds(context)
        rnd = service.rounds(league_ref=league.id, limit=1).entries[0]
        assert rnd.status == "running" and rnd.trigger.startswith("schedule")
        order = KeyOrder(instance.get_dynamic_partitions("episodes"))
        assert order.keys == [f"sched.r1.e{n}" for n in range(1, 7)]  # readable partition keys
        assert sorted(k for r in requests for k in order.covered(r.tags)) == sorted(order.keys)
        assert {r.tags[TAG_ROUND] for r in requests} == {rnd.id}
        # One run (6 < K) that uses both idle pool slots: twice the per-run parallelism.
        (request,) = requests
        assert request.run_key and request.tags[TAG_PARALLELISM] == "4"
        assert instance.get_dynamic_partitions("rounds") == [rnd.key] == [f"{league.name}.r1"]
        # The sensor leaves the fresh round to the schedule's runs: no duplicate requests.
        result, _ = commissioner_tick(
            instance, service, OrchestrationSettings(), LocalArtifactStore(league_home)
        )
        assert not [r for r in result.run_requests or [] if r.job_name == "play_episodes"]


def test_final_episodes_without_materialization_are_reported_by_the_sensor(league_home):
    """Episodes recorded by the league but never logged by their (dead) run get one materialization."""
    service = LeagueService(home=league_home)
    ensure_demo_league(service, name="backfill", episodes_per_pair=1, kick_off=True)
    settings = OrchestrationSettings(episodes_per_run=8, parallelism=2)
    store = LocalArtifactStore(league_home)
    with dg.instance_for_test() as instance:
        result, _ = commissioner_tick(instance, service, settings, store)
        apply_partition_requests(instance, result)
        keys = instance.get_dynamic_partitions("episodes")
        for key in keys:  # played outside any run, as by a run that died before logging
            assert service.execute_episode(key, "process", store) == "succeeded"
        instance.add_run(
            dg.DagsterRun(
                job_name="play_episodes",
                run_id=make_new_run_id(),
                tags=result.run_requests[0].tags,
                status=dg.DagsterRunStatus.FAILURE,
            )
        )
        result, report = commissioner_tick(instance, service, settings, store)
        assert report.backfilled == 3
        assert instance.get_materialized_partitions(EPISODES) == set(keys)
        assert {r.tags[TAG_KIND] for r in result.run_requests} == {"round_results", "standings"}
        result, report = commissioner_tick(instance, service, settings, store)
        assert report.backfilled == 0
        for key in keys:
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=EPISODES, asset_partitions=[key]), limit=10
            ).records
            assert len(records) == 1
            assert records[0].asset_materialization.metadata["reported_by"].value == "commissioner sensor"


def test_a_round_closed_by_its_last_run_is_swept_once_for_missing_materializations(league_home):
    """The run playing a round's last episode logs round_results and standings; episodes of that round
    that a dead run recorded but never logged are still reported by the sensor, once."""
    service = LeagueService(home=league_home)
    ensure_demo_league(service, name="closer", episodes_per_pair=1, kick_off=True)
    defs = make_defs(league_home)
    settings = OrchestrationSettings(episodes_per_run=8, parallelism=2)
    store = LocalArtifactStore(league_home)
    with dg.instance_for_test() as instance:
        result, _ = commissioner_tick(instance, service, settings, store)
        apply_partition_requests(instance, result)
        request = result.run_requests[0]
        keys = KeyOrder(instance.get_dynamic_partitions("episodes")).covered(request.tags)
        assert len(keys) == 3
        for key in keys[:2]:  # recorded, never logged: as by a run that died in between
            assert service.execute_episode(key, "process", store) == "succeeded"
        instance.add_run(
            dg.DagsterRun(
                job_name="play_episodes",
                run_id=make_new_run_id(),
                tags=request.tags,
                status=dg.DagsterRunStatus.FAILURE,
            )
        )
        last = {k: v for k, v in request.tags.items() if not k.startswith("dagster/")}
        outcome = execute(
            defs, instance, dg.RunRequest(job_name="play_episodes", partition_key=keys[2], tags=last)
        )
        assert outcome.success
        rr = instance.fetch_materializations(dg.AssetKey("round_results"), limit=5).records
        assert [r.event_log_entry.run_id for r in rr] == [outcome.run_id]
        assert rr[0].asset_materialization.metadata["collated_by"].value.startswith("the episodes run")
        assert instance.get_materialized_partitions(EPISODES) == {keys[2]}

        swept: set[str] = set()
        result, report = commissioner_tick(instance, service, settings, store, swept)
        assert report.backfilled == 2 and not result.run_requests  # nothing left to collate
        assert instance.get_materialized_partitions(EPISODES) == set(keys)
        assert json.loads(result.cursor) == {"swept": sorted(swept)} and len(swept) == 1
        result, report = commissioner_tick(instance, service, settings, store, swept)
        assert report.backfilled == 0 and not result.run_requests


CRASHER = ["python", "-c", "raise SystemExit(7)"]


def duel_league(service: LeagueService, name: str, players: dict[str, list[str]], **league: Any) -> Any:
    """An Orchard duel league of `players` ({name: run}), every one submitted."""
    service.upload_coworld(ORCHARD_MANIFEST)
    for policy, run in players.items():
        service.upload_policy("coworld/orchard:0.1.0", policy, run=run)
    created = service.create_league(name, "orchard", variants=["duel"], **league)
    for policy in players:
        service.submit(policy, name)
    return created


def play_round_in_one_run(
    defs: dg.Definitions, instance: dg.DagsterInstance, service: LeagueService, league_id: str
) -> tuple[str, list[str], dg.ExecuteInProcessResult]:
    """Open a round and play all its episodes in one `play_episodes` run: (round id, keys, result)."""
    round_id = service.open_round(league_id).round_id
    assert round_id is not None
    keys = [f"ereq_{e}" for e in service.pending_episodes(round_id)]
    instance.add_dynamic_partitions("episodes", keys)
    result = defs.resolve_job_def("play_episodes").execute_in_process(
        instance=instance, tags={TAG_RANGE_START: keys[0], TAG_RANGE_END: keys[-1]}, raise_on_error=False
    )
    return round_id, keys, result


def step_failure(result: dg.ExecuteInProcessResult) -> Any:
    return next(e for e in result.all_events if e.is_step_failure).step_failure_data.user_failure_data


def results_check(instance: dg.DagsterInstance) -> Any:
    """The latest evaluation of the episodes' results check."""
    key = dg.AssetCheckKey(EPISODES, RESULTS_CHECK)
    check = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
    return check.event.dagster_event.event_specific_data


def test_failed_episodes_are_failed_partitions_with_their_reason(league_home):
    """A player that crashes: its episodes are not materializations but failed partitions, the run
    fails naming the error type and blame, and the results check warns that the batch is degraded."""
    service = LeagueService(home=league_home)
    random_run = ["python", "-m", "orchard.players.random"]
    league = duel_league(
        service,
        "crashy",
        {"random": random_run, "crasher": CRASHER},
        commissioner_config={"episodes_per_pair": 2},
        config_overrides=FAST,
    )
    defs = make_defs(league_home)
    with dg.instance_for_test() as instance:
        round_id, keys, result = play_round_in_one_run(defs, instance, service, league.id)
        assert not result.success
        failure = step_failure(result)
        assert "2 episode(s) failed" in failure.description
        assert "player_crashed (blame player, slot" in failure.metadata["failed_episodes"].value
        statuses = instance.get_status_by_partition(EPISODES, keys, episodes.partitions_def)
        assert set(statuses.values()) == {dg.AssetPartitionStatus.FAILED}, statuses
        assert instance.get_materialized_partitions(EPISODES) == set()
        evaluation = results_check(instance)
        assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert {e.status for e in service.episodes(round_ref=f"round_{round_id}")} == {"failed"}


def test_a_run_whose_attempt_will_be_retried_fails_naming_the_error(league_home):
    """An infrastructure failure (here the episode timeout) sends the episode back to pending for a
    retry. Its run must still not show green: it fails, the log and the failure name the error type,
    and the results check does not pass over an attempt that failed."""
    service = LeagueService(home=league_home)
    league = duel_league(
        service,
        "slowpoke",
        {name: ["python", "-m", f"orchard.players.{name}"] for name in ("random", "greedy")},
        commissioner_config={"episodes_per_pair": 1},
        config_overrides={**FAST, "max_ticks": 10_000, "tick_rate": 10},  # far longer than the timeout
        failure_policy={"episode_timeout_seconds": 1, "infra_retries": 1},
    )
    defs = make_defs(league_home)
    with dg.instance_for_test() as instance:
        round_id, keys, result = play_round_in_one_run(defs, instance, service, league.id)
        assert not result.success, "a run with a failed attempt shows as failed"
        failure = step_failure(result)
        assert f"{len(keys)} attempt(s) failed and will be retried" in failure.description
        retried = failure.metadata["retried_episodes"].value
        assert retried.count("attempt 1 failed — game_") == len(keys), retried
        logs = instance.all_logs(result.run_id)
        errors = [r.user_message for r in logs if r.level >= 40]
        assert any("attempt 1 failed — game_" in m and "will be retried" in m for m in errors), errors
        statuses = instance.get_status_by_partition(EPISODES, keys, episodes.partitions_def)
        assert set(statuses.values()) == {dg.AssetPartitionStatus.FAILED}, statuses
        evaluation = results_check(instance)
        assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
        assert evaluation.metadata["retried_attempts"].value == len(keys)
    assert {e.status for e in service.episodes(round_ref=f"round_{round_id}")} == {"pending"}


def test_episodes_cancelled_in_a_failed_run_do_not_stay_failed_partitions(league_home):
    """The crasher is quarantined after its first failure, which cancels its other episode while the
    batch plays. Dagster marks that never-played partition failed with the run; once the round is
    closed, the sensor removes it (with a league event), so the UI's failed count is the league's."""
    service = LeagueService(home=league_home)
    league = duel_league(
        service,
        "quarantiny",
        {"random": ["python", "-m", "orchard.players.random"], "crasher": CRASHER},
        commissioner_config={"episodes_per_pair": 2},
        config_overrides=FAST,
        failure_policy={"quarantine_after": 1},
    )
    settings = OrchestrationSettings(episodes_per_run=8, parallelism=1)  # one at a time: one is cancelled
    defs = make_defs(league_home, parallelism=1)
    with dg.instance_for_test() as instance:
        round_id = service.open_round(league.id).round_id
        assert round_id is not None
        result, _ = commissioner_tick(instance, service, settings, LocalArtifactStore(league_home))
        apply_partition_requests(instance, result)
        (request,) = [r for r in result.run_requests if r.tags.get(TAG_KIND) == "episodes"]
        assert not execute(defs, instance, request).success
        episodes_now = {e.key: e for e in service.episodes(round_ref=f"round_{round_id}")}
        cancelled = [k for k, e in episodes_now.items() if e.status == "cancelled"]
        failed = [k for k, e in episodes_now.items() if e.status == "failed"]
        assert len(cancelled) == 1 and len(failed) == 1, episodes_now
        keys = instance.get_dynamic_partitions("episodes")
        statuses = instance.get_status_by_partition(EPISODES, keys, episodes.partitions_def)
        assert statuses[cancelled[0]] == dg.AssetPartitionStatus.FAILED  # Dagster's doing, for now

        _, report = commissioner_tick(instance, service, settings, LocalArtifactStore(league_home))
        assert report.removed == 1
        keys = instance.get_dynamic_partitions("episodes")
        assert cancelled[0] not in keys and failed[0] in keys
        statuses = instance.get_status_by_partition(EPISODES, keys, episodes.partitions_def)
        assert statuses == {failed[0]: dg.AssetPartitionStatus.FAILED}
        (event,) = service.events("quarantiny", event_type="partitions_archived")
        assert event.payload["keys"] == cancelled and "never played" in event.headline
        _, again = commissioner_tick(instance, service, settings, LocalArtifactStore(league_home))
        assert again.removed == 0, "once per round"
