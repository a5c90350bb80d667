"""What both of Orchard's servers share: the log sink, the static pages and small HTTP/websocket helpers.

Only the standard library and ``websockets`` are used.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import urllib.parse
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection, broadcast
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from orchard import uris

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
def load_pages() -> dict[str, bytes]:
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
