"""The Dagster UI as an operator sees it: headless Chromium on a real league under `dagster dev`.

A demo-like Orchard league (`greedy`, `random` and `crasher`, a player that exits at once) plays one
round under `dagster dev` with the process runtime, next to `coworld serve` (COWORLD_SERVE_URL).
GraphQL is only used to wait until the standings are materialized; every assertion about what an
operator sees is on the page Chromium rendered:

- the `standings` partition page shows the overview (round, progress, the failed episodes with their
  error type) and the standings rows (entrant names);
- the failed episode's partition (its readable key `ui-demo.r1.eN`) is marked failed, and its run's
  logs, one click away, name the error type;
- a succeeded episode's metadata links to `coworld serve`, and that link opens the game's replay viewer.

Screenshots go to $COWORLD_TEST_ARTIFACTS (scripts/test.sh: test-artifacts/); the README's two are
refreshed in docs/screenshots/ when COWORLD_UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from coworld_pipeline.league.service import LeagueService
from tests.conftest import COWORLD, REPO, wait_for
from tests.defs.chromium import CHROMIUM, Chromium, Page
from tests.defs.dagster_dev import DagsterDev
from tests.defs.helpers import with_group_kill
from tests.league.conftest import FAST, ORCHARD_MANIFEST

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LEAGUE = "ui-demo"
PLAYERS = {
    "greedy": ["python", "-m", "orchard.players.greedy"],
    "random": ["python", "-m", "orchard.players.random"],
    "crasher": ["python", "-c", "import sys; sys.exit(3)"],  # exits before its first word
}
DAGSTER_PORT, SERVE_PORT, CHROMIUM_PORT = 18450, 18451, 18452
README_SHOTS = REPO / "docs" / "screenshots"


def artifacts_dir(tmp_path: Path) -> Path:
    root = Path(os.environ.get("COWORLD_TEST_ARTIFACTS") or tmp_path / "artifacts") / "ui_browser"
    root.mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture
def console(tmp_path: Path) -> Iterator[tuple[DagsterDev, LeagueService, str]]:
    """`dagster dev` and `coworld serve` on one league home; the league's one round played.

    Function-scoped: it is stopped (replay servers included) before the session's leftover check.
    """
    if not Path(CHROMIUM).exists():
        pytest.fail(f"the browser tests need Debian chromium at {CHROMIUM} (apt-get install chromium)")
    root = tmp_path / "ui"
    home = root / "coworld_home"
    service = LeagueService(home=home)
    service.upload_coworld(ORCHARD_MANIFEST)
    for name, run in PLAYERS.items():
        service.upload_policy("coworld/orchard:0.1.0", name, run=run)
    service.create_league(
        LEAGUE,
        "orchard",
        variants=["duel"],
        commissioner_config={"episodes_per_pair": 1},
        config_overrides={**FAST, "max_ticks": 20},
    )
    for name in PLAYERS:
        service.submit(name, LEAGUE)
    serve_url = f"http://127.0.0.1:{SERVE_PORT}"
    serve = subprocess.Popen(
        [*COWORLD, "serve", "--port", str(SERVE_PORT), "--idle-seconds", "60"],
        env={**os.environ, "COWORLD_HOME": str(home), "COWORLD_RUNTIME": "process"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    dev = None
    try:
        dev = DagsterDev(root, env={"COWORLD_SERVE_URL": serve_url}, port=DAGSTER_PORT)
        # What "Skip" on Dagster's "Join the Dagster community" modal does: it never covers a page.
        dev.gql("mutation { setNuxSeen }")
        # Opened here, played by Dagster: the commissioner sensor picks the round up on its next tick.
        assert service.open_round(LEAGUE, trigger="ui test").opened
        wait_for(
            lambda: any(m["partition"] == LEAGUE for m in dev.materializations("standings")),
            300,
            "the standings of the round",
            2,
        )
        yield dev, service, serve_url
    finally:
        # `coworld serve` first: the replay servers it started are game processes that dev.stop()
        # waits for.
        try:
            with_group_kill(serve)
        finally:
            try:
                if dev is not None:
                    dev.stop()
            finally:
                service.close()


def open_page(page: Page, url: str, needle: str) -> str:
    """Open `url` and wait until the rendered page shows `needle`; the page's text."""
    page.navigate(url)
    return page.wait_for_text(needle, 90)


