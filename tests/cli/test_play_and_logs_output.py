"""Where the CLI prints what: `play` links on stdout, and `episode-logs` saying why a player failed."""

from __future__ import annotations

import os
import re
from pathlib import Path

from coworld_pipeline.league.service import LeagueService
from tests.conftest import make_testkit, run_cli
from tests.league.conftest import FAST, ORCHARD_MANIFEST


def test_play_prints_its_links_on_stdout_and_its_phases_on_stderr(tmp_path: Path) -> None:
    manifest = make_testkit(tmp_path)
    proc = run_cli(
        "play", str(manifest), "--runtime", "process", "--no-open-browser", "-o", str(tmp_path / "ws")
    )
    assert proc.returncode == 0, proc.stderr
    # One whole link per line (never wrapped), so `coworld play ... | grep global` finds it.
    players = re.findall(r"^player (\d): (http://\S+token=\S+)$", proc.stdout, re.M)
    assert [slot for slot, _ in players] == ["0", "1"], proc.stdout
    assert re.search(r"^global: +http://127\.0\.0\.1:\d+/client/global$", proc.stdout, re.M), proc.stdout
    assert re.search(r"^admin: +http://127\.0\.0\.1:\d+/client/admin$", proc.stdout, re.M), proc.stdout
    assert "/client/global" not in proc.stderr and "token=" not in proc.stderr
    assert "phase" in proc.stderr  # the live phase table stays on stderr


def test_episode_logs_of_a_crashed_player_print_its_log_and_the_failure_reason(tmp_path: Path) -> None:
    home = tmp_path / "home"
    db = f"sqlite:///{home / 'league.db'}"
    svc = LeagueService(db, home)
    try:
        svc.upload_coworld(ORCHARD_MANIFEST)
        svc.upload_policy("img", "greedy", run=["python", "-m", "orchard.players.greedy"])
        crash = "print('loading weights... out of luck', flush=True); import sys; sys.exit(3)"
        svc.upload_policy("img", "crasher", run=["python", "-c", crash])
        svc.create_league("logs", "orchard", variants=["duel"], config_overrides=FAST)
        for name in ("greedy", "crasher"):
            svc.submit(name, "logs")
        svc.run_round("logs", runtime_name="process")
        episodes = svc.episodes(league_ref="logs")
    finally:
        svc.close()
    episode = next(e for e in episodes if e.error_type == "player_crashed")
    slot = episode.error["slot"]
    env = {**os.environ, "COWORLD_HOME": str(home), "COWORLD_DATABASE_URL": db}
    crashed = run_cli("episode-logs", episode.id, "--agent", str(slot), env=env)
    assert crashed.returncode == 0, crashed.stderr
    assert "loading weights... out of luck" in crashed.stdout  # the log itself, as it is
    reason = " ".join(crashed.stderr.split())
    assert f"episode error: player_crashed (slot {slot}):" in reason, crashed.stderr
    assert "exited with code 3" in reason or "code 3" in reason, crashed.stderr
    assert "[blame: player]" in reason
    game = run_cli("episode-logs", episode.id, "--game", env=env)
    assert game.returncode == 0 and "episode error: player_crashed" in game.stderr


def test_episode_logs_reach_earlier_attempts_and_explain_a_never_played_episode(tmp_path: Path):
    """Each attempt's logs stay reachable (`--attempt N`; the listing says there are others), and an
    episode that never played says why it has no logs (exit 2), instead of printing nothing."""
    from coworld_pipeline.runtime.errors import EpisodeFailure, ErrorType
    from tests.league.conftest import FakeOutcome, orchard_league

    home = tmp_path / "home"
    svc = LeagueService(home=home)
    orchard_league(svc, "L", players=("random", "greedy", "planner"))
    attempt = iter(range(1, 10))

    def runner(request, workspace, secrets):
        (workspace / "logs").mkdir(parents=True, exist_ok=True)
        (workspace / "logs" / "game.stdout.log").write_text(f"game log of attempt {next(attempt)}\n")
        return FakeOutcome(workspace, error=EpisodeFailure(ErrorType.GAME_CRASHED, "the game exited"))

    round_id = svc.open_round(svc.resolve_league_id("L")).round_id
    first, *rest = svc.pending_episodes(round_id)
    for _ in range(3):  # one try and two retries, each an infrastructure failure
        svc.execute_episode(first, episode_runner=runner)
    svc.cancel_round(round_id)
    played, never = svc.episode(first), svc.episode(rest[0])
    svc.close()
    assert played.attempts == 3 and never.attempts == 0 and never.status == "cancelled"
    env = {**os.environ, "COWORLD_HOME": str(home)}

    listing = run_cli("episode-logs", played.key, env=env)
    assert listing.returncode == 0, listing.stderr
    assert "/previous_attempts/" not in listing.stdout
    assert "attempt 3 of 3" in listing.stdout and "--attempt N" in listing.stdout
    for n in (1, 2, 3):
        log = run_cli("episode-logs", played.key, "--attempt", str(n), "--game", env=env)
        assert log.returncode == 0, log.stderr
        assert f"game log of attempt {n}" in log.stdout
        assert "episode error: game_crashed" in log.stderr
    beyond = run_cli("episode-logs", played.key, "--attempt", "4", env=env)
    assert beyond.returncode == 2 and "has 3 attempt(s): --attempt 1-3" in beyond.stderr

    nothing = run_cli("episode-logs", never.key, env=env)
    assert nothing.returncode == 2, nothing
    assert f"{never.key} has no logs: it was never played (cancelled" in " ".join(nothing.stderr.split())


def test_piped_episode_logs_are_byte_for_byte(tmp_path: Path):
    """Redirected, a log is what the runnable wrote: BEL, CR and escape sequences included (Rich
    would drop some of them); `docker logs` does the same."""
    import subprocess

    from coworld_pipeline.runtime.errors import EpisodeFailure, ErrorType
    from tests.conftest import COWORLD
    from tests.league.conftest import FakeOutcome, orchard_league

    raw = b"bell\x07 cr\r\n esc\x1b[2J back\x08 nul\x00 \xff end"
    home = tmp_path / "home"
    svc = LeagueService(home=home)
    orchard_league(svc, "L", players=("random", "greedy"), failure_policy={"infra_retries": 0})

    def runner(request, workspace, secrets):
        (workspace / "logs").mkdir(parents=True, exist_ok=True)
        (workspace / "logs" / "policy_agent_1.log").write_bytes(raw)
        return FakeOutcome(workspace, error=EpisodeFailure(ErrorType.GAME_CRASHED, "the game exited"))

    first = svc.pending_episodes(svc.open_round(svc.resolve_league_id("L")).round_id)[0]
    svc.execute_episode(first, episode_runner=runner)
    key = svc.episode(first).key
    svc.close()
    proc = subprocess.run(
        [*COWORLD, "episode-logs", key, "--agent", "1"],
        capture_output=True,
        timeout=60,
        env={**os.environ, "COWORLD_HOME": str(home)},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == raw + b"\n"
