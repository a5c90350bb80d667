"""`coworld replay`: serve a stored replay through the game's own replay viewer, or its static one."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from coworld_pipeline.contract.bounded_io import (
    LARGE_DOWNLOAD_SECONDS,
    FetchError,
    fetch_bounded,
    read_regular_file,
)
from coworld_pipeline.contract.manifest import CoworldManifest
from coworld_pipeline.runtime import probes
from coworld_pipeline.runtime.base import Launched, LaunchSpec, Sandbox
from coworld_pipeline.runtime.default_roles.common import MAX_REPLAY_BYTES, InflateError, inflate
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


# What `coworld replay` accepts: a replay document, nothing else. A local file must be named like
# one (the suffixes the platform writes) and every replay, local or downloaded, must decompress (by
# suffix, else by its magic bytes) and parse as a JSON object or array. So `coworld replay /etc/passwd`
# is refused before any server starts, and no other file is ever served.
REPLAY_SUFFIXES = (".json", ".json.z", ".json.gz")


def _not_a_replay(message: str) -> EpisodeFailure:
    return EpisodeFailure(ErrorType.MISSING_REPLAY, message, phase="replay")


def _decompress(data: bytes, name: str) -> bytes:
    gz = name.endswith(".json.gz") or (not name.endswith(".json") and data[:2] == b"\x1f\x8b")
    z = name.endswith(".json.z") or (
        not name.endswith((".json", ".json.gz")) and len(data) > 1 and data[0] == 0x78
    )
    if gz or z:
        try:
            data = inflate(data, name, MAX_REPLAY_BYTES, "gzip" if gz else "zlib")
        except InflateError as exc:
            raise _not_a_replay(f"{name} is not a replay: it {exc.reason}") from None
    if len(data) > MAX_REPLAY_BYTES:
        raise _not_a_replay(f"{name} is not a replay: larger than {MAX_REPLAY_BYTES >> 20} MiB")
    return data


def _check_replay_document(data: bytes, name: str) -> None:
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _not_a_replay(f"{name} is not a replay: its content is not JSON") from None
    if not isinstance(document, dict | list):
        raise _not_a_replay(f"{name} is not a replay: a replay is a JSON object or array")


def materialize_replay(ref: str, workdir: Path) -> Path:
    """A local, decompressed copy of a replay given as a path, file://, http(s)://, .json.z or .json.gz.

    Raises EpisodeFailure(MISSING_REPLAY) naming what is wrong when `ref` is not a replay.
    """
    parsed = urlparse(ref)
    if parsed.scheme in ("http", "https"):
        try:
            data = fetch_bounded(ref, MAX_REPLAY_BYTES, LARGE_DOWNLOAD_SECONDS)
        except FetchError as exc:
            raise EpisodeFailure(ErrorType.MISSING_REPLAY, f"cannot download {exc}") from None
        name = Path(parsed.path).name or "replay"
        if len(data) > MAX_REPLAY_BYTES:  # refused before decompressing: its download stopped here
            raise _not_a_replay(f"{ref} is not a replay: larger than {MAX_REPLAY_BYTES >> 20} MiB")
    elif parsed.scheme in ("", "file") or len(parsed.scheme) == 1:  # one letter: a Windows drive
        path = Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(ref)
        if not path.name.endswith(REPLAY_SUFFIXES):
            raise _not_a_replay(
                f"{path} is not a replay file: give a {', '.join(REPLAY_SUFFIXES)} replay "
                "(an episode's replay.json or replay.json.z)"
            )
        if not path.is_file():
            raise EpisodeFailure(ErrorType.MISSING_REPLAY, f"no replay file at {path}")
        if path.stat().st_size > MAX_REPLAY_BYTES:
            raise _not_a_replay(f"{path} is not a replay: larger than {MAX_REPLAY_BYTES >> 20} MiB")
        data, name = read_regular_file(path, MAX_REPLAY_BYTES), path.name
    else:
        raise _not_a_replay(f"{ref}: a replay is a local path, a file:// or an http(s):// URL")
    data = _decompress(data, name)
    _check_replay_document(data, name)
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / "replay.json"
    out.write_bytes(data)
    return out


@contextlib.contextmanager
def replay_workdir() -> Iterator[Path]:
    """A private temporary directory for one replay server (its replay copy and logs), removed on
    every way out: normal exit, error, Ctrl-C or SIGTERM (those arrive as exceptions, signals.py)."""
    workdir = Path(tempfile.mkdtemp(prefix="coworld-replay-"))
    try:
        yield workdir
    finally:
        with shielded():
            shutil.rmtree(workdir, ignore_errors=True)


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
