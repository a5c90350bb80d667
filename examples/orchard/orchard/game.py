"""Orchard game server: ``python -m orchard.game``.

Rollout mode (default) reads the config from ``COGAME_CONFIG_URI``, serves players, viewers and the admin
channel over HTTP/websockets on ``COGAME_HOST:COGAME_PORT``, plays one episode and writes the replay to
``COGAME_SAVE_REPLAY_URI`` and the results to ``COGAME_RESULTS_URI`` before exiting 0.

Replay mode (``COGAME_REPLAY_SERVER=1`` or ``COGAME_LOAD_REPLAY_URI`` set) serves a saved replay to the
replay viewer instead.

Only the standard library and ``websockets`` are used.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import os
import queue
import signal
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from orchard import uris
from orchard.engine import MOVES, ConfigError, Orchard, public_config, replay_bytes, validate_config

STATIC_DIR = Path(__file__).resolve().parent / "static"
PAGES = {
    "/client/player": "player.html",
    "/client/global": "global.html",
    "/client/admin": "admin.html",
    "/client/replay": "replay.html",
}
COMMON_JS_MARKER = "/*__ORCHARD_COMMON_JS__*/"


# --------------------------------------------------------------------------------------------------
# logging: stdout always, COGAME_LOG_URI (text/plain POST, background thread) when set
# --------------------------------------------------------------------------------------------------
class LogSink:
    def __init__(self, uri: str | None) -> None:
        self.uri = uri
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        if uri:
            self._thread = threading.Thread(target=self._run, name="orchard-log-poster", daemon=True)
            self._thread.start()

    def __call__(self, message: str) -> None:
        line = f"[orchard] {message}"
        print(line, flush=True)
        if self._thread is not None:
            self._queue.put(line)

    def _run(self) -> None:
        assert self.uri is not None
        while True:
            line = self._queue.get()
            if line is None:
                return
            lines = [line]
            while True:  # batch whatever else is queued
                try:
                    extra = self._queue.get_nowait()
                except queue.Empty:
                    break
                if extra is None:
                    self._post(lines)
                    return
                lines.append(extra)
            self._post(lines)

    def _post(self, lines: list[str]) -> None:
        try:
            uris.post_text(self.uri, "\n".join(lines) + "\n")
        except Exception as exc:  # best effort: never let log shipping break the game
            print(f"[orchard] log POST failed: {exc}", file=sys.stderr, flush=True)

    def close(self, timeout: float = 3.0) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)


log = LogSink(os.environ.get("COGAME_LOG_URI") or None)


# --------------------------------------------------------------------------------------------------
# HTTP helpers
# --------------------------------------------------------------------------------------------------
def _load_pages() -> dict[str, bytes]:
    common = (STATIC_DIR / "common.js").read_text(encoding="utf-8")
    pages = {}
    for route, filename in PAGES.items():
        html = (STATIC_DIR / filename).read_text(encoding="utf-8")
        pages[route] = html.replace(COMMON_JS_MARKER, common).encode("utf-8")
    return pages


def _response(status: int, reason: str, body: bytes, content_type: str) -> Response:
    headers = Headers()
    headers["Content-Type"] = content_type
    headers["Content-Length"] = str(len(body))
    headers["Cache-Control"] = "no-store"
    return Response(status, reason, headers, body)


def text_response(status: int, text: str) -> Response:
    reasons = {
        200: "OK",
        400: "Bad Request",
        403: "Forbidden",
        404: "Not Found",
        410: "Gone",
        503: "Unavailable",
    }
    return _response(status, reasons.get(status, "Status"), text.encode("utf-8"), "text/plain; charset=utf-8")


def html_response(body: bytes) -> Response:
    return _response(200, "OK", body, "text/html; charset=utf-8")


def split_request(request: Request) -> tuple[str, dict[str, str]]:
    parts = urllib.parse.urlsplit(request.path)
    path = parts.path.rstrip("/") or "/"
    query = {key: values[-1] for key, values in urllib.parse.parse_qs(parts.query).items()}
    return path, query


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def send_now(ws: ServerConnection, text: str) -> None:
    """Queue a message without awaiting flow control (a slow reader must never stall the tick loop)."""
    broadcast([ws], text)


# --------------------------------------------------------------------------------------------------
# Rollout mode
# --------------------------------------------------------------------------------------------------
class EpisodeServer:
    def __init__(self, config: dict[str, Any], env: dict[str, str]) -> None:
        self.config = config
        self.env = env
        self.tokens: list[str] = list(config["tokens"])
        self.slots = len(self.tokens)
        policy_names = _policy_names(env.get("COWORLD_POLICY_NAMES"), self.slots)
        self.game = Orchard(public_config(config), policy_names=policy_names)
        self.tick_rate = float(config["tick_rate"])
        self.connect_timeout = float(config["player_connect_timeout_seconds"])
        self.turn_timeout = float(config["turn_timeout_seconds"])
        self.final_linger = float(config["final_linger_seconds"])
        self.pages = _load_pages()

        self.players: dict[int, ServerConnection] = {}
        self.ever_connected: set[int] = set()
        self.pending: dict[int, str] = {}
        self.viewers: set[ServerConnection] = set()
        self.admins: set[ServerConnection] = set()
        self.started = False
        self.finished = False
        self.paused = False
        self.step_requests = 0
        self.force_start = False
        self.results: dict[str, Any] | None = None
        self.next_tick_at = 0.0
        self.wake = asyncio.Event()
        self.final_state_served = asyncio.Event()
        self.viewer_seen = False  # any /global viewer during the episode: no need to linger at the end

    # ---- HTTP routing (runs before any websocket upgrade) ---------------------------------------
    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path, query = split_request(request)
        if path == "/healthz":
            return text_response(200, "ok\n")
        if path in ("/client/player", "/client/global", "/client/admin"):
            return html_response(self.pages[path])
        if path == "/player":
            slot = self._authorize(query)
            if slot is None:
                return text_response(403, "invalid slot or token\n")
            if self.finished:
                return text_response(410, "episode is over\n")
            return None
        if path in ("/global", "/admin"):
            return None
        return text_response(404, "not found\n")

    def _authorize(self, query: dict[str, str]) -> int | None:
        try:
            slot = int(query.get("slot", ""))
        except ValueError:
            return None
        if not 0 <= slot < self.slots:
            return None
        token = query.get("token", "")
        # constant-time comparison: tokens are secrets
        if not hmac.compare_digest(token.encode("utf-8"), self.tokens[slot].encode("utf-8")):
            return None
        return slot

    async def handler(self, ws: ServerConnection) -> None:
        path, query = split_request(ws.request)
        if path == "/player":
            await self._player(ws, int(query["slot"]))
        elif path == "/global":
            await self._viewer(ws)
        elif path == "/admin":
            await self._admin(ws)

    # ---- messages -----------------------------------------------------------------------------
    def state_message(self, kind: str = "state") -> dict[str, Any]:
        message = self.game.snapshot()
        message.update(
            {
                "type": kind,
                "started": self.started,
                "paused": self.paused,
                "tick_rate": self.tick_rate,
                "connected": [slot in self.players for slot in range(self.slots)],
                "results": self.results,
            }
        )
        if self.finished:
            message["done"] = True
        return message

    def observation_text(self, slot: int) -> str:
        observation = self.game.observation(slot)
        observation["tick_rate"] = self.tick_rate
        observation["paused"] = self.paused
        return dumps(observation)

    def broadcast_observations(self) -> None:
        for slot, ws in list(self.players.items()):
            send_now(ws, self.observation_text(slot))

    def broadcast_state(self) -> None:
        if self.viewers or self.admins:
            broadcast(self.viewers | self.admins, dumps(self.state_message()))

    # ---- channels -----------------------------------------------------------------------------
    async def _player(self, ws: ServerConnection, slot: int) -> None:
        previous = self.players.get(slot)
        self.players[slot] = ws
        first = slot not in self.ever_connected
        self.ever_connected.add(slot)
        log(f"slot {slot} {'connected' if first else 'reconnected'}")
        if previous is not None:
            await previous.close(1000, "replaced by a newer connection for this slot")
        if self.started and not self.game.done:
            send_now(ws, self.observation_text(slot))
        elif not self.started:
            send_now(ws, dumps({"type": "waiting", "slot": slot, "connected": sorted(self.players)}))
        self.wake.set()
        self.broadcast_state()
        try:
            async for raw in ws:
                self._on_player_message(slot, raw)
        except ConnectionClosed:
            pass
        finally:
            if self.players.get(slot) is ws:
                del self.players[slot]
                self.pending.pop(slot, None)
                if not self.finished:
                    log(f"slot {slot} disconnected (idles with 'stay' until it reconnects)")
                    self.broadcast_state()
                self.wake.set()

    def _on_player_message(self, slot: int, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            return
        if not isinstance(message, dict) or not self.started or self.game.done:
            return
        tick = message.get("tick")
        if tick is not None and tick != self.game.tick:
            return  # stale action for an earlier tick
        move = message.get("move")
        self.pending[slot] = move if move in MOVES else "stay"
        self.wake.set()

    async def _viewer(self, ws: ServerConnection) -> None:
        self.viewers.add(ws)
        self.viewer_seen = True
        try:
            await ws.send(dumps(self.state_message()))
            if self.finished:
                self.final_state_served.set()
            async for _ in ws:
                pass  # viewers are read-only
        except ConnectionClosed:
            pass
        finally:
            self.viewers.discard(ws)

    async def _admin(self, ws: ServerConnection) -> None:
        self.admins.add(ws)
        try:
            await ws.send(dumps(self.state_message()))
            async for raw in ws:
                reply = self._on_admin_command(raw)
                await ws.send(dumps(reply))
        except ConnectionClosed:
            pass
        finally:
            self.admins.discard(ws)

    def _on_admin_command(self, raw: str | bytes) -> dict[str, Any]:
        try:
            message = json.loads(raw)
            command = message["command"]
        except (ValueError, KeyError, TypeError):
            return {"type": "admin", "ok": False, "error": 'expected {"command": ...}'}
        if command == "pause":
            self.paused = True
        elif command == "resume":
            self.paused = False
        elif command == "step":
            self.paused = True
            self.step_requests += 1
        elif command == "start":
            self.force_start = True
        elif command == "tick_rate":
            rate = message.get("tick_rate")
            if not isinstance(rate, (int, float)) or isinstance(rate, bool) or rate < 0:
                return {"type": "admin", "ok": False, "error": "tick_rate must be a number >= 0"}
            self.tick_rate = float(rate)
            self.next_tick_at = asyncio.get_running_loop().time()
        else:
            return {"type": "admin", "ok": False, "error": f"unknown command {command!r}"}
        log(f"admin: {command}")
        self.wake.set()
        return {
            "type": "admin",
            "ok": True,
            "command": command,
            "paused": self.paused,
            "tick_rate": self.tick_rate,
            "tick": self.game.tick,
        }

    # ---- episode loop -------------------------------------------------------------------------
    async def _wait(self, timeout: float | None) -> None:
        self.wake.clear()
        if timeout is None:
            await self.wake.wait()
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout)

    async def wait_for_players(self) -> list[int]:
        """Returns the slots that never connected (empty when everyone made it in time)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_timeout
        while len(self.ever_connected) < self.slots and not self.force_start:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            await self._wait(remaining)
        return [slot for slot in range(self.slots) if slot not in self.ever_connected]

    async def wait_for_tick(self) -> None:
        loop = asyncio.get_running_loop()
        turn_deadline = loop.time() + self.turn_timeout
        while True:
            if self.paused:
                if self.step_requests > 0:
                    self.step_requests -= 1
                    return
                await self._wait(None)
                turn_deadline = loop.time() + self.turn_timeout
            elif self.tick_rate <= 0:
                if all(slot in self.pending for slot in self.players):
                    return
                remaining = turn_deadline - loop.time()
                if remaining <= 0:
                    late = sorted(set(self.players) - set(self.pending))
                    log(
                        f"tick {self.game.tick}: slot(s) {late} did not act within "
                        f"{self.turn_timeout:g} s; they stay"
                    )
                    return
                await self._wait(remaining)
            else:
                remaining = self.next_tick_at - loop.time()
                if remaining <= 0:
                    return
                await self._wait(remaining)

    async def run(self) -> int:
        missing = await self.wait_for_players()
        if missing:
            slot = missing[0]
            failure_uri = self.env.get("COGAME_PLAYER_FAILURE_URI")
            message = f"slot {slot} never connected within {self.connect_timeout:g} s"
            if failure_uri:
                log(f"{message}; writing player failure report")
                await asyncio.to_thread(
                    uris.write_json,
                    failure_uri,
                    {"message": message, "failed_policy_index": slot, "kind": "player_error"},
                )
                self.finished = True
                await self._close_everything({"type": "final", "aborted": True, "message": message})
                return 0
            log(f"{message}; playing on with idle slot(s) {missing}")

        loop = asyncio.get_running_loop()
        self.started = True
        started_at = time.perf_counter()
        log(f"episode started: {self.slots} slots, {self.game.max_ticks} ticks, tick_rate {self.tick_rate:g}")
        self.next_tick_at = loop.time() + (1.0 / self.tick_rate if self.tick_rate > 0 else 0.0)
        self.broadcast_observations()
        self.broadcast_state()
        while not self.game.done:
            await self.wait_for_tick()
            actions = [self.pending.get(slot, "stay") for slot in range(self.slots)]
            self.pending.clear()
            self.game.step(actions)
            if self.tick_rate > 0:
                self.next_tick_at = max(self.next_tick_at + 1.0 / self.tick_rate, loop.time() - 0.5)
            if not self.game.done:
                self.broadcast_observations()
            self.broadcast_state()

        results = self.game.results()
        replay = replay_bytes(self.game)
        replay_uri = self.env.get("COGAME_SAVE_REPLAY_URI")
        results_uri = self.env.get("COGAME_RESULTS_URI")
        if replay_uri:
            await asyncio.to_thread(
                uris.write_bytes,
                replay_uri,
                replay,
                "application/json",
                self.env.get("COGAME_SAVE_REPLAY_METHOD"),
            )
        results["episode_seconds"] = round(time.perf_counter() - started_at, 4)
        if results_uri:
            await asyncio.to_thread(
                uris.write_json, results_uri, results, self.env.get("COGAME_RESULTS_METHOD")
            )
        elapsed = time.perf_counter() - started_at
        self.results = results
        self.finished = True
        log(f"episode finished: scores={results['scores']} winner={results['winner']}")
        log(f"episode_seconds={elapsed:.4f}")

        final = self.state_message("final")
        await self._close_everything(final)
        return 0

    async def _close_everything(self, final: dict[str, Any]) -> None:
        final_text = dumps(final)
        for ws in list(self.players.values()):
            send_now(ws, final_text)
        state_text = dumps({**final, "type": "state", "done": True})
        if self.viewers:
            broadcast(self.viewers | self.admins, state_text)
            self.final_state_served.set()
        await _close_all(list(self.players.values()))
        if not self.viewer_seen and not self.final_state_served.is_set() and self.final_linger > 0:
            # Runners may connect to /global only after starting the players; on a fast episode that can be
            # after the end. When no viewer came during the episode, stay reachable briefly so such a late
            # viewer still gets the final state. A runner that already looked at /global needs no wait.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.final_state_served.wait(), self.final_linger)
        await _close_all(list(self.viewers | self.admins))


