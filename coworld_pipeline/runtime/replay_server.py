"""`coworld replay`: serve a stored replay through the game's own replay viewer."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx

from coworld_pipeline.contract.manifest import CoworldManifest
from coworld_pipeline.runtime import probes
from coworld_pipeline.runtime.base import Launched, Sandbox
from coworld_pipeline.runtime.episode import start_replay_server
from coworld_pipeline.runtime.errors import EpisodeFailure, ErrorType

REPLAY_MOUNT = "/coworld-replay"


def materialize_replay(ref: str, workdir: Path) -> Path:
    """A local, decompressed replay file for any of: path, file://, http(s)://, .json.z, .json.gz."""
    parsed = urlparse(ref)
    workdir.mkdir(parents=True, exist_ok=True)
    if parsed.scheme in ("http", "https"):
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
    box: Sandbox, manifest: CoworldManifest, replay_file: Path, workdir: Path, timeout: float
) -> tuple[Launched, str]:
    """Start the replay server; return it and the viewer URL."""
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    replay_dir = replay_file.parent.resolve()
    server = start_replay_server(
        box, manifest, workdir, logs, timeout, readonly_dirs={REPLAY_MOUNT: replay_dir}
    )
    uri = box.readonly_uri(REPLAY_MOUNT, replay_dir, replay_file.name)
    return server, f"{server.base_url}/client/replay?{probes.replay_query(uri)}"
