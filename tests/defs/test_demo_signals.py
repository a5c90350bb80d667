"""`make demo` stops on SIGTERM and on Ctrl-C within 10 s, leaves no process behind, and the round it
was playing is resumed (and completed) by the next start.

The real `make demo` (scripts/demo.sh: `dagster dev` and `coworld serve`) on its own ports, league
home and Dagster instance. Ctrl-C is what a terminal sends: SIGINT to the whole foreground process
group. SIGTERM is what `kill PID` sends: to `make` alone (make passes it on to its recipe).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from coworld_pipeline.league.service import LeagueService
from tests.conftest import REPO, wait_for
from tests.defs.dagster_dev import instance_yaml

pytestmark = pytest.mark.slow

DEMO_PORT, SERVE_PORT = 18310, 18311
STOP_LIMIT_SECONDS = 10.0


class Demo:
    """One `make demo` process (its own session), with its output in a log file."""

    def __init__(self, root: Path, run: int):
        self.root = root
        self.home = root / "coworld_home"
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "COWORLD_DATABASE_URL")},
            "COWORLD_HOME": str(self.home),
            "DEMO_DAGSTER_HOME": str(root / "dagster_home"),
            "DEMO_PORT": str(DEMO_PORT),
            "DEMO_SERVE_PORT": str(SERVE_PORT),
            "PYTHONUNBUFFERED": "1",
        }
        self.log_path = root / f"demo-{run}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            ["make", "--no-print-directory", "demo"],
            cwd=REPO,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        assert self.proc.poll() is None, f"make demo exited early:\n{self.log()[-4000:]}"
        return True

    def wait_ready(self) -> None:
        def up() -> bool:
            self.alive()
            ui = httpx.get(f"http://127.0.0.1:{DEMO_PORT}/server_info", timeout=2).status_code == 200
            return ui and httpx.get(f"http://127.0.0.1:{SERVE_PORT}/", timeout=2).status_code == 200

        wait_for(up, 180, "the Dagster UI and coworld serve of make demo", interval=0.5)
        out = self.log()
        assert f"demo league (Dagster UI): http://127.0.0.1:{DEMO_PORT}" in out, out
        assert f"replays and live games:   http://127.0.0.1:{SERVE_PORT}" in out, out

    def stop(self, sig: int) -> float:
        """Send `sig` as a user would; the seconds until make and everything it started are gone."""
        started = time.monotonic()
        if sig == signal.SIGINT:
            os.killpg(self.proc.pid, signal.SIGINT)  # a terminal's Ctrl-C: the foreground group
        else:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=STOP_LIMIT_SECONDS + 20)
        finally:
            self._log.close()
        exited = time.monotonic() - started
        wait_for(lambda: not self.leftovers(), 5, "no demo process left", interval=0.2)
        return exited

    def leftovers(self) -> list[str]:
        """Live processes started by this demo: in its session, or carrying its league home."""
        return [cmdline for _, cmdline in self._leftover_processes()]

    def _leftover_processes(self) -> list[tuple[int, str]]:
        found = []
        mark = f"COWORLD_HOME={self.home}".encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(") ", 1)[1].split()
                if fields[0] == "Z":
                    continue
                in_session = int(fields[3]) == self.proc.pid
                if in_session or mark in (entry / "environ").read_bytes().split(b"\0"):
                    cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
                    found.append((int(entry.name), cmdline))
            except (OSError, IndexError, ValueError):
                continue
        return found

    def kill(self) -> None:
        """Whatever is left, after a failed test too: `make`'s group, and the services demo.sh put
        in process groups of their own (same session) with everything they started."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        for pid, _ in self._leftover_processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if not self._log.closed:
            self._log.close()


@pytest.fixture
def demo_root(tmp_path: Path) -> Iterator[Path]:
    instance_yaml(tmp_path / "dagster_home")
    yield tmp_path


def league_state(home: Path) -> tuple[str | None, str | None, dict[str, int]]:
    """(open round id, its status, episode counts by status) of the demo league."""
    svc = LeagueService(None, home)
    try:
        leagues = [lg for lg in svc.leagues() if lg.name == "orchard-demo"]
        if not leagues or leagues[0].last_round is None:
            return None, None, {}
        rnd = leagues[0].last_round
        counts: dict[str, int] = {}
        for e in svc.episodes(round_ref=rnd.id, limit=1000):
            counts[e.status] = counts.get(e.status, 0) + 1
        return rnd.id, rnd.status, counts
    finally:
        svc.close()


def round_status(home: Path, round_id: str) -> tuple[str, dict[str, int]]:
    svc = LeagueService(None, home)
    try:
        counts: dict[str, int] = {}
        for e in svc.episodes(round_ref=round_id, limit=1000):
            counts[e.status] = counts.get(e.status, 0) + 1
        return svc.round(round_id).status, counts
    finally:
        svc.close()


