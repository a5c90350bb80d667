"""The commissioner sensor: drives every open round through `LeagueService` without playing anything.

Each tick, for every open round (except rounds the schedule opened in the last 20 s: the schedule
requested their first runs itself, so that a scheduled round starts without waiting for a tick):

1. `advance_round` reports finished episodes to the commissioner, schedules what it asks for and
   closes the round when it is complete (the league database is the state);
2. episode requests without a partition get one (`episodes` dynamic partitions, <= 500 keys per add);
3. episodes `running` in the league but whose run is dead (failed/canceled and its worker process
   gone, or "in progress" with its worker gone) are requeued — an `interrupted` attempt, never
   counted; a canceled run whose worker still finishes its started episodes is left to finish;
   so are episodes of any runner (a CLI round, another host) whose claim lease lapsed
   (`COWORLD_LEASE_SECONDS`);
4. `pending` episodes that no queued/in-progress run covers are requested: runs of up to K adjacent
   partitions (a partition range), at most `COWORLD_MAX_RUNS_PER_TICK` runs per tick; when fewer
   runs are requested than the pool has free slots, each plays more episodes at once (see
   `with_parallelism`);
5. beyond `COWORLD_ARCHIVE_PARTITIONS_ABOVE` (100k) episode partitions, the oldest keys of closed
   rounds are archived, <= 500 per tick (archive.py: the league and Dagster's event log keep them).

A round is normally closed by the `episodes` run that played its last episode, which also logs its
`round_results` and standings (closing.py). Rounds closed otherwise get one `round_results` run
(their partition) and one `standings` run for their league (run keys make both once-only), once
none of their episode runs is in flight; either way, a final episode of a closed round without a
materialization (its run died between recording and logging it) gets one reported by the sensor
(once per round: the cursor remembers the swept rounds; losing it only repeats the check).
Episodes are never played in the sensor, so a tick
takes a few hundred milliseconds even with 1,000 episodes in a round.
"""

import json
import time
from dataclasses import dataclass, field

import dagster as dg

from coworld_pipeline.defs.league.archive import (
    archive_old_episode_partitions,
    remove_never_played_partitions,
)
from coworld_pipeline.defs.league.jobs import (
    COLLATE_ROUND,
    REFRESH_STANDINGS,
    collate_round_job,
    play_episodes_job,
    refresh_standings_job,
)
from coworld_pipeline.defs.league.metadata import episode_metadata
from coworld_pipeline.defs.league.partitions import (
    add_requests,
    episode_partitions,
    league_partitions,
    round_partitions,
)
from coworld_pipeline.defs.league.planning import KeyOrder
from coworld_pipeline.defs.league.recovery import fail_lost_run, worker_alive, worker_gone
from coworld_pipeline.defs.league.requests import (
    IN_FLIGHT,
    episode_run_requests,
    free_episode_slots,
    opened_by_schedule_just_now,
    round_episode_runs_in_flight,
    with_parallelism,
)
from coworld_pipeline.defs.league.resources import ArtifactStoreResource, LeagueResource
from coworld_pipeline.defs.league.settings import (
    SETTINGS,
    TAG_KIND,
    TAG_LEAGUE,
    TAG_ROUND,
    OrchestrationSettings,
)
from coworld_pipeline.league import ids
from coworld_pipeline.league.readable import league_part
from coworld_pipeline.league.service import LeagueService
from coworld_pipeline.league.status import EpisodeStatus, RoundStatus
from coworld_pipeline.league.views import RoundView
from coworld_pipeline.runtime.artifacts import ArtifactStore, store_from_env

