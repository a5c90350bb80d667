"""Claims: which pending episodes there are, taking one (claim-and-prepare, one transaction), and
putting back the ones whose runner died (requeue, as an `interrupted` attempt).

A claim is the conditional update `pending → running, attempt + 1`: of several runners asking at
once exactly one gets the episode, and only its outcome (that attempt) will be recorded.

A claim is a lease: `claimed_at` is when its runner last renewed it (`renew_leases`, every
`LEASE_RENEW_SECONDS` while the episode plays). Any runner — a CLI round, the Dagster sensor —
requeues the episodes whose lease lapsed (`requeue_stale(LEASE_SECONDS)`), so a runner killed with
SIGKILL delays its episodes by about a lease, never forever, and never gets them counted twice.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from coworld_pipeline.contract import CoworldManifest, EpisodeRequest, PlayerSpec, parse_manifest
from coworld_pipeline.league import ids, resolve
from coworld_pipeline.league.errors import LeagueError
from coworld_pipeline.league.handoff import PreparedEpisode
from coworld_pipeline.league.models import (
    CoworldVersion,
    EpisodeRequestRow,
    League,
    PolicyVersion,
    Round,
    utcnow,
)
from coworld_pipeline.league.status import EpisodeStatus
from coworld_pipeline.league.unit import Store, lock_league
from coworld_pipeline.league.verdicts import record_failure
from coworld_pipeline.runtime.errors import EpisodeFailure, ErrorType


def _lease_seconds() -> float:
    raw = os.environ.get("COWORLD_LEASE_SECONDS", "").strip()
    try:
        seconds = float(raw) if raw else 45.0
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:  # a lease of 0, -1, nan or inf would requeue all or nothing
        raise LeagueError(f"COWORLD_LEASE_SECONDS must be a positive number of seconds, not {raw[:40]!r}")
    return seconds


LEASE_SECONDS = _lease_seconds()  # a claim not renewed for this long is lost: its episode is requeued
LEASE_RENEW_SECONDS = LEASE_SECONDS / 4


def pending_episodes(store: Store, round_id: str) -> list[str]:
    """Raw ids of the round's pending episodes, in scheduling order."""
    raw = ids.raw_id("round", round_id)
    return store.read(
        lambda s: list(
            s.execute(
                select(EpisodeRequestRow.id)
                .where(EpisodeRequestRow.round_id == raw, EpisodeRequestRow.status == EpisodeStatus.PENDING)
                .order_by(EpisodeRequestRow.created_at, EpisodeRequestRow.id)
            ).scalars()
        )
    )


class _ManifestCache:
    """Parsed manifests of the coworld versions this process claimed episodes of.

    A coworld version never changes (its id and content hash name one manifest), and validating it
    was half of each claim's time; the parsed model is only read afterwards, so claims share it.
    """

    SIZE = 32

    def __init__(self) -> None:
        self._parsed: OrderedDict[tuple[str, str], CoworldManifest] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, cw: CoworldVersion) -> CoworldManifest:
        key = (cw.id, cw.content_hash)
        with self._lock:
            if key in self._parsed:
                self._parsed.move_to_end(key)
                return self._parsed[key]
        manifest = parse_manifest(cw.manifest, source=f"coworld {cw.name}:{cw.version}")
        with self._lock:
            self._parsed[key] = manifest
            while len(self._parsed) > self.SIZE:
                self._parsed.popitem(last=False)
        return manifest


_MANIFESTS = _ManifestCache()


def _request(
    store: Store, s: Session, e: EpisodeRequestRow, league: League, cw: CoworldVersion
) -> tuple[EpisodeRequest, dict[int, dict[str, str]]]:
    manifest = _MANIFESTS.get(cw)
    pvs = {
        pv.id: pv
        for pv in s.execute(
            select(PolicyVersion).where(PolicyVersion.id.in_(set(e.policy_version_ids)))
        ).scalars()
    }
    labels = resolve.labels(s, list(pvs))
    players, secrets = [], {}
    for slot, pv_id in enumerate(e.policy_version_ids):
        pv = pvs[pv_id]
        players.append(PlayerSpec(image=pv.image, run=list(pv.run), env=dict(pv.env)))
        if pv.secret_env_encrypted:
            secrets[slot] = store.box.decrypt(pv.secret_env_encrypted)
    tags = {
        "league_id": ids.public("league", league.id),
        "round_id": ids.public("round", e.round_id),
        "episode_request_id": ids.public("ereq", e.id),
        **{k: str(v) for k, v in (e.tags or {}).items()},
    }
    request = EpisodeRequest(
        manifest=manifest,
        game_config=dict(e.game_config),
        players=players,
        episode_tags=tags,
        policy_names=[labels[p] for p in e.policy_version_ids],
    )
    return request, secrets


