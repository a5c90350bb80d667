"""Archiving old episode partitions: the `episodes` asset keeps at most ~100k dynamic partitions.

Every dynamic partition key is loaded by each sensor tick (`KeyOrder`) and by the UI's partition
views, so their number cannot grow forever. Above `COWORLD_ARCHIVE_PARTITIONS_ABOVE` (default
100,000) keys, the commissioner sensor deletes the oldest keys, at most `ARCHIVE_PER_TICK` per tick,
and only keys of rounds that are closed, have no episode run in flight and whose missing
materializations were already reported (`swept`, or older than the rounds the sensor sweeps).

Nothing of an episode's history is lost:
* the league database keeps every episode, attempt, score and artifact path (`coworld episodes`,
  `coworld episode`, `coworld results`), as it does for every round;
* Dagster keeps the materialization events of a deleted partition key: the asset's event history,
  `fetch_materializations(... asset_partitions=[key])` and the runs that played it still show them;
* a `partitions_archived` league event per round records which keys were archived (the keys and
  their count), so `coworld events` tells why a partition is no longer in the UI's partition bar.

Once a round is closed and idle, the keys of its episodes that were cancelled before any attempt
(`remove_never_played_partitions`) are removed as well, whatever the count: Dagster marks every
partition of a failed run that it did not materialize as failed, so an episode cancelled while its
batch played (its entrant was quarantined, the round failed) would show red, as if it had been played
and failed. It never was, and never will be; `coworld episodes --status cancelled` lists it with its
reason, and the same league event records the removal.
"""

from __future__ import annotations

from collections.abc import Callable, Container

import dagster as dg

from coworld_pipeline.defs.league.partitions import episode_partitions
from coworld_pipeline.defs.league.requests import round_episode_runs_in_flight
from coworld_pipeline.defs.league.settings import whole_number
from coworld_pipeline.league.errors import LeagueError
from coworld_pipeline.league.readable import parse_round
from coworld_pipeline.league.service import LeagueService
from coworld_pipeline.league.status import RoundStatus

ARCHIVE_PER_TICK = 500  # deletes are one statement each: bounded so that a tick stays short


def archive_threshold() -> int:
    return whole_number("COWORLD_ARCHIVE_PARTITIONS_ABOVE")


def archive_old_episode_partitions(
    instance: dg.DagsterInstance,
    service: LeagueService,
    keys: list[str],
    may_archive_round: Callable[[str], bool],
    above: int | None = None,
    per_tick: int = ARCHIVE_PER_TICK,
) -> dict[str, int]:
    """Delete the oldest episode partition keys beyond `above`; returns {round key: keys archived}.

    `keys` are the partition keys in the order they were added (oldest first). Stops at the first key
    whose round may not be archived yet, so the keys that remain are always a suffix of that order and
    the partition ranges of runs still in flight stay resolvable.
    """
    above = archive_threshold() if above is None else above
    excess = len(keys) - above
    if excess <= 0:
        return {}
    by_round: dict[str, list[str]] = {}
    allowed: dict[str, bool] = {}
    for key in keys[: min(excess, per_tick)]:
        round_ref = _round_of(service, key)
        if round_ref is None:
            break
        if round_ref not in allowed:
            allowed[round_ref] = _closed_and_idle(instance, service, round_ref, may_archive_round)
        if not allowed[round_ref]:
            break
        by_round.setdefault(round_ref, []).append(key)
    for round_ref, round_keys in by_round.items():
        for key in round_keys:
            instance.delete_dynamic_partition(episode_partitions.name, key)
        service.partitions_archived(
            round_ref,
            round_keys,
            f"more than {above:,} episode partitions (COWORLD_ARCHIVE_PARTITIONS_ABOVE)",
        )
    return {round_ref: len(round_keys) for round_ref, round_keys in by_round.items()}


def _round_of(service: LeagueService, key: str) -> str | None:
    """The round of an episode partition key: `league.rN` of a readable `league.rN.eM`, else looked up."""
    head, _, tail = key.rpartition(".")
    if head and tail.startswith("e") and tail[1:].isdigit() and parse_round(head) is not None:
        return head
    try:
        return service.episode(key).round_id
    except LeagueError:
        return None  # not an episode of this league database: leave it alone


def _closed_and_idle(
    instance: dg.DagsterInstance,
    service: LeagueService,
    round_ref: str,
    may_archive_round: Callable[[str], bool],
) -> bool:
    try:
        rnd = service.round(round_ref)
    except (LeagueError, IndexError):
        return False
    if rnd.status == RoundStatus.RUNNING or not may_archive_round(rnd.id):
        return False
    return not round_episode_runs_in_flight(instance, rnd.id)


def remove_never_played_partitions(
    instance: dg.DagsterInstance, service: LeagueService, round_id: str, keys: Container[str]
) -> list[str]:
    """Delete the partition keys (of `keys`, the existing ones) of this closed round's episodes that
    were cancelled before any attempt; returns them. The caller checked that no run of the round is
    in flight. A key of another round is never touched, so no in-flight range changes (a run's range
    only spans one round's adjacent keys: planning.py)."""
    never = [
        e.key if e.key in keys else e.id
        for e in service.episodes(round_ref=round_id, status="cancelled", limit=100_000)
        if e.attempts == 0 and (e.key in keys or e.id in keys)
    ]
    for key in never:
        instance.delete_dynamic_partition(episode_partitions.name, key)
    if never:
        service.partitions_archived(
            round_id, never, "cancelled before they were played (never played: not failed)"
        )
    return never
