"""The `knowledge` sensor: turns new episodes of leagues that enable roles into knowledge runs.

Each tick:

1. new `episodes` materializations since the cursor (an event-log storage id, so nothing is missed and
   nothing is read twice): for each succeeded episode of a league with a reporter or grader, one
   `episode_knowledge` run of that episode's partition with just the enabled assets (bundle, report +
   stats, grade); run key `knowledge:<episode>`, so it is requested once;
2. closed rounds of such leagues whose knowledge runs have all finished: `league_stats` for the round
   (reporter), `diagnoser_advice` for each policy version that played in it (diagnoser; partitions
   added here) and one more `standings` refresh so the standings show the round's best-graded
   episodes (grader). Run keys make each once-only.

Nothing is played or run in the sensor. A league without roles costs one cached read per tick.
"""

import json
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from coworld_pipeline.defs.knowledge.assets import (
    diagnoser_advice,
    episode_bundles,
    episode_grades,
    league_stats,
    optimizer_plans,
    reporter_run,
)
from coworld_pipeline.defs.knowledge.partitions import policy_key, policy_partitions
from coworld_pipeline.defs.league.jobs import REFRESH_STANDINGS, refresh_standings_job
from coworld_pipeline.defs.league.partitions import add_requests
from coworld_pipeline.defs.league.requests import IN_FLIGHT
from coworld_pipeline.defs.league.resources import LeagueResource
from coworld_pipeline.defs.league.settings import SETTINGS, TAG_KIND, TAG_LEAGUE, TAG_ROUND
from coworld_pipeline.league.readable import league_part
from coworld_pipeline.league.service import LeagueService
from coworld_pipeline.league.status import EpisodeStatus, RoundStatus

EPISODE_KNOWLEDGE = "episode_knowledge"
LEAGUE_STATS = "build_league_stats"
DIAGNOSE_POLICY = "diagnose_policy"
OPTIMIZE_POLICY = "optimize_policy"
EPISODES_KEY = dg.AssetKey("episodes")
RECENT_CLOSED_ROUNDS = 20
TAG_ROUND_KNOWLEDGE = "coworld/round-knowledge"  # on every round-level run this sensor requests
FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]

BUNDLES, REPORTS, STATS, GRADES = (
    dg.AssetKey(k) for k in ("episode_bundles", "episode_reports", "episode_stats", "episode_grades")
)


def _job(name: str, assets: list[Any], description: str) -> Any:  # an unresolved asset job
    # In-process like the league's jobs: a run's cost is starting its process; roles run in their own.
    return dg.define_asset_job(
        name,
        selection=dg.AssetSelection.assets(*assets),
        executor_def=dg.in_process_executor,
        description=description,
    )


episode_knowledge_job = _job(
    EPISODE_KNOWLEDGE,
    [episode_bundles, reporter_run, episode_grades],
    "Bundle one episode and run the league's enabled roles on it.",
)
league_stats_job = _job(
    LEAGUE_STATS, [league_stats], "Write a round's partition of its league's stats dataset."
)
diagnose_policy_job = _job(
    DIAGNOSE_POLICY, [diagnoser_advice], "Diagnose a policy version's recent episodes in one league."
)
optimize_policy_job = _job(
    OPTIMIZE_POLICY, [optimizer_plans], "On request: the optimizer's plan for one league policy version."
)


@dataclass
class KnowledgeTick:
    cursor: int
    episode_runs: int = 0
    skipped: int = 0  # new episode materializations of leagues without roles, or not succeeded
    round_runs: list[str] = field(default_factory=list)

    def summary(self) -> str:
        rounds = f"; round knowledge: {', '.join(self.round_runs)}" if self.round_runs else ""
        return (
            f"{self.episode_runs} episode knowledge run(s), {self.skipped} episode(s) without roles{rounds}"
        )


def _assets_for(roles: dict[str, str]) -> list[dg.AssetKey]:
    keys = []
    if "reporter" in roles:
        keys += [REPORTS, STATS]
    if "grader" in roles:
        keys.append(GRADES)
    return [BUNDLES, *keys] if keys else []