DEAD = [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
RECENT_CLOSED_ROUNDS = 20
EPISODES_KEY = dg.AssetKey("episodes")
JANITOR_EVERY_SECONDS = 60.0

_last_janitor = 0.0


@dataclass
class TickReport:
    open_rounds: int = 0
    closed_rounds: list[str] = field(default_factory=list)
    added_partitions: int = 0
    requeued: list[str] = field(default_factory=list)
    lost_runs: list[str] = field(default_factory=list)
    requested_episodes: int = 0
    deferred_episodes: int = 0
    backfilled: int = 0
    removed: int = 0  # keys of never-played (cancelled) episodes
    archived: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"{self.open_rounds} open round(s); +{self.added_partitions} partitions; "
            f"{self.requested_episodes} episode(s) requested"
            + (f", {self.deferred_episodes} deferred to the next tick" if self.deferred_episodes else "")
            + (f"; requeued {len(self.requeued)} lost episode(s)" if self.requeued else "")
            + (f"; {len(self.lost_runs)} lost run(s) failed" if self.lost_runs else "")
            + (f"; reported {self.backfilled} missing episode materialization(s)" if self.backfilled else "")
            + (f"; closed {', '.join(self.closed_rounds)}" if self.closed_rounds else "")
            + (f"; archived {self.archived} old episode partition(s)" if self.archived else "")
            + (f"; removed {self.removed} never-played episode partition(s)" if self.removed else "")
            + f" ({self.seconds:.2f}s)"
        )


def _reap_orphans_now_and_then(context_log: dg.DagsterLogManager, now_anyway: bool = False) -> None:
    global _last_janitor
    now = time.monotonic()
    if now - _last_janitor < JANITOR_EVERY_SECONDS and not now_anyway:
        return
    _last_janitor = now
    from coworld_pipeline.runtime.janitor import reap_orphans

    try:
        reaped = reap_orphans()
        if any(reaped.values()):
            context_log.info(f"janitor reaped {reaped}")
    except Exception as exc:  # never fail a tick over cleanup
        context_log.warning(f"janitor failed: {exc}")


def backfill_episode_materializations(
    instance: dg.DagsterInstance,
    service: LeagueService,
    store: ArtifactStore,
    round_id: str,
    order: KeyOrder,
    materialized: set[str],
) -> int:
    """Report a materialization for succeeded episodes of a closed round that have none.

    That happens when a run worker dies after the league recorded an outcome but before the run
    logged it. The metadata comes from the league database, as for a run's own materializations.
    """
    count = 0
    for episode in service.episodes(round_ref=round_id, limit=100_000):
        key = episode.key if episode.key in order else episode.id  # readable, or an `ereq_` key added before
        # Only succeeded episodes are materializations; a failed one stays a failed partition.
        if episode.status != EpisodeStatus.SUCCEEDED or key in materialized or key not in order:
            continue
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key=EPISODES_KEY,
                partition=key,
                metadata={**episode_metadata(episode, store), "reported_by": "commissioner sensor"},
            )
        )
        materialized.add(key)
        count += 1
    return count


