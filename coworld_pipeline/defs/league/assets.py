"""League assets: `episodes` (one partition per episode request), `round_results`, `standings`.

A run of `episodes` plays the K partitions of its partition range through the league's one episode
path (`league.play.play_batch`: claim-and-prepare, play, record; an episode already played or
running elsewhere is not played again) and logs one materialization per episode the moment it is
final, so a run killed half-way keeps what it finished. The blocking check `results_match_manifest`
reports, per episode, that its results (validated against the manifest once, by the runtime, before
anything was recorded) are in the artifact store and that the league recorded one score per seat.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from coworld_pipeline.defs.league.closing import closed_round_materializations, league_standings_metadata
from coworld_pipeline.defs.league.metadata import episode_metadata, md_table, md_text, round_metadata
from coworld_pipeline.defs.league.partitions import episode_partitions, league_partitions, round_partitions
from coworld_pipeline.defs.league.recovery import worker_tag
from coworld_pipeline.defs.league.resources import (
    ArtifactStoreResource,
    EpisodeRuntimeResource,
    LeagueResource,
)
from coworld_pipeline.defs.league.settings import EPISODE_POOL, SETTINGS, TAG_PARALLELISM
from coworld_pipeline.league.play import Played, play_batch
from coworld_pipeline.league.status import EpisodeStatus
from coworld_pipeline.league.views import EpisodeView

RESULTS_CHECK = "results_match_manifest"
MAX_PARALLELISM = 64
GROUP = "league"


def check_episode_results(episode: EpisodeView) -> tuple[bool | None, str]:
    """(True, "") stored and complete; (False, why) not; (None, why) nothing to check (not succeeded)."""
    if episode.status != EpisodeStatus.SUCCEEDED:
        return None, f"{episode.status}: {episode.error_type or 'no results'}"
    artifacts = episode.artifacts or {}
    if "error" in artifacts:
        return False, str(artifacts["error"])[:500]
    if artifacts and "results.json" not in artifacts:
        return False, "results.json is missing from the artifact store"
    if episode.scores is None or len(episode.scores) != len(episode.seats):
        return False, f"the league recorded {episode.scores} for {len(episode.seats)} seats"
    return True, ""


def run_parallelism(tags: dict[str, str], default: int) -> int:
    """Episodes this run plays at once: the commissioner's tag (idle pool slots), else the resource's."""
    raw = tags.get(TAG_PARALLELISM, "")
    return max(1, min(int(raw), MAX_PARALLELISM)) if raw.isdigit() else default


class ResultsCheck:
    """Collects the per-episode rows of the `results_match_manifest` check of one run.

    It fails with ERROR (blocking) when a succeeded episode's results are not stored as recorded, and
    with WARN when episodes of the batch failed or have an attempt to retry: the round is degraded,
    and the UI says so.
    """

    def __init__(self) -> None:
        self.rows: list[list[Any]] = []

    def add(self, episode: EpisodeView) -> None:
        ok, why = check_episode_results(episode)
        word = {True: "valid", False: "INVALID", None: "FAILED" if episode.status == "failed" else "skipped"}[
            ok
        ]
        self.rows.append([episode.key or episode.id, word, why])

    def add_retry(self, episode: EpisodeView) -> None:
        error = last_attempt_error(episode)
        why = f"attempt {episode.attempts} failed ({error.get('error_type') or 'unknown'}): retried"
        self.rows.append([episode.key or episode.id, "RETRY", why])

    def count(self, word: str) -> int:
        return sum(1 for r in self.rows if r[1] == word)

    def result(self) -> dg.AssetCheckResult:
        invalid, failed, retried = self.count("INVALID"), self.count("FAILED"), self.count("RETRY")
        return dg.AssetCheckResult(
            check_name=RESULTS_CHECK,
            passed=invalid == 0 and failed == 0 and retried == 0,
            severity=dg.AssetCheckSeverity.ERROR if invalid else dg.AssetCheckSeverity.WARN,
            metadata={
                "checked": self.count("valid") + invalid,
                "invalid": invalid,
                "failed_episodes": failed,
                "retried_attempts": retried,
                "skipped_not_played": self.count("skipped"),
                "episodes": dg.MetadataValue.md(md_table(["episode", "results", "detail"], self.rows)),
            },
        )


def failure_line(episode: EpisodeView) -> str:
    error = episode.error or {}
    slot = error.get("slot")
    where = f", slot {slot}" if slot is not None else ""
    return (
        f"{episode.key or episode.id}: {episode.status} — {error.get('error_type') or 'unknown error'} "
        f"(blame {error.get('blame') or 'unknown'}{where}): {str(error.get('message') or '')[:300]}"
    )


def last_attempt_error(episode: EpisodeView) -> dict[str, Any]:
    """The error of the episode's last attempt (an episode back in pending keeps none of its own)."""
    return (episode.attempt_errors or ({},))[-1] or {}


