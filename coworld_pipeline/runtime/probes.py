"""Network checks the runner makes against a game: health, client routes, token and replay probes.

Plain `http.client` for the HTTP checks: they are single GETs to a local game, and an HTTP client
library would add a tenth of a second to every CLI start-up. The websocket client is imported by
the checks that use it, and in the background while the game starts up (`wait_healthy`): its
import then neither delays the game's start nor the checks that follow.
"""

from __future__ import annotations

import contextlib
import http.client
import threading
import time
from urllib.parse import quote, urlsplit

from coworld_pipeline.runtime.base import Launched

OPEN_TIMEOUT = 5.0
SILENCE_WINDOW = 2.0


class ProbeFailed(Exception):
    pass


def _import_websockets() -> None:
    with contextlib.suppress(ImportError):
        import websockets.sync.client  # noqa: F401


def wait_healthy(game: Launched, timeout: float, path: str = "/healthz") -> None:
    """Poll `path` until it answers exactly 200; stop early when the game process exits."""
    threading.Thread(target=_import_websockets, daemon=True).start()  # for the checks that follow
    started = time.monotonic()
    deadline = started + timeout
    last = "no answer yet"
    next_port_look = started + 0.3
    pause = 0.002
    while True:
        if game.poll() is not None:
            raise ProbeFailed(f"exited with code {game.poll()} before {path} answered")
        try:
            status = http_status(game.base_url, path, timeout=1.0)
            if status == 200:
                return
            last = f"{path} answered {status}"
        except (OSError, http.client.HTTPException) as exc:
            last = f"{path}: {type(exc).__name__}"
            if time.monotonic() >= next_port_look:
                # Nothing on the given port yet: is the game listening elsewhere (a fixed port)?
                next_port_look = time.monotonic() + 0.3
                if game.adopt_listening_port():
                    continue
        now = time.monotonic()
        if now >= deadline:
            raise ProbeFailed(f"not healthy within {timeout:.0f} s ({last})")
        # Most games answer within a second or two: ask often then (a refused connection costs
        # next to nothing, and every poll interval is waiting added to the episode). From 2 ms
        # up to 10 ms, to 50 ms after 3 s (a loaded host), to 100 ms for a slow starter.
        time.sleep(pause)
        elapsed = now - started
        pause = min(pause * 1.5, 0.01 if elapsed < 3.0 else 0.05 if elapsed < 10.0 else 0.1)


def http_status(base_url: str, path: str, timeout: float) -> int:
    """The status of `GET base_url + path` (redirects are not followed; the body is read and dropped)."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def check_route(base_url: str, path: str, accept_redirect: bool = False) -> None:
    try:
        status = http_status(base_url, path, timeout=5.0)
    except (OSError, http.client.HTTPException) as exc:
        raise ProbeFailed(f"GET {path.split('?')[0]} failed: {type(exc).__name__}: {exc}") from None
    ok = 200 <= status < 300 or (accept_redirect and 300 <= status < 400)
    if not ok:
        raise ProbeFailed(f"GET {path.split('?')[0]} answered {status}")


def expect_refused(ws_url: str, what: str, refuse_statuses: tuple[int, ...]) -> None:
    """The connection must be refused (given statuses, or closed) and never send a message."""
    from websockets.exceptions import ConnectionClosed, InvalidStatus
    from websockets.sync.client import connect

    try:
        with connect(ws_url, open_timeout=OPEN_TIMEOUT, close_timeout=1) as ws:
            try:
                ws.recv(timeout=SILENCE_WINDOW)
            except TimeoutError:
                raise ProbeFailed(f"{what}: the connection stayed open for {SILENCE_WINDOW:.0f} s") from None
            except ConnectionClosed:
                return
            raise ProbeFailed(f"{what}: the game sent a message instead of refusing")
    except InvalidStatus as exc:
        status = exc.response.status_code
        if status not in refuse_statuses:
            raise ProbeFailed(
                f"{what}: handshake answered HTTP {status}, expected {refuse_statuses}"
            ) from None
    except (ConnectionClosed, OSError, TimeoutError):
        return
    except ProbeFailed:
        raise
    except Exception:
        return  # other handshake failures count as a refusal, as in the reference


def first_message(ws_url: str, timeout: float, what: str, ping: bool = False) -> str | bytes:
    """The first message a websocket sends; with `ping`, it must also answer a Ping (0.1.64)."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    try:
        with connect(ws_url, open_timeout=OPEN_TIMEOUT, close_timeout=1, max_size=None) as ws:
            msg = ws.recv(timeout=timeout)
            if ping and not ws.ping(b"coworld-ping").wait(timeout):
                raise ProbeFailed(f"{what}: no Pong for a WebSocket Ping within {timeout:.0f} s")
    except ProbeFailed:
        raise
    except TimeoutError:
        raise ProbeFailed(f"{what}: no message within {timeout:.0f} s") from None
    except InvalidStatus as exc:
        raise ProbeFailed(f"{what}: handshake answered HTTP {exc.response.status_code}") from None
    except Exception as exc:
        raise ProbeFailed(f"{what}: {type(exc).__name__}: {exc}") from None
    if not msg:
        raise ProbeFailed(f"{what}: the first message was empty")
    return msg


def ws_url(base_url: str, path: str) -> str:
    return base_url.replace("http://", "ws://", 1) + path


def replay_query(uri: str) -> str:
    return "uri=" + quote(uri, safe="")