def commissioner_tick(
    instance: dg.DagsterInstance,
    service: LeagueService,
    settings: OrchestrationSettings = SETTINGS,
    store: ArtifactStore | None = None,
    swept: set[str] | None = None,
) -> tuple[dg.SensorResult, TickReport]:
    """One commissioner step over all open rounds (see the module docstring).

    `swept`: ids of closed rounds whose missing episode materializations were already reported (the
    sensor keeps it in its cursor; updated in place). Losing it costs one more check per round.
    """
    store = store or store_from_env()
    swept = set() if swept is None else swept
    started = time.monotonic()
    report = TickReport()
    run_requests: list[dg.RunRequest] = []
    partition_requests: list[dg.AddDynamicPartitionsRequest] = []

    service.requeue_stale()  # claims of dead runners of any kind: their lease lapsed (claims.py)

    order = KeyOrder(instance.get_dynamic_partitions(episode_partitions.name))
    known_rounds = set(instance.get_dynamic_partitions(round_partitions.name))
    known_leagues = set(instance.get_dynamic_partitions(league_partitions.name))
    new_rounds: list[str] = []
    new_leagues: list[str] = []

    def note_round(rnd: RoundView) -> None:
        round_key, league_key = rnd.key, league_part(rnd.league.name or "", rnd.league.id)
        if round_key not in known_rounds:
            known_rounds.add(round_key)
            new_rounds.append(round_key)
        if league_key not in known_leagues:
            known_leagues.add(league_key)
            new_leagues.append(league_key)

    open_rounds = service.rounds(status=RoundStatus.RUNNING, limit=1000).entries
    report.open_rounds = len(open_rounds)
    budget = settings.max_runs_per_tick
    todo_by_round: list[tuple[RoundView, list[str]]] = []
    new_episode_keys: list[str] = []
    for rnd in open_rounds:
        round_id = rnd.id
        note_round(rnd)
        if opened_by_schedule_just_now(rnd):
            continue  # the schedule requested its first runs; their runs may not exist yet
        progress = service.advance_round(round_id)
        if progress.done:
            continue
        # Partition keys are the readable keys (`league.rN.eM`); the league speaks raw ids.
        key_of = service.episode_keys(round_id)
        raw_of = {key: raw for raw, key in key_of.items()}
        pending = [key_of[e] for e in progress.pending]
        running = [key_of[e] for e in progress.running]
        new_episode_keys += order.extend(pending + running)

        # Runs of this round: which episodes they cover, and which are dead.
        covered: set[str] = set()
        for record in instance.get_run_records(
            dg.RunsFilter(statuses=IN_FLIGHT, tags={TAG_ROUND: round_id, TAG_KIND: "episodes"})
        ):
            run = record.dagster_run
            if run.status == dg.DagsterRunStatus.STARTED and worker_gone(run.tags):
                fresh = instance.get_run_by_id(run.run_id)
                if fresh is None or fresh.status != dg.DagsterRunStatus.STARTED:
                    continue  # it just finished: nothing to fail
                fail_lost_run(instance, fresh)
                report.lost_runs.append(run.run_id)
                continue
            covered.update(order.covered(run.tags))
        lost_candidates = [e for e in running if e not in covered]
        if lost_candidates:
            dead_cover: set[str] = set()
            for record in instance.get_run_records(
                dg.RunsFilter(statuses=DEAD, tags={TAG_ROUND: round_id, TAG_KIND: "episodes"})
            ):
                if worker_alive(record.dagster_run.tags):
                    covered.update(order.covered(record.dagster_run.tags))  # still finishing episodes
                else:
                    dead_cover.update(order.covered(record.dagster_run.tags))
            lost = [e for e in lost_candidates if e in dead_cover]
            if lost:
                requeued = service.requeue_episodes(
                    [raw_of[k] for k in lost], "the Dagster run playing it died"
                )
                report.requeued += [key_of[ids.raw_id("ereq", e)] for e in requeued]
                if requeued:  # back to pending (unless out of retries): play them in this tick already
                    pending = [key_of[e] for e in service.pending_episodes(round_id)]
        todo = [e for e in pending if e not in covered]
        todo_by_round.append((rnd, todo))

    if new_episode_keys:
        partition_requests += add_requests(episode_partitions, new_episode_keys)
        report.added_partitions = len(new_episode_keys)

    episode_requests: list[dg.RunRequest] = []
    for rnd, todo in todo_by_round:
        requests = episode_run_requests(order, todo, rnd.id, rnd.league.id, settings, budget)
        budget -= len(requests)
        planned = sum(len(order.covered(r.tags)) for r in requests)
        report.requested_episodes += planned
        report.deferred_episodes += len(todo) - planned
        episode_requests += requests
    if episode_requests:
        run_requests += with_parallelism(episode_requests, settings, free_episode_slots(instance))

    # Closed rounds, once no episode run of theirs is in flight any more: their missing episode
    # materializations are reported (once: `swept`), and those without round_results yet (closed by a
    # CLI runner or by this tick, not by the run that played their last episode: closing.py) collated.
    collated = instance.get_materialized_partitions(dg.AssetKey("round_results"))
    materialized: set[str] | None = None
    recent = service.rounds(limit=RECENT_CLOSED_ROUNDS).entries
    swept.intersection_update(r.id for r in recent)  # bounded: only recent rounds are remembered
    for rnd in recent:
        round_id, league_id = rnd.id, rnd.league.id
        # (Keyed by its readable key; an instance from before those keys collated it by its id.)
        already_collated = rnd.key in collated or round_id in collated
        if rnd.status == RoundStatus.RUNNING or (already_collated and round_id in swept):
            continue
        if round_episode_runs_in_flight(instance, round_id):
            continue
        if materialized is None:
            materialized = instance.get_materialized_partitions(EPISODES_KEY)
        report.backfilled += backfill_episode_materializations(
            instance, service, store, round_id, order, materialized
        )
        removed = set(remove_never_played_partitions(instance, service, round_id, order))
        if removed:
            report.removed += len(removed)
            order = KeyOrder([k for k in order.keys if k not in removed])
        swept.add(round_id)
        if already_collated:
            continue
        note_round(rnd)
        report.closed_rounds.append(rnd.key)
        tags = {TAG_ROUND: round_id, TAG_LEAGUE: league_id}
        run_requests.append(
            dg.RunRequest(
                job_name=COLLATE_ROUND,
                partition_key=rnd.key,
                run_key=f"round_results:{round_id}",
                tags={**tags, TAG_KIND: "round_results"},
            )
        )
        run_requests.append(
            dg.RunRequest(
                job_name=REFRESH_STANDINGS,
                partition_key=league_part(rnd.league.name or "", league_id),
                run_key=f"standings:{round_id}",
                tags={**tags, TAG_KIND: "standings"},
            )
        )

    # Beyond ~100k episode partitions, the oldest closed rounds' keys are archived (archive.py).
    recent_ids = {r.id for r in recent}
    archived = archive_old_episode_partitions(
        instance, service, order.keys, lambda rid: rid in swept or rid not in recent_ids
    )
    report.archived = sum(archived.values())

    if new_rounds:
        partition_requests += add_requests(round_partitions, new_rounds)
    if new_leagues:
        partition_requests += add_requests(league_partitions, new_leagues)
    report.seconds = time.monotonic() - started
    result = dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=partition_requests,
        skip_reason=None if run_requests else report.summary(),
        cursor=json.dumps({"swept": sorted(swept)}),
    )
    return result, report