async def _close_all(connections: list[ServerConnection]) -> None:
    if connections:
        with contextlib.suppress(TimeoutError):
            closers = [ws.close(1000, "episode over") for ws in connections]
            await asyncio.wait_for(asyncio.gather(*closers, return_exceptions=True), 3)


def _policy_names(raw: str | None, slots: int) -> list[str] | None:
    if not raw:
        return None
    try:
        names = json.loads(raw)
    except ValueError:
        return None
    if isinstance(names, list) and len(names) == slots and all(isinstance(name, str) for name in names):
        return names
    return None


# --------------------------------------------------------------------------------------------------
# Replay mode
# --------------------------------------------------------------------------------------------------
class ReplayServer:
    def __init__(self, env: dict[str, str]) -> None:
        self.default_uri = env.get("COGAME_LOAD_REPLAY_URI") or None
        self.pages = _load_pages()
        self.cache: dict[str, dict[str, Any]] = {}
        self.loaded: dict[ServerConnection, dict[str, Any]] = {}

    async def load(self, uri: str) -> dict[str, Any]:
        if uri not in self.cache:
            payload = await asyncio.to_thread(uris.read_json, uri)
            if not isinstance(payload, dict) or "frames" not in payload:
                raise ValueError("not an Orchard replay")
            self.cache = {uri: payload}  # keep only the latest replay in memory
        return self.cache[uri]

    async def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path, query = split_request(request)
        if path == "/healthz":
            return text_response(200, "ok\n")
        if path == "/client/replay":
            return html_response(self.pages[path])
        if path == "/replay":
            uri = query.get("uri") or self.default_uri
            if not uri:
                return text_response(400, "missing ?uri= (and no COGAME_LOAD_REPLAY_URI)\n")
            try:
                self.loaded[connection] = await self.load(uri)
            except Exception as exc:
                log(f"cannot load replay {uri}: {exc}")
                return text_response(404, "replay not found or unreadable\n")
            return None
        return text_response(404, "not found\n")

    async def handler(self, ws: ServerConnection) -> None:
        payload = self.loaded.pop(ws, None)
        if payload is None:
            await ws.close(1008, "no replay")
            return
        frames = len(payload.get("frames", []))
        try:
            await ws.send(dumps({"type": "replay", **payload}))
            async for raw in ws:
                try:
                    message = json.loads(raw)
                    command = message.get("command") if isinstance(message, dict) else None
                except ValueError:
                    command, message = None, {}
                reply: dict[str, Any] = {"type": "control", "command": command}
                if command == "seek":
                    tick = message.get("tick", 0)
                    reply["tick"] = (
                        max(0, min(frames - 1, int(tick))) if isinstance(tick, (int, float)) else 0
                    )
                    reply["ok"] = True
                elif command == "speed":
                    reply["speed"] = message.get("speed")
                    reply["ok"] = True
                elif command in ("play", "pause"):
                    reply["ok"] = True
                else:
                    reply.update({"ok": False, "error": "commands: play, pause, seek {tick}, speed {speed}"})
                await ws.send(dumps(reply))
        except ConnectionClosed:
            pass


