"""Static replay viewers (0.1.64 `game.replay_viewer`): the platform serves the bundle and the replay.

A bundle is a directory with `index.html` that reads the replay URL from `#replay=` (or `?replay=`)
and fetches it; no game process runs. We serve the bundle and one replay file from a loopback HTTP
server in a thread, at `/replay` next to the bundle (same origin, so the viewer's fetch needs no CORS).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

from coworld_pipeline.contract.manifest import CoworldManifest
from coworld_pipeline.runtime.base import Launched, LaunchSpec
from coworld_pipeline.runtime.errors import EpisodeFailure, ErrorType

REPLAY_PATH = "/replay"


def bundle_dir(manifest: CoworldManifest, package_dir: Path | None) -> Path | None:
    """The declared bundle as a local directory, or None when there is none to serve."""
    viewer = manifest.game.replay_viewer
    if viewer is None or package_dir is None:
        return None
    return (package_dir / viewer.bundle).resolve()


def require_bundle(directory: Path) -> None:
    if not (directory / "index.html").is_file():
        raise EpisodeFailure(
            ErrorType.REPLAY_FAILED,
            f"replay_viewer.bundle {directory} has no index.html: build the bundle first "
            "(`coworld build` does, with the package's tools/build_replay_viewer.sh)",
            phase="replay",
        )


class _Handler(SimpleHTTPRequestHandler):
    replay_file: Path

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == REPLAY_PATH:
            data = self.replay_file.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        return


class ViewerServer(Launched):
    """Serves a viewer bundle and one replay; a `Launched` so callers treat it like a replay server."""

    def __init__(self, directory: Path, replay_file: Path, logs: Path):
        require_bundle(directory)
        handler = type("BundleHandler", (_Handler,), {"replay_file": replay_file})
        self._server = ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(handler, directory=str(directory))
        )
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self._stopped = False
        self.spec = LaunchSpec(
            role="replay", name="replay-viewer", image="", run=[], env={}, stdout_path=logs / "viewer.log"
        )

    @property
    def host_port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def viewer_url(self) -> str:
        replay = f"{self.base_url}{REPLAY_PATH}"
        return f"{self.base_url}/index.html#replay={quote(replay, safe='')}"

    def poll(self) -> int | None:
        return 0 if self._stopped else None

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        with contextlib.suppress(Exception):
            self._server.shutdown()
            self._server.server_close()
        self._thread.join(timeout=5)
