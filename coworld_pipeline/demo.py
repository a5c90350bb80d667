"""The demo league `dagster dev` brings up: orchard duels between its three bundled players.

`ensure_demo_league(service)` is idempotent and cheap once seeded (one read): it uploads
`examples/orchard/coworld_manifest.json`, the players `random`, `greedy` and `planner` (the manifest's
own image and argv, so the same policies run under the `process` and `docker` runtimes), creates the
league `orchard-demo` (round-robin over the `duel` variant, 6 games per pair, a round every minute),
submits them and opens the first round.
The commissioner sensor calls it on every tick when `COWORLD_DEMO=1`.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from coworld_pipeline.league import LeagueError, LeagueService
from coworld_pipeline.league.views import LeagueView

DEMO_LEAGUE = "orchard-demo"
DEMO_PLAYERS = ("random", "greedy", "planner")  # weakest to strongest
ORCHARD_MANIFEST = Path(__file__).resolve().parent.parent / "examples" / "orchard" / "coworld_manifest.json"

_seeded: set[tuple[str, str]] = set()
_lock = threading.Lock()


def ensure_demo_league(
    service: LeagueService,
    name: str = DEMO_LEAGUE,
    interval_minutes: float = 1.0,
    episodes_per_pair: int = 6,
    variant: str = "duel",
    manifest_path: Path = ORCHARD_MANIFEST,
    kick_off: bool = True,
) -> LeagueView | None:
    """Create the demo league with its three players if it does not exist; returns it (None: no orchard)."""
    key = (service.database_url, name)
    if key in _seeded:
        return None
    with _lock:
        existing = [lg for lg in service.leagues() if lg.name == name]
        if existing:
            _seeded.add(key)
            return existing[0]
        if not manifest_path.is_file():
            return None
        coworld = service.upload_coworld(manifest_path)
        manifest = json.loads(manifest_path.read_text())
        players = {p["id"]: p for p in manifest.get("player", [])}
        for player_id in DEMO_PLAYERS:
            spec = players[player_id]
            try:
                service.upload_policy(spec["image"], player_id, run=list(spec.get("run", [])))
            except LeagueError:
                pass  # identical runnable already uploaded
        try:
            league = service.create_league(
                name,
                f"{coworld.name}:{coworld.version}",
                variants=[variant],
                commissioner="round-robin",
                commissioner_config={"episodes_per_pair": episodes_per_pair},
                interval_minutes=interval_minutes,
            )
        except LeagueError:  # another process created it a moment ago
            league = next(lg for lg in service.leagues() if lg.name == name)
        for player_id in DEMO_PLAYERS:
            service.submit(player_id, league.id)
        if kick_off:  # the first round right away; the round schedule opens the next ones
            service.open_round(league.id, trigger="demo kick-off")
        _seeded.add(key)
        return league