# --------------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------------
def load_config(env: dict[str, str]) -> dict[str, Any]:
    uri = env.get("COGAME_CONFIG_URI")
    if not uri:
        raise ConfigError("COGAME_CONFIG_URI is not set")
    try:
        config = uris.read_json(uri)
    except (uris.UriError, ValueError) as exc:
        raise ConfigError(f"cannot read config from {uri}: {exc}") from exc
    return validate_config(config, require_tokens=True)


async def _serve(app: EpisodeServer | ReplayServer, host: str, port: int, forever: bool) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with serve(
        app.handler,
        host,
        port,
        process_request=app.process_request,
        compression=None,
        ping_interval=20,
        ping_timeout=60,
        close_timeout=1,  # a peer that stopped reading must not hold the exit hostage
        max_size=2**20,
        server_header="orchard/0.1.0",
    ) as server:
        bound = sorted({sock.getsockname()[1] for sock in server.sockets})
        log(f"listening on {host}:{','.join(map(str, bound))} ({'replay' if forever else 'rollout'} mode)")
        if forever:
            await stop.wait()
            return 0
        assert isinstance(app, EpisodeServer)
        episode = asyncio.create_task(app.run())
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({episode, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if episode in done:
            stopper.cancel()
            return episode.result()
        episode.cancel()
        log("terminated before the episode finished")
        return 143


def main() -> int:
    env = dict(os.environ)
    host = env.get("COGAME_HOST") or "0.0.0.0"
    port = int(env.get("COGAME_PORT") or 8080)
    replay_mode = env.get("COGAME_REPLAY_SERVER") == "1" or bool(env.get("COGAME_LOAD_REPLAY_URI"))
    try:
        if replay_mode:
            return asyncio.run(_serve(ReplayServer(env), host, port, forever=True))
        try:
            config = load_config(env)
        except ConfigError as exc:
            print(f"orchard: invalid game config: {exc}", file=sys.stderr, flush=True)
            return 2
        log(f"config: {json.dumps(public_config(config), sort_keys=True)}")
        return asyncio.run(_serve(EpisodeServer(config, env), host, port, forever=False))
    finally:
        log.close()


if __name__ == "__main__":
    raise SystemExit(main())