def claim_and_prepare(
    store: Store, ereq_id: str, played_by: dict[str, str] | None = None
) -> tuple[PreparedEpisode | None, str]:
    """Claim a pending episode and load all it needs, in one transaction.

    Returns (the prepared episode, "running"), or (None, its status) when it is not pending (another
    runner has it, or it is final): it must not be played. `played_by` (the claimant's worker and
    engine) is stored with the claim, so a lost attempt names who had it.
    """
    raw = ids.raw_id("ereq", ereq_id)

    def fn(s: Session) -> tuple[PreparedEpisode | None, str]:
        claimed = s.execute(
            update(EpisodeRequestRow)
            .where(EpisodeRequestRow.id == raw, EpisodeRequestRow.status == EpisodeStatus.PENDING)
            .values(
                status=EpisodeStatus.RUNNING,
                attempt=EpisodeRequestRow.attempt + 1,
                claimed_at=utcnow(),
                played_by=played_by,
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        e = resolve.episode(s, raw)
        if claimed != 1:
            return None, e.status
        s.refresh(e)
        league = s.get(League, e.league_id)
        cw = s.get(CoworldVersion, league.coworld_version_id)
        request, secrets = _request(store, s, e, league, cw)
        prepared = PreparedEpisode(
            ereq_id=e.id,
            attempt=e.attempt,
            request=request,
            workspace=store.episode_workspace(e.id),
            source_dir=cw.source_dir,
            timeout_seconds=float(league.failure_policy.get("episode_timeout_seconds", 600.0)),
            league_id=str(ids.public("league", league.id)),
            round_id=str(ids.public("round", e.round_id)),
            secrets=secrets,
        )
        return prepared, EpisodeStatus.RUNNING

    return store.write(fn)


def renew_leases(store: Store, held: dict[str, int]) -> list[str]:
    """Renew the leases of these claims (raw id -> attempt); returns the ids no longer held.

    A claim is held while the row is running at that attempt; a lost one (requeued because its lease
    lapsed, e.g. the runner stalled) is not renewed: that attempt's outcome will be ignored anyway.
    """
    if not held:
        return []

    def fn(s: Session) -> list[str]:
        now, lost = utcnow(), []
        for ereq_id, attempt in held.items():
            renewed = s.execute(
                update(EpisodeRequestRow)
                .where(
                    EpisodeRequestRow.id == ereq_id,
                    EpisodeRequestRow.status == EpisodeStatus.RUNNING,
                    EpisodeRequestRow.attempt == attempt,
                )
                .values(claimed_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount
            if renewed != 1:
                lost.append(ereq_id)
        return lost

    return store.write(fn)


def requeue_stale(store: Store, older_than_seconds: float = LEASE_SECONDS) -> list[str]:
    """Running rows whose lease was last renewed longer ago than this go back to pending (or fail when
    out of attempts).

    Recorded as an `interrupted` (infrastructure) failure of the current attempt: the retry budget
    applies, nothing is rated or charged. Returns raw ids.
    """
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    return _requeue(
        store,
        lambda e: e.claimed_at is not None and e.claimed_at < cutoff,
        lambda e: (
            f"worker lost: the lease of attempt {e.attempt}"
            + (f" (worker {e.played_by.get('worker')})" if e.played_by else "")
            + f" was not renewed for {older_than_seconds:g}s"
        ),
        [EpisodeRequestRow.claimed_at < cutoff],
    )


def requeue_episodes(store: Store, ereq_ids: list[str], reason: str) -> list[str]:
    """Put these `running` episodes (their worker is known dead) back to pending, like requeue_stale.

    Rows that are not running are left alone. Returns the public ids that were handled.
    """
    raw = [ids.raw_id("ereq", e) for e in ereq_ids]
    if not raw:
        return []
    done = _requeue(
        store, lambda e: True, lambda e: f"{reason} (attempt {e.attempt})", [EpisodeRequestRow.id.in_(raw)]
    )
    return [str(ids.public("ereq", e)) for e in done]


def _requeue(
    store: Store,
    still: Callable[[EpisodeRequestRow], bool],
    message: Callable[[EpisodeRequestRow], str],
    where: list[Any],
) -> list[str]:
    def fn(s: Session) -> list[str]:
        rows = s.execute(
            select(EpisodeRequestRow.id, EpisodeRequestRow.league_id).where(
                EpisodeRequestRow.status == EpisodeStatus.RUNNING, *where
            )
        ).all()
        out = []
        for league_id in sorted({lid for _, lid in rows}):
            league = lock_league(s, league_id)
            for eid, lid in rows:
                if lid != league_id:
                    continue
                e = s.get(EpisodeRequestRow, eid)
                s.refresh(e)
                if e.status != EpisodeStatus.RUNNING or not still(e):
                    continue
                failure = EpisodeFailure(ErrorType.INTERRUPTED, message(e))
                labels = resolve.labels(s, e.policy_version_ids)
                record_failure(s, league, s.get(Round, e.round_id), e, e.attempt, failure, labels)
                out.append(e.id)
        return out

    return store.write(fn)
