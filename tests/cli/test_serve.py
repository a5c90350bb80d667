"""`coworld serve` on a real league: replays started on demand and stopped when idle, live games, 404s.

One Orchard league is played once for the module (SQLite, process runtime): `greedy`, a random player
whose name is HTML markup, and a player that crashes at once (its episodes fail, with no replay).
`coworld serve` runs as a real process on its own port; the browser side is plain HTTP.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from coworld_pipeline.league.service import LeagueService
from coworld_pipeline.league.views import EpisodeView
from tests.conftest import COWORLD, REPO, wait_for
from tests.defs.helpers import orchard_processes, with_group_kill
from tests.league.conftest import FAST, ORCHARD_MANIFEST

MARKUP_NAME = "<b>bold</b>&<script>alert(1)</script>"
PLAYERS = {
    "greedy": ["python", "-m", "orchard.players.greedy"],
    MARKUP_NAME: ["python", "-m", "orchard.players.random"],
    "crasher": ["python", "-c", "import sys; sys.exit(3)"],
}
SERVE_PORTS = iter(range(18320, 18330))


@dataclass
class League:
    home: Path
    db: str
    env: dict[str, str]


@pytest.fixture(scope="module")
def league(tmp_path_factory: pytest.TempPathFactory) -> League:
    home = tmp_path_factory.mktemp("serve-league")
    db = f"sqlite:///{home / 'league.db'}"
    svc = LeagueService(db, home)
    try:
        svc.upload_coworld(ORCHARD_MANIFEST)
        for name, run in PLAYERS.items():
            svc.upload_policy("coworld/orchard:0.1.0", name, run=run)
        svc.create_league("served", "orchard", variants=["duel"], config_overrides={**FAST, "max_ticks": 20})
        for name in PLAYERS:
            svc.submit(name, "served")
        svc.run_round("served", runtime_name="process")
    finally:
        svc.close()
    env = {**os.environ, "COWORLD_HOME": str(home), "COWORLD_DATABASE_URL": db, "PYTHONUNBUFFERED": "1"}
    return League(home, db, env)


class Serve:
    """A `coworld serve` process on a port of this test module's range."""

    def __init__(self, league: League, *args: str):
        self.port = next(SERVE_PORTS)
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = (league.home / f"serve-{self.port}.log").open("wb")
        self.proc = subprocess.Popen(
            [*COWORLD, "serve", "--port", str(self.port), "--runtime", "process", *args],
            cwd=REPO,
            env=league.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(self._up, 60, "coworld serve to answer", interval=0.2)

    def _up(self) -> bool:
        assert self.proc.poll() is None, "coworld serve exited"
        return httpx.get(self.base + "/", timeout=2).status_code == 200

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.base + path, timeout=120, follow_redirects=False)

    def replay_servers(self) -> list[tuple[int, str]]:
        return orchard_processes(self.proc.pid)

    def stop(self) -> None:
        with_group_kill(self.proc)
        self.log.close()


@pytest.fixture
def serve(league: League) -> Iterator[Serve]:
    server = Serve(league, "--idle-seconds", "1")
    yield server
    server.stop()


def episodes(league: League, **filters: str) -> list[EpisodeView]:
    svc = LeagueService(league.db, league.home)
    try:
        return svc.episodes(league_ref="served", **filters)
    finally:
        svc.close()


def test_replay_redirects_to_the_games_viewer_and_stops_when_idle(league: League, serve: Serve) -> None:
    played = [e for e in episodes(league, status="succeeded") if e.replay_path]
    assert played, episodes(league)
    episode_id = played[0].id
    response = serve.get(f"/replay/{quote(episode_id)}")
    assert response.status_code == 302, response.text
    viewer = response.headers["location"]
    page = httpx.get(viewer, timeout=30)
    assert page.status_code == 200 and "<title>Orchard - replay</title>" in page.text
    assert serve.replay_servers(), "the replay server runs under coworld serve"
    # A second request reuses the running server (same viewer URL, no second process).
    assert serve.get(f"/replay/{quote(episode_id)}").headers["location"] == viewer
    assert len(serve.replay_servers()) == 1
    # Nobody is connected any more: after --idle-seconds 1 the replay server is stopped.
    wait_for(lambda: not serve.replay_servers(), 30, "the idle replay server to stop", interval=0.2)
    with pytest.raises(httpx.TransportError):
        httpx.get(viewer, timeout=5)
    # Asked again (by its readable key this time), it starts again.
    again = serve.get(f"/replay/{quote(played[0].key)}")
    assert again.status_code == 302
    assert httpx.get(again.headers["location"], timeout=30).status_code == 200


