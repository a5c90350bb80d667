"""Replay servers started on demand, shared by every browser asking for the same episode, stopped when idle.

Host processes must be started (and stopped) from one long-lived thread: the process runtime's
children die with the *thread* that forked them (PR_SET_PDEATHSIG), and the web app answers each
request on a thread of its own. So every start and stop runs on the one `replay-launcher` thread.

Idle means: no redirect to the replay for `idle_seconds` and no open TCP connection to its port
(a viewer tab keeps a websocket or its page fetches open while someone watches).
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coworld_pipeline.runtime.base import Launched
from coworld_pipeline.runtime.default_roles.common import InflateError, inflate
from coworld_pipeline.runtime.process_runtime import tcp_sockets


@dataclass(frozen=True)
class ReplaySource:
    """Everything needed to serve one episode's replay."""

    episode_id: str  # public id: the key of the session
    replay_file: Path | None  # local replay.json, None when only the artifact store has it
    manifest: dict[str, Any]
    source_dir: str | None  # the coworld's directory (process runtime cwd, static viewer bundle)
    fetch_replay: Any = None  # () -> bytes | None, for a replay kept only in the artifact store


@dataclass
class ReplaySession:
    episode_id: str
    server: Launched
    viewer_url: str
    workdir: Path
    stack: contextlib.ExitStack
    last_used: float = field(default_factory=time.monotonic)

    @property
    def alive(self) -> bool:
        return self.server.poll() is None


def open_connections(port: int) -> int:
    """ESTABLISHED TCP connections whose local port is `port` (Linux /proc; 0 where unreadable)."""
    return sum(1 for local, state, _ in tcp_sockets() if state == "01" and local == port)


class ReplaySessions:
    """One replay server per episode at most; started on first use, stopped after `idle_seconds` idle."""

    def __init__(self, runtime_name: str, idle_seconds: float, startup_timeout: float = 60.0):
        self.runtime_name = runtime_name
        self.idle_seconds = idle_seconds
        self.startup_timeout = startup_timeout
        self._sessions: dict[str, ReplaySession] = {}
        self._starting: dict[str, Future[ReplaySession]] = {}
        self._lock = threading.Lock()
        self._launcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="replay-launcher")
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap, name="replay-reaper", daemon=True)
        self._reaper.start()

    def viewer_url(self, source: ReplaySource) -> str:
        """The viewer URL of this episode's replay, starting its server if none is running."""
        with self._lock:
            session = self._sessions.get(source.episode_id)
            if session is not None and session.alive:
                session.last_used = time.monotonic()
                return session.viewer_url
            future = self._starting.get(source.episode_id)
            if future is None:
                future = self._launcher.submit(self._start, source)
                self._starting[source.episode_id] = future
        try:
            session = future.result()
        finally:
            with self._lock:
                self._starting.pop(source.episode_id, None)
        with self._lock:
            session.last_used = time.monotonic()
            self._sessions[source.episode_id] = session
        if self._stop.is_set():  # shutting down: close() stops what is in _sessions
            raise RuntimeError("the replay service is shutting down")
        return session.viewer_url

    def running(self) -> list[str]:
        with self._lock:
            return sorted(e for e, s in self._sessions.items() if s.alive)

    def _start(self, source: ReplaySource) -> ReplaySession:
        from coworld_pipeline.contract import parse_manifest
        from coworld_pipeline.runtime import make_runtime
        from coworld_pipeline.runtime.replay_server import serve_replay

        with self._lock:  # a server that exited on its own is replaced, never leaked
            stale = self._sessions.pop(source.episode_id, None)
        if stale is not None:
            self._close(stale)
        workdir = Path(tempfile.mkdtemp(prefix="coworld-serve-replay-"))
        stack = contextlib.ExitStack()
        stack.callback(shutil.rmtree, workdir, True)
        try:
            replay_file = self._local_replay(source, workdir)
            package = Path(source.source_dir) if source.source_dir else None
            runtime = make_runtime(self.runtime_name, base_dir=package)
            box = stack.enter_context(runtime.sandbox(secrets.token_hex(8), "replay"))
            server, url = serve_replay(
                box, parse_manifest(source.manifest), replay_file, workdir, self.startup_timeout, package
            )
            stack.callback(server.stop)
        except BaseException:
            stack.close()
            raise
        return ReplaySession(source.episode_id, server, url, workdir, stack)

    @staticmethod
    def _local_replay(source: ReplaySource, workdir: Path) -> Path:
        from coworld_pipeline.runtime.errors import EpisodeFailure, ErrorType

        if source.replay_file is not None and source.replay_file.is_file():
            return source.replay_file
        data = source.fetch_replay() if source.fetch_replay else None
        if data is None:
            raise EpisodeFailure(
                ErrorType.MISSING_REPLAY,
                f"the replay of {source.episode_id} is neither on disk nor in the artifact store",
            )
        if data[:1] not in (b"{", b"["):  # replay.json.z from the store
            try:  # bounded: a zlib bomb in the store must not take the viewer's memory
                data = inflate(data, f"the stored replay.json.z of {source.episode_id}")
            except InflateError as exc:
                raise EpisodeFailure(ErrorType.MISSING_REPLAY, str(exc)) from None
        path = workdir / "replay" / "replay.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def _reap(self) -> None:
        every = min(1.0, max(0.1, self.idle_seconds / 4))
        while not self._stop.wait(every):
            now = time.monotonic()
            idle: list[ReplaySession] = []
            with self._lock:
                for episode_id, session in list(self._sessions.items()):
                    if session.alive and open_connections(session.server.host_port):
                        session.last_used = now
                    elif not session.alive or now - session.last_used >= self.idle_seconds:
                        idle.append(self._sessions.pop(episode_id))
            for session in idle:
                with contextlib.suppress(RuntimeError):  # the launcher is already shut down
                    self._launcher.submit(self._close, session)

    @staticmethod
    def _close(session: ReplaySession) -> None:
        with contextlib.suppress(Exception):  # stopping is best effort; the sandbox removes the rest
            session.stack.close()

    def close(self) -> None:
        """Stop every replay server (on shutdown), on the launcher thread that started them."""
        self._stop.set()
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            with contextlib.suppress(RuntimeError):
                self._launcher.submit(self._close, session)
        self._launcher.shutdown(wait=True, cancel_futures=False)
        with self._lock:  # started while shutting down: stopped here, the launcher is gone
            late, self._sessions = list(self._sessions.values()), {}
        for session in late:
            self._close(session)
        self._reaper.join(timeout=5)