def wait_until_playing(demo: Demo, round_id: str | None = None) -> str:
    """Until an episode of the open round (or of `round_id`) is being played; returns the round id."""

    def playing() -> str | None:
        demo.alive()
        rid, status, counts = league_state(demo.home)
        if round_id is not None:
            status, counts = round_status(demo.home, round_id)
            rid = round_id
        return rid if status == "running" and counts.get("running", 0) > 0 else None

    return wait_for(playing, 240, "an episode of the demo round being played", interval=0.5)


REPLAY_LINKS = """query { assetOrError(assetKey: {path: ["episodes"]}) { ... on Asset {
  assetMaterializations(limit: 50) { partition metadataEntries {
    label ... on UrlMetadataEntry { url } } } } } }"""


def check_replay_link(demo: Demo) -> None:
    """An episode page links its replay in the demo's `coworld serve`, and the link opens the viewer."""
    body = httpx.post(
        f"http://127.0.0.1:{DEMO_PORT}/graphql", json={"query": REPLAY_LINKS}, timeout=30
    ).json()
    links = [
        entry["url"]
        for m in body["data"]["assetOrError"]["assetMaterializations"]
        for entry in m["metadataEntries"]
        if entry["label"] == "replay"
    ]
    assert links and all(u.startswith(f"http://127.0.0.1:{SERVE_PORT}/replay/") for u in links), body
    response = httpx.get(links[0], timeout=120)
    assert response.status_code == 302, response.text
    viewer = httpx.get(response.headers["location"], timeout=30)
    assert viewer.status_code == 200 and "<title>Orchard - replay</title>" in viewer.text


def seed_slow_demo_league(home: Path) -> None:
    """The demo league, created before the demo starts, with episodes of ~15 s: a stop then always
    catches episodes mid-game, whose runner cannot finish them in time."""
    import json

    from coworld_pipeline.demo import DEMO_LEAGUE, DEMO_PLAYERS, ORCHARD_MANIFEST

    svc = LeagueService(None, home)
    try:
        svc.upload_coworld(ORCHARD_MANIFEST)
        players = {p["id"]: p for p in json.loads(ORCHARD_MANIFEST.read_text())["player"]}
        for name in DEMO_PLAYERS:
            svc.upload_policy(players[name]["image"], name, run=list(players[name]["run"]))
        league = svc.create_league(
            DEMO_LEAGUE,
            "orchard:0.1.0",
            variants=["duel"],
            commissioner="round-robin",
            commissioner_config={"episodes_per_pair": 1},
            config_overrides={"max_ticks": 150, "tick_rate": 10, "final_linger_seconds": 0},
            interval_minutes=1.0,
        )
        for name in DEMO_PLAYERS:
            svc.submit(name, league.id)
        svc.open_round(league.id, trigger="test kick-off")
    finally:
        svc.close()


def attempts(home: Path, round_id: str) -> dict[str, int]:
    svc = LeagueService(None, home)
    try:
        return {e.id: e.attempts for e in svc.episodes(round_ref=round_id, limit=1000)}
    finally:
        svc.close()


@pytest.mark.parametrize(
    ("first_signal", "slow"),
    [(signal.SIGTERM, False), (signal.SIGINT, False), (signal.SIGTERM, True)],
    ids=["sigterm", "ctrl-c", "sigterm-mid-episode"],
)
def test_demo_stops_within_10s_and_resumes_its_round(demo_root: Path, first_signal: int, slow: bool) -> None:
    if slow:
        seed_slow_demo_league(demo_root / "coworld_home")
    first = Demo(demo_root, 1)
    try:
        first.wait_ready()
        round_id = wait_until_playing(first)
        seconds = first.stop(first_signal)
    finally:
        first.kill()
    assert seconds <= STOP_LIMIT_SECONDS, (seconds, first.log()[-3000:])
    status, counts = round_status(first.home, round_id)
    assert status == "running", (status, counts)  # interrupted, not cancelled or failed

    second = Demo(demo_root, 2)
    try:
        second.wait_ready()
        wait_for(
            lambda: second.alive() and round_status(second.home, round_id)[0] == "completed",
            300,
            f"round {round_id} to complete after the restart",
            interval=1.0,
        )
        status, counts = round_status(second.home, round_id)
        assert set(counts) <= {"succeeded", "failed"} and counts.get("succeeded"), counts
        if slow:  # the episodes cut short were requeued (an interrupted attempt) and played again
            assert max(attempts(second.home, round_id).values()) == 2, attempts(second.home, round_id)
        check_replay_link(second)
        seconds = second.stop(signal.SIGTERM)
    finally:
        second.kill()
    assert seconds <= STOP_LIMIT_SECONDS, (seconds, second.log()[-3000:])