def swept_from_cursor(cursor: str | None) -> set[str]:
    """The `swept` round ids kept in the sensor's cursor (an unreadable cursor is an empty set)."""
    try:
        return set(json.loads(cursor or "{}").get("swept", []))
    except (ValueError, AttributeError, TypeError):
        return set()


@dg.sensor(
    name="commissioner",
    minimum_interval_seconds=SETTINGS.sensor_interval_seconds,
    default_status=dg.DefaultSensorStatus.RUNNING,
    jobs=[play_episodes_job, collate_round_job, refresh_standings_job],
    description="Advances every open round: adds episode partitions, requests runs of K episodes, "
    "requeues episodes of dead runs, and collates closed rounds into round_results and standings.",
)
def commissioner(
    context: dg.SensorEvaluationContext, league: LeagueResource, artifacts: ArtifactStoreResource
) -> dg.SensorResult:
    service = league.service()
    if SETTINGS.demo:
        from coworld_pipeline.demo import ensure_demo_league

        ensure_demo_league(service)
    _reap_orphans_now_and_then(context.log)
    result, report = commissioner_tick(
        context.instance, service, SETTINGS, artifacts.store(), swept_from_cursor(context.cursor)
    )
    # A dead run worker cannot remove its game/player containers (docker has no parent-death
    # signal): remove them as soon as its episodes are requeued, not at the next periodic sweep.
    if report.requeued or report.lost_runs:
        _reap_orphans_now_and_then(context.log, now_anyway=True)
    context.log.info(report.summary())
    return result