def test_failed_episode_answers_404_with_its_reason(league: League, serve: Serve) -> None:
    failed = [e for e in episodes(league, status="failed") if not e.replay_path]
    assert failed, episodes(league)
    episode_id = failed[0].id
    for route in ("replay", "live"):
        response = serve.get(f"/{route}/{quote(episode_id)}")
        assert response.status_code == 404, response.text
        # Named as the operator knows it (`league.rN.eM`), whether opened by id or by that key.
        assert f"Episode {failed[0].key} failed (player_crashed" in response.text, response.text
        assert response.text == serve.get(f"/{route}/{quote(failed[0].key)}").text
        assert "None" not in response.text
    assert not serve.replay_servers()
    unknown = serve.get("/replay/ereq_00000000-0000-0000-0000-000000000000")
    assert unknown.status_code == 404 and "unknown episode" in unknown.text.lower(), unknown.text
    # Numbers no row can hold (int() refuses 5000 digits; SQLite overflows past 2**63) name nothing.
    for key in (f"served.r{'9' * 30}.e1", f"served.r1.e{'9' * 5000}"):
        assert serve.get(f"/replay/{key}").status_code == 404, key[:40]
    assert serve.get("/nowhere").status_code == 404


def test_index_escapes_names_and_links_replays(league: League, serve: Serve) -> None:
    page = serve.get("/")
    assert page.status_code == 200
    assert MARKUP_NAME not in page.text and "<script>" not in page.text
    assert "&lt;b&gt;bold&lt;/b&gt;&amp;&lt;script&gt;" in page.text
    assert "None" not in page.text
    played = [e for e in episodes(league, status="succeeded") if e.replay_path]
    assert f"href='/replay/{quote(played[0].id, safe='')}'" in page.text


def test_live_redirects_to_the_global_viewer_while_the_episode_plays(league: League, serve: Serve) -> None:
    """A slow duel (8 s: ticks at 10/s) played in the background: /live finds its global viewer."""
    svc = LeagueService(league.db, league.home)
    svc.create_league(
        "live",
        "orchard",
        variants=["duel"],
        config_overrides={**FAST, "max_ticks": 80, "tick_rate": 10},
        commissioner_config={"episodes_per_pair": 1},
    )
    for name in ("greedy", MARKUP_NAME):
        svc.submit(name, "live")
    player = threading.Thread(target=svc.run_round, args=("live",), kwargs={"runtime_name": "process"})
    player.start()
    try:
        running = wait_for(
            lambda: svc.episodes(league_ref="live", status="running"), 60, "the live episode to start", 0.2
        )
        episode_id = running[0].id
        response = wait_for(
            lambda: (r := serve.get(f"/live/{quote(episode_id)}")).status_code == 302 and r,
            60,
            "the live viewer URL",
            interval=0.2,
        )
        page = httpx.get(response.headers["location"], timeout=30)
        assert page.status_code == 200 and "<title>Orchard - live viewer</title>" in page.text
    finally:
        player.join(timeout=120)
        svc.close()
    # Once it has ended, /live leads to its replay.
    ended = serve.get(f"/live/{quote(episode_id)}")
    assert ended.status_code == 302 and ended.headers["location"] == f"/replay/{quote(episode_id, safe='')}"


def test_bad_port_is_a_usage_error(league: League) -> None:
    proc = subprocess.run(
        [*COWORLD, "serve", "--port", "0"], capture_output=True, text=True, env=league.env, timeout=60
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
