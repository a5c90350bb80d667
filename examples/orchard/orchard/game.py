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
import signal
import sys
import time
from typing import Any

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from orchard import uris
from orchard.engine import MOVES, ConfigError, Orchard, public_config, replay_bytes, validate_config
from orchard.replay_mode import ReplayServer
from orchard.web import dumps, html_response, load_pages, log, send_now, split_request, text_response


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
        # A connected slot that sends no action for this long has stopped playing (0: never judged).
        self.silent_timeout = float(config["silent_player_timeout_seconds"])
        self.final_linger = float(config["final_linger_seconds"])
        self.pages = load_pages()

        self.players: dict[int, ServerConnection] = {}
        self.ever_connected: set[int] = set()
        self.pending: dict[int, str] = {}
        self.last_heard: dict[int, float] = {}  # loop time of each slot's last action (or connect)
        self.silent_reported: set[int] = set()
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
        self.last_heard[slot] = asyncio.get_running_loop().time()
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
        self.last_heard[slot] = asyncio.get_running_loop().time()
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

    def _hear_everyone(self, now: float) -> None:
        """Restart every connected slot's silence clock (the episode starts, or a pause ends)."""
        for slot in self.players:
            self.last_heard[slot] = now

    def _silence(self, now: float) -> tuple[int | None, float | None]:
        """A connected slot silent past the deadline, else the seconds until the next one could be."""
        if self.silent_timeout <= 0:
            return None, None
        soonest: float | None = None
        for slot in sorted(self.players):
            if slot in self.silent_reported or slot in self.pending:  # acted: waiting on the others
                continue
            left = self.last_heard.get(slot, now) + self.silent_timeout - now
            if left <= 0:
                return slot, None
            soonest = left if soonest is None else min(soonest, left)
        return None, soonest

    async def wait_for_tick(self) -> int | None:
        """Wait until the next tick is due; returns a slot found silent past its deadline instead."""
        loop = asyncio.get_running_loop()
        turn_deadline = loop.time() + self.turn_timeout
        while True:
            if self.paused:  # nobody is judged while paused: clocks restart when play goes on
                if self.step_requests > 0:
                    self.step_requests -= 1
                    self._hear_everyone(loop.time())
                    return None
                await self._wait(None)
                self._hear_everyone(loop.time())
                turn_deadline = loop.time() + self.turn_timeout
                continue
            silent, silence_left = self._silence(loop.time())
            if silent is not None:
                return silent
            if self.tick_rate <= 0:
                if all(slot in self.pending for slot in self.players):
                    return None
                remaining = turn_deadline - loop.time()
                if remaining <= 0:
                    late = sorted(set(self.players) - set(self.pending))
                    log(
                        f"tick {self.game.tick}: slot(s) {late} did not act within "
                        f"{self.turn_timeout:g} s; they stay"
                    )
                    return None
            else:
                remaining = self.next_tick_at - loop.time()
                if remaining <= 0:
                    return None
            await self._wait(remaining if silence_left is None else min(remaining, silence_left))

    async def report_player_failure(self, slot: int, message: str) -> bool:
        """End the episode with a player-failure report naming `slot`, when the platform asked for one."""
        failure_uri = self.env.get("COGAME_PLAYER_FAILURE_URI")
        if not failure_uri:
            return False
        log(f"{message}; writing player failure report")
        await asyncio.to_thread(
            uris.write_json,
            failure_uri,
            {"message": message, "failed_policy_index": slot, "kind": "player_error"},
        )
        self.finished = True
        await self._close_everything({"type": "final", "aborted": True, "message": message})
        return True

    async def run(self) -> int:
        missing = await self.wait_for_players()
        if missing:
            message = f"slot {missing[0]} never connected within {self.connect_timeout:g} s"
            if await self.report_player_failure(missing[0], message):
                return 0
            log(f"{message}; playing on with idle slot(s) {missing}")

        loop = asyncio.get_running_loop()
        self.started = True
        started_at = time.perf_counter()
        log(f"episode started: {self.slots} slots, {self.game.max_ticks} ticks, tick_rate {self.tick_rate:g}")
        self.next_tick_at = loop.time() + (1.0 / self.tick_rate if self.tick_rate > 0 else 0.0)
        self._hear_everyone(loop.time())
        self.broadcast_observations()
        self.broadcast_state()
        while not self.game.done:
            silent = await self.wait_for_tick()
            if silent is not None:
                message = (
                    f"slot {silent} connected but sent no action for {self.silent_timeout:g} s "
                    f"(tick {self.game.tick})"
                )
                if await self.report_player_failure(silent, message):
                    return 0
                log(f"{message}; it stays (no player failure report was asked for)")
                self.silent_reported.add(silent)
                continue
            actions = [self.pending.get(slot, "stay") for slot in range(self.slots)]
            acted = list(self.pending)
            self.pending.clear()
            self.game.step(actions)
            for slot in acted:  # its clock restarts at the next observation, not at its last answer
                self.last_heard[slot] = loop.time()
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