def retry_line(episode: EpisodeView) -> str:
    """`league.rN.e3: attempt 1 failed — game_crashed (blame game): ...; it will be retried`."""
    error = last_attempt_error(episode)
    return (
        f"{episode.key or episode.id}: attempt {episode.attempts} failed — "
        f"{error.get('error_type') or 'unknown error'} (blame {error.get('blame') or 'unknown'}): "
        f"{str(error.get('message') or '')[:300]}; it will be retried (not rated, nobody charged)"
    )


def _log_unfinished(
    context: dg.AssetExecutionContext,
    played: Played,
    key: str,
    errors: dict[str, str],
    retried: list[EpisodeView],
) -> None:
    if played.platform_error:
        errors[key] = played.platform_error
        context.log.error(f"{key}: platform error: {played.platform_error}")
    elif played.episode is None:
        context.log.info(f"{key} is {played.status}: not played again")
    else:  # its attempt failed (infrastructure): back to pending, a later run plays it again
        retried.append(played.episode)
        context.log.error(retry_line(played.episode))


@dg.asset(
    partitions_def=episode_partitions,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=SETTINGS.episodes_per_run),
    pool=EPISODE_POOL,
    group_name=GROUP,
    kinds={"python"},
    output_required=False,  # materializations are logged per episode as each one finishes
    check_specs=[
        dg.AssetCheckSpec(
            RESULTS_CHECK,
            asset="episodes",
            blocking=True,
            description="Every succeeded episode's results.json (validated once against the coworld "
            "manifest by the runtime: results_schema, one numeric score per slot) is in the artifact "
            "store, and the league recorded one score per seat.",
        )
    ],
    description="One partition per episode request. A run plays its partitions (K at most) "
    "concurrently through the episode runtime and stores their artifacts.",
)
def episodes(
    context: dg.AssetExecutionContext,
    league: LeagueResource,
    episode_runtime: EpisodeRuntimeResource,
    artifacts: ArtifactStoreResource,
) -> Iterator[dg.AssetMaterialization | dg.AssetObservation | dg.AssetCheckResult]:
    context.instance.add_run_tags(context.run.run_id, worker_tag())  # lets the sensor spot a vanished worker
    service = league.service()
    store = artifacts.store()
    player = episode_runtime.player(store)
    parallelism = run_parallelism(context.run.tags, episode_runtime.parallelism)
    keys = list(context.partition_keys)
    # Partition keys are readable (`league.rN.eM`, or `ereq_…` from before); the league plays raw ids.
    raw_of = service.episode_ids(keys)
    key_of = {raw: key for key, raw in raw_of.items()}
    context.log.info(
        f"{len(keys)} episode(s), {parallelism} at a time, runtime {player.runtime_name}, {store!r}"
    )

    check, errors, rounds = ResultsCheck(), {}, set()
    failed: list[EpisodeView] = []
    retried: list[EpisodeView] = []  # attempts that failed and go back to pending
    # One materialization per succeeded episode, logged as soon as it is final. A failed episode gets
    # none: the run fails at the end, naming it, so its partition shows failed (red) with the reason.
    # If the run is terminated, the generator closes the batch: nothing new starts, what is playing
    # finishes and is recorded.
    for played in play_batch(service.store, player, [raw_of[k] for k in keys], parallelism):
        key = key_of.get(played.ereq_id, played.ereq_id)
        if played.episode is not None:
            rounds.add(played.episode.round_id)
        if played.episode is None or not played.final:
            _log_unfinished(context, played, key, errors, retried)
            if played.episode is not None and not played.platform_error:
                check.add_retry(played.episode)
            continue
        check.add(played.episode)
        if played.status != EpisodeStatus.SUCCEEDED:
            failed.append(played.episode)
            context.log.error(failure_line(played.episode))
            # The partition shows failed (the run fails below); this observation puts its typed error,
            # blame and logs on the partition's own page, where an operator looks first.
            yield dg.AssetObservation(
                asset_key=context.asset_key,
                partition=key,
                metadata=episode_metadata(played.episode, store),
            )
            continue
        context.log.info(f"{key}: {played.status} in {played.episode.wall_seconds or 0:.1f}s")
        yield dg.AssetMaterialization(
            asset_key=context.asset_key,
            partition=key,
            metadata=episode_metadata(played.episode, store),
        )

    # Feed the results back right away, so a round closes without waiting for the next sensor tick;
    # the run that closes it also logs its round_results and standings (closing.py): the standings are
    # up a moment after the last episode, not two runs later.
    for round_id in sorted(rounds):
        progress = service.advance_round(round_id)
        context.log.info(f"{round_id}: {progress.status} {progress.counts}")
        if progress.closed_now:
            yield from closed_round_materializations(context.instance, service, store, round_id)
    yield check.result()
    # A run with any episode not played to success fails, so it never shows green: a failed episode's
    # partition stays failed; a retried one's until a later run plays it to success.
    if failed or errors or retried:
        raise dg.Failure(
            "; ".join(
                [f"{len(failed)} episode(s) failed (not rated)"] * bool(failed)
                + [f"{len(retried)} attempt(s) failed and will be retried"] * bool(retried)
                + [f"{len(errors)} hit a platform error (the commissioner requeues them)"] * bool(errors)
            ),
            metadata={
                "failed_episodes": dg.MetadataValue.md(
                    "\n".join(f"- {md_text(failure_line(e))}" for e in failed)
                ),
                "retried_episodes": dg.MetadataValue.md(
                    "\n".join(f"- {md_text(retry_line(e))}" for e in retried)
                ),
                "error_types": dg.MetadataValue.json({e.key or e.id: e.error_type for e in failed}),
                "platform_errors": dg.MetadataValue.json(errors),
            },
        )


