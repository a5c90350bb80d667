"""Where an episode being played can be watched: its game's live global viewer URL.

The runtime knows the URL once the game is up (`EpisodeOptions.on_game_ready`). It is kept as
`live.json` in the attempt's workspace rather than in the league database, so an episode still costs
the database exactly two writes (claim-and-prepare, record); `live_url` reads it back for `coworld
serve`'s `/live/<episode>` while that attempt is the running one (serve runs beside the runners, on
the host that holds the workspaces).
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy.orm import Session

from coworld_pipeline.league import ids
from coworld_pipeline.league.models import EpisodeRequestRow
from coworld_pipeline.league.status import EpisodeStatus
from coworld_pipeline.league.unit import Store
from coworld_pipeline.runtime.files import write_whole

LIVE_FILE = "live.json"


def record_live_url(workspace: Path, attempt: int, global_url: str) -> None:
    """Note the live viewer of this attempt, atomically (a reader never sees half a file)."""
    write_whole(workspace / LIVE_FILE, json.dumps({"attempt": attempt, "global_url": global_url}).encode())


def live_url(store: Store, ereq_id: str) -> str | None:
    """The live viewer URL of the episode's running attempt; None when it is not being played."""
    raw = ids.raw_id("ereq", ereq_id)

    def fn(s: Session) -> tuple[int, str] | None:
        e = s.get(EpisodeRequestRow, raw)
        if e is None or e.status != EpisodeStatus.RUNNING:
            return None
        return e.attempt, e.workspace or str(store.episode_workspace(raw))

    running = store.read(fn)
    if running is None:
        return None
    attempt, workspace = running
    try:
        data = json.loads((Path(workspace) / LIVE_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("attempt") != attempt:
        return None  # an earlier attempt's viewer is gone
    return str(data.get("global_url") or "") or None