def test_the_operator_sees_standings_failures_and_replays(
    console: tuple[DagsterDev, LeagueService, str], tmp_path: Path
) -> None:
    dev, service, serve_url = console
    ui = f"http://127.0.0.1:{dev.port}"
    shots = artifacts_dir(tmp_path)
    episodes = service.episodes(league_ref=LEAGUE)
    failed = sorted(e.key for e in episodes if e.status == "failed")
    played = sorted(e.key for e in episodes if e.status == "succeeded")
    assert len(failed) == 2 and len(played) == 1, [(e.key, e.status) for e in episodes]

    browser = Chromium(CHROMIUM_PORT, width=1600, height=1300)
    try:
        page = browser.new_page()

        # (a) The standings partition: the overview and the standings rows, as rendered.
        open_page(page, f"{ui}/assets/standings?view=partitions&partition={LEAGUE}", "standings")
        page.wait_for_text("crasher:v1", 60)
        # Markdown entries render a moment after the rest (a lazily loaded component): wait for both.
        page.wait_for_text(f"round 1 ({LEAGUE}.r1) completed", 60)
        text = page.wait_for_text(f"{LEAGUE} / open", 60)  # the standings section of one division
        (shots / "standings.txt").write_text(text)  # what the page said, for a failure's post-mortem
        overview = text[text.find("overview") :][:600]
        assert f"round 1 ({LEAGUE}.r1) completed: 1/3 played, 2 failed" in text, overview
        rows = text.split(f"{LEAGUE} / open")[1]
        for name in ("greedy:v1", "random:v1", "crasher:v1"):
            assert name in rows, f"{name} is not a standings row on the page"
        assert "player_crashed" in text and failed[0] in text  # the overview's failed episodes
        page.screenshot(shots / "standings.png", full_page=False)

        # (b) A failed episode: its partition is failed (red), and its run's logs name the error type.
        key = failed[0]
        open_page(page, f"{ui}/assets/episodes?view=partitions&partition={key}", "did not materialize")
        text = page.text()
        assert "Failed (2)" in text and "Materialized (1)" in text
        assert page.evaluate(
            "[...document.querySelectorAll('*')].some(e => e.children.length === 0 && "
            f"e.innerText && e.innerText.trim() === {json.dumps(key)})"
        ), f"{key} is not listed on its partitions page"
        assert "failed, and did not materialize this asset" in text
        (shots / "failed-partition.txt").write_text(text)
        page.screenshot(shots / "failed-episode.png", full_page=False)
        # Its run (the link in the red banner), with the run's logs filtered to this episode.
        run_url = page.evaluate(
            "[...document.querySelectorAll('a')].map(a => a.href).find(h => /[/]runs[/][0-9a-f-]+$/.test(h))"
        )
        assert run_url, "no link to the failed run on the partition page"
        page.navigate(f"{run_url}?logs={quote(key)}")
        page.wait_for_text(f"{key}: failed — player_crashed (blame player", 60)
        page.screenshot(shots / "failed-episode-logs.png", full_page=False)

        # (c) The succeeded episode's `replay` link opens the game's replay viewer via `coworld serve`.
        open_page(page, f"{ui}/assets/episodes?view=partitions&partition={played[0]}", "replay_command")
        links = page.evaluate(
            "[...document.querySelectorAll('a')].map(a => a.href)"
            f".filter(h => h.startsWith('{serve_url}/replay/'))"
        )
        assert links, "no replay link on the succeeded episode's page"
        page.navigate(links[0])
        page.wait_for(
            f"!location.href.startsWith('{serve_url}') && location.href", 90, "the redirect to the viewer"
        )
        viewer = page.wait_for_text("replay loaded", 60)
        assert "greedy:v1" in viewer and "random:v1" in viewer
        page.screenshot(shots / "replay.png", full_page=False)
    finally:
        browser.close()

    if os.environ.get("COWORLD_UPDATE_SCREENSHOTS") == "1":
        README_SHOTS.mkdir(parents=True, exist_ok=True)
        for name in ("standings.png", "failed-episode.png", "failed-episode-logs.png"):
            shutil.copy(shots / name, README_SHOTS / name)