@dg.asset(
    partitions_def=round_partitions,
    deps=[dg.AssetDep("episodes", partition_mapping=dg.AllPartitionMapping())],  # lineage: its episodes
    group_name=GROUP,
    kinds={"python"},
    description="One partition per round: the commissioner's rankings once the round has closed.",
)
def round_results(context: dg.AssetExecutionContext, league: LeagueResource) -> dg.MaterializeResult:
    info = league.service().round(context.partition_key)
    return dg.MaterializeResult(metadata=round_metadata(info))


@dg.asset(
    partitions_def=league_partitions,
    deps=[dg.AssetDep("episodes", partition_mapping=dg.AllPartitionMapping())],  # lineage: its episodes
    group_name=GROUP,
    kinds={"python"},
    description="One partition per league (its name): an overview (the current round's progress, "
    "failed episodes and quarantined entrants with their reasons, the next round's time), the "
    "standings table per division (openskill, ranked by mu - 3 sigma), and the best-graded episodes "
    "of recent rounds when the league grades its episodes.",
)
def standings(
    context: dg.AssetExecutionContext, league: LeagueResource, artifacts: ArtifactStoreResource
) -> dg.MaterializeResult:
    metadata = league_standings_metadata(league.service(), artifacts.store(), context.partition_key)
    return dg.MaterializeResult(metadata=metadata)
