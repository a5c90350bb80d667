"""A policy that connects and never acts is charged for it: Orchard names its slot, the league blames it.

Without the game's per-move deadline such a player stalls a tick_rate-0 Orchard episode (each turn
waits `turn_timeout_seconds` for it) until the league's episode timeout, which is `game_timeout`:
the game's fault, retried as infrastructure, never charged to the policy. Real Orchard game and
players on the process runtime, a real SQLite league.
"""

from __future__ import annotations

from pathlib import Path

from coworld_pipeline.league.service import LeagueService
from tests.league.conftest import by_label, orchard_league

# Connects, reads every observation, answers none (and exits when the game says the episode is over).
SILENT = r"""
import json, os
from websockets.sync.client import connect
with connect(os.environ["COWORLD_PLAYER_WS_URL"], max_size=None) as ws:
    for raw in ws:
        message = json.loads(raw)
        print("got", message.get("type"), "tick", message.get("tick"), flush=True)
        if message.get("type") == "final":
            break
"""


def test_silent_policy_is_blamed_charged_and_never_counted_as_played(tmp_path: Path, home: Path) -> None:
    svc = LeagueService(f"sqlite:///{tmp_path / 'league.db'}", home)
    try:
        orchard_league(
            svc,
            "L",
            players=("random", "greedy"),
            # 30 s per turn and 30 ticks: only the 2 s silence deadline ends these episodes in time.
            overrides={"turn_timeout_seconds": 30, "silent_player_timeout_seconds": 2},
            failure_policy={"quarantine_after": 2, "episode_timeout_seconds": 120},
        )
        svc.upload_policy("img", "silent", run=["python", "-c", SILENT])
        svc.submit("silent", "L")
        run = svc.run_round("L", parallel=1)  # one at a time: quarantine lands before the next
        assert run.progress is not None and run.progress.status == "completed"

        silent_id = svc.memberships("L", policy_ref="silent")[0].policy_version.id
        with_silent = [e for e in svc.episodes(league_ref="L") if silent_id in e.policy_version_ids]
        failed = [e for e in with_silent if e.status == "failed"]
        assert len(failed) == 2, [(e.status, e.error) for e in with_silent]
        assert {e.status for e in with_silent} <= {"failed", "cancelled"}  # the rest cancelled
        for episode in failed:
            assert episode.attempts == 1, "a player's fault is not retried as infrastructure"
            error = episode.error or {}
            slot = episode.policy_version_ids.index(silent_id)
            assert error["blame"] == "player" and error["slot"] == slot, error
            assert error["error_type"] == "player_error", "the game's judgement, not game_timeout"
            assert f"slot {slot} connected but sent no action for 2 s" in error["message"], error
            log = Path(episode.workspace) / "logs" / f"policy_agent_{slot}.log"
            assert "got observation" in log.read_text(), "it did connect and observe"
            assert not (Path(episode.workspace) / "results.json").exists()

        member = svc.memberships("L", policy_ref="silent")[0]
        assert member.status == "quarantined" and member.consecutive_failures == 2
        assert "2 consecutive player failures" in str(member.status_reason)
        assert sorted(member.failure_episode_ids) == sorted(e.id for e in failed)
        (quarantine,) = svc.events("L", event_type="policy_quarantined")
        assert {f["ereq_id"] for f in quarantine.payload["failing_episodes"]} == {e.id for e in failed}

        table = by_label(svc, "L")
        assert table["silent:v1"].episodes == 0 and table["silent:v1"].mu == 25.0  # never played
        assert table["silent:v1"].section == "inactive"
        others = [e for e in svc.episodes(league_ref="L") if silent_id not in e.policy_version_ids]
        assert others and {e.status for e in others} == {"succeeded"}
        assert table["random:v1"].episodes == table["greedy:v1"].episodes == len(others)
        for label in ("random:v1", "greedy:v1"):  # nobody else was charged
            assert svc.memberships("L", policy_ref=label.split(":")[0])[0].consecutive_failures == 0
    finally:
        svc.close()
