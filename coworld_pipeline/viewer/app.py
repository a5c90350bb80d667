"""The `coworld serve` web app over one league database: routes, episode lookup, reasons for a 404.

Episodes are named as everywhere else (public `ereq_...` ids or whatever else the league's episode
lookup accepts): the app asks `LeagueService.episode`, so it resolves exactly what the CLI resolves.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from coworld_pipeline.viewer import pages
from coworld_pipeline.viewer.pages import episode_path, text
from coworld_pipeline.viewer.replays import ReplaySessions, ReplaySource

if TYPE_CHECKING:
    from coworld_pipeline.league.service import LeagueService
    from coworld_pipeline.league.views import EpisodeView

RECENT_EPISODES = 50


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes = b""
    location: str | None = None


class Unavailable(Exception):
    """Nothing to show for this request: answered with a readable page (404 unless said otherwise)."""

    def __init__(
        self,
        title: str,
        reason: str,
        links: tuple[tuple[str, str], ...] = (),
        status: int = HTTPStatus.NOT_FOUND,
    ):
        super().__init__(reason)
        self.title, self.reason, self.links, self.status = title, reason, links, status


def readable_name(ep: EpisodeView) -> str:
    """`league.rN.eM` where the league has it, else the episode's id."""
    return ep.key or ep.id


def no_replay_reason(ep: EpisodeView) -> tuple[str, tuple[tuple[str, str], ...]]:
    """Why this episode has no replay to show, in words (and where to look instead)."""
    error = ep.error or {}
    name = readable_name(ep)
    detail = ": ".join(str(x) for x in (error.get("error_type"), error.get("message")) if x)
    if ep.status == "failed":
        return f"Episode {name} failed ({detail or 'no error recorded'}), so it has no replay.", ()
    if ep.status == "cancelled":
        why = f" ({detail})" if detail else ""
        return f"Episode {name} was cancelled before it was played to the end{why}: no replay.", ()
    if ep.status == "running":
        return (
            f"Episode {name} is being played right now; its replay appears when it ends.",
            (("watch it live", episode_path("live", ep.id)),),
        )
    if ep.status == "pending":
        return f"Episode {name} has not been played yet; its replay appears when it ends.", ()
    return f"Episode {name} ({ep.status}) has no stored replay.", ()


