"""`coworld replay`: serve a stored replay through the game's own replay viewer, or its static one."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from coworld_pipeline.contract.manifest import CoworldManifest
from coworld_pipeline.runtime import probes
from coworld_pipeline.runtime.base import Launched, LaunchSpec, Sandbox
from coworld_pipeline.runtime.dialects import GameDialect
from coworld_pipeline.runtime.errors import EpisodeFailure, ErrorType
from coworld_pipeline.runtime.signals import shielded

REPLAY_MOUNT = "/coworld-replay"


def log_tail(path: Path, limit: int = 4000) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-limit:].decode("utf-8", errors="replace")


def start_replay_server(
    box: Sandbox,
    manifest: Any,
    workspace: Path,
    logs: Path,
    startup_timeout: float,
    readonly_dirs: dict[str, Path] | None = None,
    replay_uri: str = "",
) -> Launched:
    """Start the game image in replay mode and wait for its health route.

    Both generations' triggers are set: COGAME_REPLAY_SERVER=1 (<= 0.1.11, replay named in `?uri=`)
    and COGAME_LOAD_REPLAY_URI (0.1.64, which loads that replay and ignores `?uri=`).
    """
    runnable = manifest.game.runnable
    dialect = GameDialect(manifest)
    spec = LaunchSpec(
        role="replay",
        name="replay",
        image=runnable.image,
        run=list(runnable.run),
        env={**runnable.env, **dialect.replay_env(replay_uri)},
        stdout_path=logs / "game.stdout.log",
        stderr_path=logs / "game.stderr.log",
        workspace=workspace,
        readonly_dirs=readonly_dirs or {},
        serve=True,
        port=dialect.port,
    )
    box.workspace = workspace
    with shielded():
        server = box.start(spec)
    try:
        probes.wait_healthy(server, dialect.startup_timeout(startup_timeout), dialect.health_path)
    except probes.ProbeFailed as exc:
        raise EpisodeFailure(
            ErrorType.REPLAY_FAILED,
            f"replay server {exc}",
            phase="replay",
            details={"game_stderr_tail": log_tail(logs / "game.stderr.log", 2000)},
        ) from None
    return server


def materialize_replay(ref: str, workdir: Path) -> Path:
    """A local, decompressed replay file for any of: path, file://, http(s)://, .json.z, .json.gz."""
    parsed = urlparse(ref)
    workdir.mkdir(parents=True, exist_ok=True)
    if parsed.scheme in ("http", "https"):
        import httpx  # only remote replays need it; CLI start-up stays light

        try:
            resp = httpx.get(ref, timeout=60, follow_redirects=True)
            resp.raise_for_status()
        except httpx.HTTPError as exc:
            raise EpisodeFailure(ErrorType.MISSING_REPLAY, f"cannot download {ref}: {exc}") from None
        data, name = resp.content, Path(parsed.path).name or "replay.json"
    else:
        path = Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(ref)
        if not path.is_file():
            raise EpisodeFailure(ErrorType.MISSING_REPLAY, f"no replay file at {path}")
        data, name = path.read_bytes(), path.name
    try:
        if name.endswith(".json.z"):
            data = zlib.decompress(data)
        elif name.endswith(".json.gz"):
            data = gzip.decompress(data)
    except (zlib.error, OSError) as exc:
        raise EpisodeFailure(ErrorType.MISSING_REPLAY, f"{name} does not decompress: {exc}") from None
    out = workdir / "replay.json"
    out.write_bytes(data)
    return out


def serve_replay(
    box: Sandbox,
    manifest: CoworldManifest,
    replay_file: Path,
    workdir: Path,
    timeout: float,
    package_dir: Path | None = None,
) -> tuple[Launched, str]:
    """Start the replay server (or serve the static viewer bundle); return it and the viewer URL."""
    from coworld_pipeline.runtime.viewer_bundle import ViewerServer, bundle_dir

    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    bundle = bundle_dir(manifest, package_dir)
    if bundle is not None:
        viewer = ViewerServer(bundle, replay_file, logs)
        return viewer, viewer.viewer_url
    replay_dir = replay_file.parent.resolve()
    uri = box.readonly_uri(REPLAY_MOUNT, replay_dir, replay_file.name)
    server = start_replay_server(
        box, manifest, workdir, logs, timeout, readonly_dirs={REPLAY_MOUNT: replay_dir}, replay_uri=uri
    )
    page = _replay_page(server.base_url, GameDialect(manifest))
    return server, f"{server.base_url}{page}?{probes.replay_query(uri)}"


def _replay_page(base_url: str, dialect: GameDialect) -> str:
    """The replay page of a running replay server: `/client/replay`, or `/clients/replay` (0.1.0)."""
    for prefix in sorted(("/client/", "/clients/"), key=lambda p: p != dialect.prefix):
        try:
            if probes.http_status(base_url, f"{prefix}replay", timeout=5.0) != 404:
                return f"{prefix}replay"
        except OSError:
            break
    return dialect.route("replay")
