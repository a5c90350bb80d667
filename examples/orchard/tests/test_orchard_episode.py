"""Real game server + real player processes over real websockets on loopback."""

from __future__ import annotations

import json
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from orchard_testlib import (
    http_get,
    make_config,
    run_full_episode,
    start_game,
    start_replay_server,
    wait_until,
)
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect


def recv_json(ws, timeout: float = 10.0) -> dict:
    return json.loads(ws.recv(timeout=timeout))


def recv_until(ws, predicate, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        message = recv_json(ws, timeout=max(0.01, deadline - time.monotonic()))
        if predicate(message):
            return message


def test_full_episode_results_and_replay(tmp_path: Path, manifest):
    config = make_config(seed=31, max_ticks=100)
    game = run_full_episode(tmp_path / "ep", config, ["greedy", "planner"])
    results = game.results()
    validator = Draft202012Validator(manifest["game"]["results_schema"])
    assert not list(validator.iter_errors(results)), results
    assert len(results["scores"]) == 2 and results["ticks"] == 100
    replay = json.loads(game.replay_bytes())
    assert len(replay["frames"]) == 101
    assert replay["results"]["scores"] == results["scores"]
    assert "token-0-31" not in game.replay_bytes().decode()
    assert "episode_seconds=" in game.stdout()
    assert results["episode_seconds"] < 1.5
    for slot in range(2):
        assert "final: scores=" in (game.workdir / f"player{slot}.log").read_text()


def test_two_server_runs_produce_identical_replays(tmp_path: Path):
    config = make_config(seed=77, max_ticks=80)
    first = run_full_episode(tmp_path / "a", config, ["greedy", "planner"])
    second = run_full_episode(tmp_path / "b", config, ["greedy", "planner"])
    assert first.replay_bytes() == second.replay_bytes()
    assert first.results()["scores"] == second.results()["scores"]


def test_routes_and_bad_tokens_are_refused_before_upgrade(game_factory):
    game = game_factory(make_config(seed=2, max_ticks=20, player_connect_timeout_seconds=60))
    assert http_get(f"{game.base}/healthz") == (200, "ok\n")
    status, body = http_get(f"{game.base}/client/player?slot=0&token={game.tokens[0]}")
    assert status == 200 and "<canvas" in body and 'id="board"' in body
    for page in ("global", "admin"):
        status, body = http_get(f"{game.base}/client/{page}")
        assert status == 200 and 'id="board"' in body
    assert http_get(f"{game.base}/nope")[0] == 404
    for query in (
        "slot=0&token=bad",
        "slot=1&token=" + game.tokens[0],
        "slot=7&token=x",
        "slot=a&token=x",
        "",
    ):
        with pytest.raises(InvalidStatus) as excinfo:
            connect(game.ws(f"/player?{query}"), open_timeout=5)
        assert excinfo.value.response.status_code == 403
    assert game.process.poll() is None


def test_reconnect_with_same_token_replaces_connection(game_factory):
    game = game_factory(make_config(seed=4, max_ticks=6))
    p0 = connect(game.player_url(0), open_timeout=5, legacy=True)
    p1 = connect(game.player_url(1), open_timeout=5, legacy=True)
    assert recv_json(p0)["type"] == "waiting"
    obs0 = recv_until(p0, lambda m: m["type"] == "observation")
    obs1 = recv_until(p1, lambda m: m["type"] == "observation")
    assert obs0["tick"] == obs1["tick"] == 0 and obs0["slot"] == 0 and obs1["slot"] == 1
    p0.send(json.dumps({"type": "action", "tick": 0, "move": "right"}))
    p1.send(json.dumps({"type": "action", "tick": 0, "move": "left"}))
    obs0 = recv_until(p0, lambda m: m["type"] == "observation" and m["tick"] == 1)
    assert obs0["positions"][0] == [1, 0]

    replacement = connect(game.player_url(0), open_timeout=5, legacy=True)
    with pytest.raises(ConnectionClosed):
        recv_until(p0, lambda m: False, timeout=5)  # the old socket is closed by the server
    again = recv_until(replacement, lambda m: m["type"] == "observation")
    assert again["tick"] == 1 and again["positions"][0] == [1, 0]
    sockets = {0: replacement, 1: p1}
    tick = 1
    final = {}
    while not final:
        for ws in sockets.values():
            ws.send(json.dumps({"type": "action", "tick": tick, "move": "down"}))
        sent = tick
        for slot, ws in sockets.items():
            message = recv_until(ws, lambda m, sent=sent: m["type"] == "final" or m["tick"] > sent)
            if message["type"] == "final":
                final[slot] = message
            else:
                tick = message["tick"]
    assert game.wait(timeout=20) == 0
    assert final[0]["results"]["ticks"] == 6
    assert game.results()["ticks"] == 6
    for ws in sockets.values():
        ws.close()


def test_late_global_viewer_gets_full_state_then_updates(game_factory):
    game = game_factory(make_config(seed=9, max_ticks=40, tick_rate=25))
    game.start_player(0, "greedy")
    game.start_player(1, "planner")
    with connect(game.ws("/global"), open_timeout=5, max_queue=None) as early:
        recv_until(early, lambda m: m["type"] == "state" and m["tick"] >= 5)
        with connect(game.ws("/global"), open_timeout=5, max_queue=None) as late:
            first = recv_json(late)
            assert first["type"] == "state" and first["started"] and first["tick"] >= 5
            for key in ("trees", "positions", "scores", "player_names", "width", "height", "max_ticks"):
                assert key in first
            assert len(first["trees"]) == 10
            later = recv_until(late, lambda m: m["tick"] > first["tick"])
            assert later["type"] == "state"
            last = recv_until(late, lambda m: m.get("done") and m.get("results"), timeout=15)
            assert last["results"]["ticks"] == 40
    assert game.wait(timeout=20) == 0


def test_viewer_after_the_end_gets_final_state(game_factory):
    game = game_factory(make_config(seed=10, max_ticks=30, final_linger_seconds=20))
    game.start_player(0, "greedy")
    game.start_player(1, "greedy")
    wait_until(lambda: (game.workdir / "results.json").exists(), 20, "results.json")
    started = time.monotonic()
    with connect(game.ws("/global"), open_timeout=5, max_queue=None) as viewer:
        state = recv_json(viewer)
    assert state["type"] == "state" and state["done"] and state["results"]["ticks"] == 30
    assert game.wait(timeout=10) == 0
    assert time.monotonic() - started < 10  # exits as soon as a viewer saw the end, not after the linger


def test_admin_pause_step_resume(game_factory):
    game = game_factory(make_config(seed=12, max_ticks=400, tick_rate=20))
    game.start_player(0, "greedy")
    game.start_player(1, "random")
    with connect(game.ws("/admin"), open_timeout=5, max_queue=None) as admin:
        recv_until(admin, lambda m: m["type"] == "state" and m["tick"] >= 2)
        admin.send(json.dumps({"command": "pause"}))
        reply = recv_until(admin, lambda m: m["type"] == "admin")
        assert reply["ok"] and reply["paused"]
        paused_tick = reply["tick"]
        admin.send(json.dumps({"command": "step"}))
        recv_until(admin, lambda m: m["type"] == "admin" and m["command"] == "step")
        stepped = recv_until(admin, lambda m: m["type"] == "state")
        assert stepped["tick"] == paused_tick + 1 and stepped["paused"]
        admin.send(json.dumps({"command": "bogus"}))
        assert recv_until(admin, lambda m: m["type"] == "admin")["ok"] is False
        admin.send(json.dumps({"command": "tick_rate", "tick_rate": 0}))
        admin.send(json.dumps({"command": "resume"}))
        recv_until(admin, lambda m: m["type"] == "admin" and m["command"] == "resume")
        assert game.wait(timeout=20) == 0
    assert game.results()["ticks"] == 400


def test_missing_player_writes_failure_report(tmp_path: Path):
    failure = tmp_path / "player_failure.json"
    config = make_config(seed=13, max_ticks=20, player_connect_timeout_seconds=0.5)
    game = start_game(tmp_path / "g", config, extra_env={"COGAME_PLAYER_FAILURE_URI": failure.as_uri()})
    try:
        player = game.start_player(0, "greedy")
        assert game.wait(timeout=20) == 0
        assert player.wait(timeout=10) == 0
    finally:
        game.stop()
    report = json.loads(failure.read_text())
    assert report == {
        "message": "slot 1 never connected within 0.5 s",
        "failed_policy_index": 1,
        "kind": "player_error",
    }
    assert not (game.workdir / "results.json").exists()


def test_missing_player_without_failure_uri_idles(tmp_path: Path):
    config = make_config(seed=14, max_ticks=40, player_connect_timeout_seconds=0.3)
    game = start_game(tmp_path / "g", config)
    try:
        game.start_player(0, "greedy")
        assert game.wait(timeout=20) == 0
    finally:
        game.stop()
    results = game.results()
    assert results["scores"][1] == 0 and results["ticks"] == 40
    replay = json.loads(game.replay_bytes())
    assert replay["frames"][-1]["positions"][1] == replay["frames"][0]["positions"][1]


def test_token_player_count_mismatch_exits_nonzero(tmp_path: Path):
    config = make_config(seed=1)
    config["tokens"].append("extra")
    game = start_game(tmp_path / "bad", config, wait_healthy=False)
    assert game.wait(timeout=20) != 0
    assert "3 tokens but 2 players" in game.stderr()


class _Recorder(BaseHTTPRequestHandler):
    received: list[tuple[str, str, str, bytes]] = []
    failures_left = {"results": 1}

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        name = self.path.strip("/")
        if self.failures_left.get(name, 0) > 0:
            self.failures_left[name] -= 1
            self.send_response(503)
            self.end_headers()
            return
        self.received.append((self.command, name, self.headers.get("Content-Type", ""), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_PUT = _handle
    do_POST = _handle

    def log_message(self, *args) -> None:
        pass


def test_http_outputs_with_post_retry_and_log_shipping(tmp_path: Path, manifest):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        config = make_config(seed=15, max_ticks=30)
        game = start_game(
            tmp_path / "g",
            config,
            extra_env={
                "COGAME_RESULTS_URI": f"{base}/results",
                "COGAME_RESULTS_METHOD": "POST",
                "COGAME_SAVE_REPLAY_URI": f"{base}/replay",
                "COGAME_LOG_URI": f"{base}/log",
            },
        )
        try:
            game.start_player(0, "greedy")
            game.start_player(1, "planner")
            assert game.wait(timeout=30) == 0
        finally:
            game.stop()
    finally:
        server.shutdown()
    by_name = {}
    for method, name, content_type, body in _Recorder.received:
        by_name.setdefault(name, []).append((method, content_type, body))
    ((method, content_type, body),) = by_name["results"]
    assert method == "POST" and content_type == "application/json"
    assert not list(Draft202012Validator(manifest["game"]["results_schema"]).iter_errors(json.loads(body)))
    ((method, _, body),) = by_name["replay"]
    assert method == "PUT" and json.loads(body)["format"] == "orchard-replay/1"
    log_text = b"".join(entry[2] for entry in by_name["log"]).decode()
    assert all(entry[1].startswith("text/plain") for entry in by_name["log"])
    assert "episode started" in log_text and "episode_seconds=" in log_text


def test_replay_mode_serves_replay_and_controls(tmp_path: Path):
    episode = run_full_episode(tmp_path / "ep", make_config(seed=16, max_ticks=25), ["greedy", "random"])
    replay_uri = (episode.workdir / "replay.json").as_uri()
    server = start_replay_server(tmp_path / "replay")
    try:
        status, body = http_get(f"{server.base}/client/replay?uri={replay_uri}")
        assert status == 200 and 'id="board"' in body and 'id="seek"' in body
        with connect(server.ws(f"/replay?uri={replay_uri}"), open_timeout=5, max_size=None) as ws:
            first = recv_json(ws)
            assert first["type"] == "replay" and len(first["frames"]) == 26
            ws.send(json.dumps({"command": "seek", "tick": 999}))
            assert recv_json(ws) == {"type": "control", "command": "seek", "tick": 25, "ok": True}
            ws.send(json.dumps({"command": "pause"}))
            assert recv_json(ws)["ok"] is True
        for query, code in (("", 400), ("?uri=file:///coworld/missing-replay.json", 404)):
            with pytest.raises(InvalidStatus) as excinfo:
                connect(server.ws(f"/replay{query}"), open_timeout=5)
            assert excinfo.value.response.status_code == code
    finally:
        server.stop()


def test_load_replay_uri_env_with_compressed_replay(tmp_path: Path):
    episode = run_full_episode(tmp_path / "ep", make_config(seed=17, max_ticks=15), ["planner", "greedy"])
    compressed = tmp_path / "replay.json.z"
    compressed.write_bytes(zlib.compress(episode.replay_bytes()))
    server = start_replay_server(tmp_path / "replay", {"COGAME_LOAD_REPLAY_URI": compressed.as_uri()})
    try:
        assert http_get(f"{server.base}/client/replay")[0] == 200
        with connect(server.ws("/replay"), open_timeout=5, max_size=None) as ws:
            first = recv_json(ws)
        assert first["type"] == "replay" and first["results"] == json.loads(episode.replay_bytes())["results"]
    finally:
        server.stop()


def test_silent_player_is_not_waited_for_forever(game_factory):
    game = game_factory(make_config(seed=18, max_ticks=5, turn_timeout_seconds=0.05))
    with connect(game.player_url(0), open_timeout=5, max_queue=None) as silent:
        game.start_player(1, "greedy")
        recv_until(silent, lambda m: m["type"] == "observation")
        assert game.wait(timeout=20) == 0
    assert game.results()["ticks"] == 5
    assert "did not act within 0.05 s" in game.stdout()
