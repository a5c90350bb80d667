"""Orchard's replay mode (``COGAME_REPLAY_SERVER=1`` or ``COGAME_LOAD_REPLAY_URI``): serves saved replays."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from orchard import uris
from orchard.web import dumps, html_response, load_pages, log, split_request, text_response


class ReplayServer:
    def __init__(self, env: dict[str, str]) -> None:
        self.default_uri = env.get("COGAME_LOAD_REPLAY_URI") or None
        self.pages = load_pages()
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