def knowledge_tick(
    instance: dg.DagsterInstance, service: LeagueService, cursor: int | None, budget: int
) -> tuple[dg.SensorResult, KnowledgeTick]:
    """One sensor step (see the module docstring); `cursor` is the last episodes storage id read."""
    tick = KnowledgeTick(cursor or 0)
    roles_of: dict[str, dict[str, str]] = {}

    def roles(league_id: str) -> dict[str, str]:
        if league_id not in roles_of:
            roles_of[league_id] = dict(service.leagues(league_id)[0].roles)
        return roles_of[league_id]

    requests: list[dg.RunRequest] = []
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=EPISODES_KEY, after_storage_id=tick.cursor or None),
        limit=max(budget, 1),
        ascending=True,
    ).records
    for record in records:
        tick.cursor = record.storage_id
        meta = record.asset_materialization.metadata if record.asset_materialization else {}
        league_id = meta["league"].value if "league" in meta else None
        status = meta["status"].value if "status" in meta else None
        selection = _assets_for(roles(str(league_id))) if league_id else []
        if status != EpisodeStatus.SUCCEEDED or not selection:
            tick.skipped += 1
            continue
        round_id = str(meta["round"].value)
        requests.append(
            dg.RunRequest(
                job_name=EPISODE_KNOWLEDGE,
                partition_key=record.partition_key,
                asset_selection=selection,
                run_key=f"knowledge:{record.partition_key}",
                tags={TAG_ROUND: round_id, TAG_LEAGUE: str(league_id), TAG_KIND: "knowledge"},
            )
        )
        tick.episode_runs += 1

    partition_requests: list[dg.AddDynamicPartitionsRequest] = []
    if len(records) < max(budget, 1):  # caught up with the backlog: round-level knowledge too
        requests += _round_requests(instance, service, roles, tick, partition_requests)
    result = dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=partition_requests,
        cursor=json.dumps({"after": tick.cursor}),
        skip_reason=None if requests else tick.summary(),
    )
    return result, tick


def _round_run(job: str, partition: str, run_key: str, tags: dict[str, str], kind: str) -> dg.RunRequest:
    return dg.RunRequest(
        job_name=job, partition_key=partition, run_key=run_key, tags={**tags, TAG_KIND: kind}
    )


def _round_requests(
    instance: dg.DagsterInstance,
    service: LeagueService,
    roles,
    tick: KnowledgeTick,
    partition_requests: list[dg.AddDynamicPartitionsRequest],
) -> list[dg.RunRequest]:
    requests: list[dg.RunRequest] = []
    known_policies = set(instance.get_dynamic_partitions(policy_partitions.name))
    new_policies: list[str] = []
    for rnd in service.rounds(limit=RECENT_CLOSED_ROUNDS).entries:
        league_id = rnd.league.id
        enabled = roles(league_id)
        if rnd.status == RoundStatus.RUNNING or not enabled:
            continue
        if instance.get_run_records(dg.RunsFilter(tags={TAG_ROUND_KNOWLEDGE: rnd.id}), limit=1):
            continue  # requested by an earlier tick
        round_tags = {TAG_ROUND: rnd.id, TAG_KIND: "knowledge"}
        if instance.get_run_records(dg.RunsFilter(statuses=IN_FLIGHT, tags=round_tags), limit=1):
            continue  # its episodes' knowledge is still being made
        episodes = service.episodes(round_ref=rnd.id, status=EpisodeStatus.SUCCEEDED, limit=100_000)
        if _assets_for(enabled):
            done = instance.get_runs_count(dg.RunsFilter(statuses=FINISHED, tags=round_tags))
            if done < len(episodes):
                continue  # some episodes' runs are not requested yet (their materializations come next)
        tags = {TAG_ROUND: rnd.id, TAG_LEAGUE: league_id, TAG_ROUND_KNOWLEDGE: rnd.id}

        if "reporter" in enabled:
            requests.append(_round_run(LEAGUE_STATS, rnd.key, f"league_stats:{rnd.id}", tags, "league_stats"))
        if "grader" in enabled:  # once more, now that the round's grades exist
            requests.append(
                _round_run(
                    REFRESH_STANDINGS,
                    league_part(rnd.league.name or "", league_id),  # the league's partition key
                    f"standings-graded:{rnd.id}",
                    tags,
                    "standings",
                )
            )
        pvs = sorted({s.policy_version_id for e in episodes for s in e.seats})
        for pv in pvs:  # a partition for every league policy version: the optimizer can run on any
            key = policy_key(league_id, pv)
            if key not in known_policies:
                known_policies.add(key)
                new_policies.append(key)
            if "diagnoser" in enabled:
                requests.append(_round_run(DIAGNOSE_POLICY, key, f"advice:{rnd.id}:{pv}", tags, "advice"))
        tick.round_runs.append(f"{rnd.league.name}#{rnd.round_number}")
    if new_policies:
        partition_requests += add_requests(policy_partitions, new_policies)
    return requests


@dg.sensor(
    name="knowledge",
    minimum_interval_seconds=SETTINGS.sensor_interval_seconds,
    default_status=dg.DefaultSensorStatus.RUNNING,
    jobs=[episode_knowledge_job, league_stats_job, diagnose_policy_job, refresh_standings_job],
    description="Requests the enabled roles' knowledge assets for each new succeeded episode "
    "(bundle, report + stats, grade), then per closed round league_stats, diagnoser_advice per "
    "policy version and a standings refresh with the best-graded episodes.",
)
def knowledge(context: dg.SensorEvaluationContext, league: LeagueResource) -> dg.SensorResult:
    cursor = json.loads(context.cursor)["after"] if context.cursor else None
    result, tick = knowledge_tick(context.instance, league.service(), cursor, SETTINGS.max_runs_per_tick)
    context.log.info(tick.summary())
    return result
