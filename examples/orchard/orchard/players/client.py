"""Minimal websocket client loop shared by the bundled players (stdlib + ``websockets``).

Protocol (see docs/player_protocol.md): the game sends ``{"type": "observation", ...}`` once per tick; the
player answers ``{"type": "action", "tick": <tick>, "move": "up|down|left|right|stay"}``. The game sends
``{"type": "final", ...}`` when the episode ends, then closes the socket.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError, InvalidHandshake, InvalidStatus

CONNECT_DEADLINE_SECONDS = 60.0
RECONNECT_DEADLINE_SECONDS = 15.0
USER_AGENT = "orchard-player/0.1.0"

Policy = Callable[[dict[str, Any]], str]


def log(name: str, message: str) -> None:
    print(f"[orchard-{name}] {message}", flush=True)


def player_url() -> str | None:
    return os.environ.get("COWORLD_PLAYER_WS_URL") or os.environ.get("COGAMES_ENGINE_WS_URL")


async def play(url: str, name: str, choose_action: Policy) -> int:
    """Connect, act on every observation, reconnect after abnormal drops. Returns the process exit code."""
    deadline = time.monotonic() + CONNECT_DEADLINE_SECONDS
    delay = 0.1
    ticks_played = 0
    while True:
        try:
            async with connect(
                url,
                ping_interval=None,
                ping_timeout=None,
                max_size=None,
                open_timeout=10,
                user_agent_header=USER_AGENT,
            ) as ws:
                log(name, f"connected to {url.split('?')[0]}")
                delay = 0.1
                async for raw in ws:
                    message = json.loads(raw)
                    kind = message.get("type")
                    if kind == "observation" and not message.get("done"):
                        move = choose_action(message)
                        await ws.send(json.dumps({"type": "action", "tick": message["tick"], "move": move}))
                        ticks_played += 1
                    elif kind == "final":
                        log(name, f"final: scores={message.get('scores')} after {ticks_played} actions")
                        return 0
                    elif kind == "error":
                        log(name, f"game error message: {message.get('message')}")
                log(name, "socket closed normally")
                return 0
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                log(name, f"game refused this slot/token (HTTP {status})")
                return 2
            log(name, f"handshake refused with HTTP {status}; retrying")
        except ConnectionClosedError as exc:
            log(name, f"connection dropped ({exc}); reconnecting")
            deadline = time.monotonic() + RECONNECT_DEADLINE_SECONDS
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            log(name, f"cannot connect yet ({type(exc).__name__}: {exc})")
        if time.monotonic() >= deadline:
            log(name, "giving up: game unreachable")
            return 1
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)


def run_player(name: str, choose_action: Policy) -> int:
    url = player_url()
    if not url:
        print("COWORLD_PLAYER_WS_URL is not set", file=sys.stderr, flush=True)
        return 2
    return asyncio.run(play(url, name, choose_action))