class ViewerApp:
    """Routes of the web app; `handle(path)` is all the HTTP layer calls."""

    def __init__(self, service: LeagueService, replays: ReplaySessions):
        self.service = service
        self.replays = replays
        self._coworlds: dict[str, tuple[dict[str, Any], str | None]] = {}
        self._lock = threading.Lock()

    def handle(self, raw_path: str) -> Answer:
        from sqlalchemy.exc import SQLAlchemyError

        from coworld_pipeline.league.errors import LeagueError
        from coworld_pipeline.runtime.errors import EpisodeFailure

        path = urlsplit(raw_path).path
        route, _, rest = path.strip("/").partition("/")
        handlers: dict[str, Callable[[str], Answer]] = {"replay": self.replay, "live": self.live}
        try:
            if path in ("/", "/index.html"):
                return Answer(HTTPStatus.OK, self.index())
            if route in handlers and rest and "/" not in rest:
                return handlers[route](unquote(rest))
            raise Unavailable("Not found", f"There is no page at {path}.")
        except Unavailable as exc:
            return Answer(exc.status, pages.not_available(exc.title, exc.reason, exc.links))
        except LeagueError as exc:
            return Answer(HTTPStatus.NOT_FOUND, pages.not_available("Not found", str(exc)))
        except EpisodeFailure as exc:
            reason = f"The replay server did not start ({exc.error_type.value}): {exc.message}"
            return Answer(HTTPStatus.BAD_GATEWAY, pages.not_available("Replay unavailable", reason))
        except SQLAlchemyError as exc:
            detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[:1] or ["(no message)"]
            reason = f"The league database failed: {detail[0]}"
            return Answer(HTTPStatus.SERVICE_UNAVAILABLE, pages.not_available("Database error", reason))
        except Exception as exc:  # a bug here: still one readable page, and the app keeps serving
            reason = f"{type(exc).__name__}: {exc}"
            return Answer(HTTPStatus.INTERNAL_SERVER_ERROR, pages.not_available("Internal error", reason))

    # ---- routes ---------------------------------------------------------------------------------

    def replay(self, ref: str) -> Answer:
        ep = self.service.episode(ref)
        if not ep.replay_path:
            reason, links = no_replay_reason(ep)
            raise Unavailable(f"No replay for {readable_name(ep)}", reason, links)
        return Answer(HTTPStatus.FOUND, location=self.replays.viewer_url(self.replay_source(ep)))

    def live(self, ref: str) -> Answer:
        from coworld_pipeline.league.live import live_url

        ep = self.service.episode(ref)
        name = readable_name(ep)
        if ep.status == "running":
            url = live_url(self.service.store, ep.id)
            if url:
                return Answer(HTTPStatus.FOUND, location=url)
            raise Unavailable(
                f"{name} is starting",
                f"Episode {name} is being set up; its live viewer is not up yet. Reload in a moment.",
            )
        if ep.replay_path:  # it has ended: its replay is the closest thing to watching it
            return Answer(HTTPStatus.FOUND, location=episode_path("replay", ep.id))
        reason, links = no_replay_reason(ep)
        raise Unavailable(f"{name} is not being played", reason, links)

    def index(self) -> bytes:
        leagues = self.service.leagues()
        names = {lg.id: lg.name for lg in leagues}
        league_rows = [
            [
                text(lg.name),
                text(f"{lg.coworld.name}:{lg.coworld.version}"),
                "paused" if lg.paused else "active",
                text(f"round {lg.last_round.number} ({lg.last_round.status})") if lg.last_round else "",
            ]
            for lg in leagues
        ]
        episode_rows = [
            [
                text(readable_name(ep)),
                text(names.get(ep.league_id, ep.league_id)),
                text(ep.status),
                text(", ".join(s.label or s.policy_version_id for s in ep.seats)),
                self._links(ep),
            ]
            for ep in self.service.episodes(limit=RECENT_EPISODES)
        ]
        body = (
            "<h2>Leagues</h2>"
            + (pages.table(["league", "coworld", "state", "last round"], league_rows) if leagues else "none")
            + "<h2>Recent episodes</h2>"
            + pages.table(["episode", "league", "status", "seats", "watch"], episode_rows)
        )
        return pages.page("Coworld leagues", body)

    @staticmethod
    def _links(ep: EpisodeView) -> str:
        if ep.replay_path:
            return f"<a href='{episode_path('replay', ep.id)}'>replay</a>"
        if ep.status == "running":
            return f"<a href='{episode_path('live', ep.id)}'>live</a>"
        return ""

    # ---- lookups --------------------------------------------------------------------------------

    def replay_source(self, ep: EpisodeView) -> ReplaySource:
        manifest, source_dir = self._coworld_of(ep.league_id)
        local = Path(ep.replay_path) if ep.replay_path and "://" not in ep.replay_path else None

        def fetch() -> bytes | None:
            from coworld_pipeline.runtime.artifacts import store_from_env

            store = store_from_env()
            return store.fetch(ep.id, "replay.json") or store.fetch(ep.id, "replay.json.z")

        return ReplaySource(ep.id, local, manifest, source_dir, fetch)

    def _coworld_of(self, league_id: str) -> tuple[dict[str, Any], str | None]:
        """The league's coworld manifest and directory (cached: a coworld version never changes)."""
        coworld_id = self.service.leagues(league_id)[0].coworld.id
        with self._lock:
            cached = self._coworlds.get(coworld_id)
        if cached is None:
            cw = next(c for c in self.service.coworlds() if c.id == coworld_id)
            cached = (self.service.coworld_manifest(cw.id), cw.source_dir)
            with self._lock:
                self._coworlds[coworld_id] = cached
        return cached


def make_server(app: ViewerApp, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            answer = app.handle(self.path)
            self.send_response(answer.status)
            if answer.location:
                self.send_header("Location", answer.location)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(answer.body)))
            self.send_header("Cache-Control", "no-store")  # a replay server's port changes per start
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(answer.body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server
