"""Where an episode being played can be watched: its game's live global viewer URL.

The runtime knows the URL once the game is up (`EpisodeOptions.on_game_ready`); `record_live_url`
keeps it as an `episode_live` event of that attempt (one small write per episode, nothing else
changes), and `live_url` reads it back for `coworld serve`'s `/live/<episode>` while the attempt
still runs.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from coworld_pipeline.league import ids
from coworld_pipeline.league.models import EpisodeRequestRow, Event
from coworld_pipeline.league.status import EpisodeStatus
from coworld_pipeline.league.unit import Store, record_event

LIVE_EVENT = "episode_live"


def record_live_url(store: Store, ereq_id: str, attempt: int, global_url: str) -> None:
    """Note the live viewer of this attempt (ignored when the attempt is no longer the running one)."""
    raw = ids.raw_id("ereq", ereq_id)

    def fn(s: Session) -> None:
        e = s.get(EpisodeRequestRow, raw)
        if e is None or e.status != EpisodeStatus.RUNNING or e.attempt != attempt:
            return
        record_event(
            s,
            LIVE_EVENT,
            f"episode {ids.public('ereq', raw)} is being played (attempt {attempt})",
            league_id=e.league_id,
            round_id=e.round_id,
            ereq_id=raw,
            attempt=attempt,
            global_url=global_url,
        )

    store.write(fn)


def live_url(store: Store, ereq_id: str) -> str | None:
    """The live viewer URL of the episode's running attempt; None when it is not being played."""
    raw = ids.raw_id("ereq", ereq_id)

    def fn(s: Session) -> str | None:
        e = s.get(EpisodeRequestRow, raw)
        if e is None or e.status != EpisodeStatus.RUNNING:
            return None
        event = s.execute(
            select(Event)
            .where(Event.ereq_id == raw, Event.event_type == LIVE_EVENT)
            .order_by(Event.id.desc())
            .limit(1)
        ).scalar_one_or_none()
        if event is None or (event.payload or {}).get("attempt") != e.attempt:
            return None
        return str(event.payload.get("global_url") or "") or None

    return store.read(fn)
