"""Browser checks of the live and replay viewers with Debian's chromium (no browser download).

Install chromium first: ``apt-get install -y chromium``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from orchard_testlib import artifacts_dir, make_config, start_game, start_replay_server
from websockets.sync.client import connect

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("ORCHARD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

NON_BLANK_PIXELS = """() => {
  const canvas = document.getElementById("board");
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  const first = [data[0], data[1], data[2]];
  const colors = new Set();
  let differing = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i] !== first[0] || data[i + 1] !== first[1] || data[i + 2] !== first[2]) differing++;
    if (colors.size < 64) colors.add(data[i] + "," + data[i + 1] + "," + data[i + 2]);
  }
  return {differing, colors: colors.size, width: canvas.width, height: canvas.height};
}"""


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def _tick(page) -> int:
    return int(page.get_attribute("#board", "data-tick"))


def _assert_drawn(page) -> None:
    pixels = page.evaluate(NON_BLANK_PIXELS)
    assert pixels["width"] > 100 and pixels["height"] > 100
    assert pixels["differing"] > 1000 and pixels["colors"] >= 4, pixels


def test_live_viewer_and_replay_viewer_render(browser, tmp_path: Path):
    shots = artifacts_dir()
    game = start_game(
        tmp_path / "live", make_config(seed=51, max_ticks=60, tick_rate=15, final_linger_seconds=0)
    )
    page = browser.new_page(viewport={"width": 900, "height": 800})
    console_errors: list[str] = []
    page.on("pageerror", lambda error: console_errors.append(str(error)))
    try:
        page.goto(f"{game.base}/client/global")
        game.start_player(0, "greedy")
        game.start_player(1, "planner")
        page.wait_for_function("Number(document.getElementById('board').dataset.tick) >= 5", timeout=15000)
        first_tick = _tick(page)
        _assert_drawn(page)
        page.screenshot(path=str(shots / "orchard_global_live.png"))
        page.wait_for_function(
            f"Number(document.getElementById('board').dataset.tick) > {first_tick + 3}", timeout=15000
        )
        scoreboard = page.inner_text("#scoreboard")
        assert "P0 Player 0 (red)" in scoreboard and "P1 Player 1 (blue)" in scoreboard
        page.wait_for_function(
            "document.getElementById('results').textContent.includes('Final')", timeout=20000
        )
        assert _tick(page) == 60
        page.screenshot(path=str(shots / "orchard_global_final.png"))
        assert game.wait(timeout=20) == 0
    finally:
        game.stop()
        page.close()

    replay_uri = (game.workdir / "replay.json").as_uri()
    server = start_replay_server(tmp_path / "replay")
    page = browser.new_page(viewport={"width": 900, "height": 800})
    page.on("pageerror", lambda error: console_errors.append(str(error)))
    try:
        page.goto(f"{server.base}/client/replay?uri={replay_uri}")
        page.wait_for_function("Number(document.getElementById('board').dataset.tick) >= 2", timeout=15000)
        _assert_drawn(page)
        page.click("#play")  # pause autoplay
        page.eval_on_selector("#seek", "(el) => { el.value = '42'; el.dispatchEvent(new Event('input')); }")
        page.wait_for_function("document.getElementById('board').dataset.tick === '42'", timeout=5000)
        page.screenshot(path=str(shots / "orchard_replay_seek42.png"))
        page.eval_on_selector("#seek", "(el) => { el.value = '7'; el.dispatchEvent(new Event('input')); }")
        page.wait_for_function("document.getElementById('board').dataset.tick === '7'", timeout=5000)
        page.click("#play")  # resume: ticks advance again
        page.wait_for_function("Number(document.getElementById('board').dataset.tick) > 7", timeout=5000)
        assert "P1 Player 1 (blue)" in page.inner_text("#scoreboard")
    finally:
        page.close()
        server.stop()
    assert not console_errors, console_errors


def test_player_page_lets_a_human_move(browser, tmp_path: Path):
    config = make_config(seed=52, max_ticks=30, tick_rate=0, final_linger_seconds=0)
    game = start_game(tmp_path / "human", config)
    page = browser.new_page(viewport={"width": 900, "height": 800})
    try:
        game.start_player(1, "greedy")
        page.goto(f"{game.base}/client/player?slot=0&token={game.tokens[0]}")
        page.wait_for_function("document.getElementById('board').dataset.tick === '0'", timeout=15000)
        assert "You are P0 Player 0 (red)" in page.inner_text("#me")
        derived = page.evaluate("() => orchardSocketUrl('player')")
        assert derived == f"ws://127.0.0.1:{game.port}/player?slot=0&token={game.tokens[0]}"
        page.focus("#board")
        page.keyboard.press("ArrowRight")
        page.wait_for_function("document.getElementById('board').dataset.tick === '1'", timeout=5000)
        page.keyboard.press("d")
        page.wait_for_function("document.getElementById('board').dataset.tick === '2'", timeout=5000)
        page.keyboard.press("ArrowDown")
        page.wait_for_function("document.getElementById('board').dataset.tick === '3'", timeout=5000)
        _assert_drawn(page)
        page.screenshot(path=str(artifacts_dir() / "orchard_player.png"))
        with connect(game.ws("/global"), open_timeout=5) as viewer:
            state = json.loads(viewer.recv(timeout=5))
        assert state["tick"] == 3 and state["positions"][0] == [2, 1]
    finally:
        page.close()
        game.stop()


def test_address_override_is_used_verbatim(browser, tmp_path: Path):
    game = start_game(
        tmp_path / "addr", make_config(seed=53, max_ticks=20, player_connect_timeout_seconds=60)
    )
    page = browser.new_page()
    try:
        # the page is served from one path, but must connect to exactly the `address` URL (scheme swapped)
        target = f"http://127.0.0.1:{game.port}/global"
        page.goto(f"{game.base}/client/global?address={target}&ignored=1")
        page.wait_for_function("document.getElementById('status').textContent === 'connected'", timeout=10000)
        page.wait_for_function("document.getElementById('board').dataset.tick === '0'", timeout=10000)
        assert page.evaluate("() => orchardSocketUrl('global')") == f"ws://127.0.0.1:{game.port}/global"
        page.goto(f"{game.base}/client/global?address=https://example.invalid/proxy/global%3Fa%3D1")
        assert page.evaluate("() => orchardSocketUrl('global')") == "wss://example.invalid/proxy/global?a=1"
    finally:
        page.close()
        game.stop()
