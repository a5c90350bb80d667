"""Artifact stores: where an episode's files live after it has been played.

Usage (league layer, CLI, Dagster assets)::

    from coworld_pipeline.runtime.artifacts import store_from_env

    store = store_from_env()                      # COWORLD_ARTIFACT_STORE=local (default) | s3
    uris = store.game_output_uris(ereq_id)        # S3: presigned PUT URLs the GAME writes to; local: None
    fetch = store.output_fetcher(ereq_id)         # S3: pulls what the game wrote; local: None
    ... run_episode(..., EpisodeOptions(game_output_uris=uris, fetch_output=fetch)) ...
    uris = store.put_episode_dir(ereq_id, workspace)   # {"results.json": "s3://...", ...}

    store.list_files(ereq_id)                     # ["config.json", "logs/game.stderr.log", ...]
    store.fetch(ereq_id, "logs/policy_agent_0.log")   # bytes, or None when absent
    read_uri("s3://bucket/key" | "file:///..." | "https://...")  # any URI a store handed out

Names are paths relative to the episode workspace (CONTRACT §4.5), always with ``/`` separators.
Layout: ``<root>/episodes/<episode_id>/<name>`` (local) and ``s3://<bucket>/<prefix>/episodes/<episode_id>/<name>``.

Environment (``store_from_env``):

* ``COWORLD_ARTIFACT_STORE``: ``local`` (default) or ``s3``.
* ``COWORLD_ARTIFACT_DIR``: local root (default: the platform home ``$COWORLD_HOME``, else ``~/.coworld``, so
  that ``<home>/episodes/<ereq>`` — where the league plays episodes — *is* the store and nothing is copied).
* ``COWORLD_S3_BUCKET`` (required for s3), ``COWORLD_S3_PREFIX`` (default ``coworld``),
  ``COWORLD_S3_ENDPOINT_URL`` (S3-compatible servers: MinIO, moto, ...), ``COWORLD_S3_REGION``.
  Credentials come from the usual boto3 chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, profiles,
  roles).
"""

from __future__ import annotations

import os
import shutil
import threading
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from coworld_pipeline.contract.bounded_io import LARGE_DOWNLOAD_SECONDS, FetchError, fetch_bounded
from coworld_pipeline.home import platform_home
from coworld_pipeline.runtime.default_roles.common import MAX_REPLAY_BYTES
from coworld_pipeline.runtime.files import replace_whole

# Files the game itself writes (CONTRACT §3.1): output name as run_episode knows it -> workspace file name.
GAME_OUTPUTS = {"results": "results.json", "replay": "replay.json"}

CONTENT_TYPES = {
    ".json": "application/json",
    ".z": "application/x-compress",
    ".log": "text/plain",
    ".zip": "application/zip",
    ".parquet": "application/vnd.apache.parquet",
}

DEFAULT_PRESIGN_SECONDS = 6 * 3600


def content_type_for(name: str) -> str:
    return CONTENT_TYPES.get(Path(name).suffix, "application/octet-stream")


def _check_name(name: str) -> str:
    clean = name.replace("\\", "/").lstrip("/")
    parts = clean.split("/")
    if not clean or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"bad artifact name: {name!r}")
    return clean


def _check_episode_id(episode_id: str) -> str:
    if not episode_id or "/" in episode_id or "\\" in episode_id or episode_id in (".", ".."):
        raise ValueError(f"bad episode id: {episode_id!r}")
    return episode_id


def _workspace_files(workspace: Path) -> list[tuple[str, Path]]:
    files = []
    for path in sorted(Path(workspace).rglob("*")):
        if path.is_file() and not path.name.endswith(".tmp") and ".tmp-" not in path.name:
            files.append((path.relative_to(workspace).as_posix(), path))
    return files


@runtime_checkable
class ArtifactStore(Protocol):
    """Where episode artifacts are kept. Implementations are thread-safe."""

    kind: str

    def uri_for(self, episode_id: str, name: str) -> str:
        """Stable URI of one artifact (``file://...`` or ``s3://...``); it need not exist yet."""

    def put_episode_dir(self, episode_id: str, workspace: Path) -> dict[str, str]:
        """Store every file of a finished workspace; returns name -> URI."""

    def game_output_uris(self, episode_id: str) -> dict[str, str] | None:
        """URIs the game should write its outputs to directly (``{"results": ..., "replay": ...}``),
        or None when the game writes into the local workspace. Clears outputs of a previous attempt."""

    def output_fetcher(self, episode_id: str) -> Callable[[str], bytes | None] | None:
        """For ``EpisodeOptions.fetch_output``: returns the bytes the game wrote for "results"/"replay"."""

    def fetch(self, episode_id: str, name: str) -> bytes | None:
        """Bytes of one artifact, None when it does not exist."""

    def list_files(self, episode_id: str) -> list[str]:
        """Sorted artifact names of an episode (empty when none)."""

    def read_uri(self, uri: str) -> bytes:
        """Bytes behind a URI this store handed out (also ``http(s)://`` and ``file://``)."""

    def browse_url(self, uri: str) -> str:
        """A URL an operator can open (presigned GET for S3, the file URI locally)."""


class LocalArtifactStore:
    """Artifacts in a local directory: ``<root>/episodes/<episode_id>/<name>``."""

    kind = "local"

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).expanduser().resolve()

    def __repr__(self) -> str:
        return f"LocalArtifactStore({str(self.root)!r})"

    def episode_dir(self, episode_id: str) -> Path:
        return self.root / "episodes" / _check_episode_id(episode_id)

    def path_for(self, episode_id: str, name: str) -> Path:
        return self.episode_dir(episode_id) / _check_name(name)

    def uri_for(self, episode_id: str, name: str) -> str:
        return self.path_for(episode_id, name).as_uri()

    def put_episode_dir(self, episode_id: str, workspace: Path) -> dict[str, str]:
        workspace = Path(workspace).resolve()
        target = self.episode_dir(episode_id)
        uris: dict[str, str] = {}
        same_place = workspace == target
        for name, path in _workspace_files(workspace):
            dest = target / name
            if not same_place:  # streamed, not read whole: logs run to 64 MiB each
                replace_whole(dest, lambda tmp, src=path: shutil.copyfile(src, tmp))
            uris[name] = dest.as_uri()
        return uris

    def game_output_uris(self, episode_id: str) -> dict[str, str] | None:
        return None

    def output_fetcher(self, episode_id: str) -> Callable[[str], bytes | None] | None:
        return None

    def fetch(self, episode_id: str, name: str) -> bytes | None:
        try:
            return self.path_for(episode_id, name).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def list_files(self, episode_id: str) -> list[str]:
        directory = self.episode_dir(episode_id)
        if not directory.is_dir():
            return []
        return [name for name, _ in _workspace_files(directory)]

    def read_uri(self, uri: str) -> bytes:
        return read_uri(uri)

    def browse_url(self, uri: str) -> str:
        return uri


class S3ArtifactStore:
    """Artifacts in S3 or an S3-compatible server: ``s3://<bucket>/<prefix>/episodes/<episode_id>/<name>``.

    The game writes ``results.json`` and ``replay.json`` straight to presigned PUT URLs
    (``game_output_uris``); the runner pulls them back (``output_fetcher``) to validate them, and
    ``put_episode_dir`` uploads the rest of the workspace (config, logs, compressed replay, error info).
    """

    kind = "s3"

    def __init__(
        self,
        bucket: str,
        prefix: str = "coworld",
        endpoint_url: str | None = None,
        region: str | None = None,
        presign_seconds: int = DEFAULT_PRESIGN_SECONDS,
        create_bucket: bool = False,
    ):
        import boto3
        from botocore.config import Config

        if not bucket:
            raise ValueError("S3ArtifactStore needs a bucket")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url or None
        self.region = region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self.presign_seconds = presign_seconds
        self._client = boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            config=Config(
                signature_version="s3v4",
                retries={"max_attempts": 5, "mode": "standard"},
                max_pool_connections=32,
                # Path-style keeps presigned URLs valid for S3-compatible servers on localhost.
                s3={"addressing_style": "path" if self.endpoint_url else "auto"},
            ),
        )
        if create_bucket:
            self.ensure_bucket()

    def __repr__(self) -> str:
        endpoint = f", endpoint_url={self.endpoint_url!r}" if self.endpoint_url else ""
        return f"S3ArtifactStore({self.bucket!r}, {self.prefix!r}{endpoint})"

    def ensure_bucket(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError:
            kwargs: dict[str, Any] = {"Bucket": self.bucket}
            if self.region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
            self._client.create_bucket(**kwargs)

    def _episode_prefix(self, episode_id: str) -> str:
        base = f"{self.prefix}/" if self.prefix else ""
        return f"{base}episodes/{_check_episode_id(episode_id)}/"

    def key_for(self, episode_id: str, name: str) -> str:
        return self._episode_prefix(episode_id) + _check_name(name)

    def uri_for(self, episode_id: str, name: str) -> str:
        return f"s3://{self.bucket}/{self.key_for(episode_id, name)}"

    def put_episode_dir(self, episode_id: str, workspace: Path) -> dict[str, str]:
        uris: dict[str, str] = {}
        for name, path in _workspace_files(Path(workspace)):
            key = self.key_for(episode_id, name)
            self._client.put_object(
                Bucket=self.bucket, Key=key, Body=path.read_bytes(), ContentType=content_type_for(name)
            )
            uris[name] = f"s3://{self.bucket}/{key}"
        return uris

    def presigned_put(self, episode_id: str, name: str) -> str:
        # No ContentType in the signature: the game may send any Content-Type header.
        return self._client.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": self.key_for(episode_id, name)},
            ExpiresIn=self.presign_seconds,
            HttpMethod="PUT",
        )

    def presigned_get(self, uri: str, expires_in: int = 3600) -> str:
        bucket, key = _split_s3(uri)
        return self._client.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_in
        )

    def game_output_uris(self, episode_id: str) -> dict[str, str] | None:
        # A retried episode must never pick up what a previous attempt's game wrote.
        self._client.delete_objects(
            Bucket=self.bucket,
            Delete={"Objects": [{"Key": self.key_for(episode_id, n)} for n in GAME_OUTPUTS.values()]},
        )
        return {output: self.presigned_put(episode_id, name) for output, name in GAME_OUTPUTS.items()}

    def output_fetcher(self, episode_id: str) -> Callable[[str], bytes | None] | None:
        def fetch_output(output: str) -> bytes | None:
            return self.fetch(episode_id, GAME_OUTPUTS.get(output, output))

        return fetch_output

    def fetch(self, episode_id: str, name: str) -> bytes | None:
        return self._get(self.bucket, self.key_for(episode_id, name))

    def _get(self, bucket: str, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            response = self._client.get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise
        return response["Body"].read()

    def list_files(self, episode_id: str) -> list[str]:
        prefix = self._episode_prefix(episode_id)
        names: list[str] = []
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            names.extend(obj["Key"][len(prefix) :] for obj in page.get("Contents", []))
        return sorted(names)

    def read_uri(self, uri: str) -> bytes:
        if uri.startswith("s3://"):
            bucket, key = _split_s3(uri)
            data = self._get(bucket, key)
            if data is None:
                raise FileNotFoundError(uri)
            return data
        return read_uri(uri)

    def browse_url(self, uri: str) -> str:
        return self.presigned_get(uri) if uri.startswith("s3://") else uri


def _split_s3(uri: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"not an s3:// URI: {uri}")
    return parts.netloc, parts.path.lstrip("/")


def read_uri(uri: str) -> bytes:
    """Bytes behind ``file://``, a bare path, ``http(s)://`` or ``s3://`` (``store_from_env`` settings)."""
    scheme = urllib.parse.urlsplit(uri).scheme.lower()
    if scheme in ("http", "https"):
        # Capped and with an overall deadline: a URI may come from a user or a game's server.
        data = fetch_bounded(uri, MAX_REPLAY_BYTES, LARGE_DOWNLOAD_SECONDS)
        if len(data) > MAX_REPLAY_BYTES:
            raise FetchError(f"{uri}: larger than {MAX_REPLAY_BYTES >> 20} MiB")
        return data
    if scheme == "s3":
        store = store_from_env()
        if not isinstance(store, S3ArtifactStore):
            bucket, _ = _split_s3(uri)
            store = S3ArtifactStore(
                bucket,
                endpoint_url=os.environ.get("COWORLD_S3_ENDPOINT_URL"),
                region=os.environ.get("COWORLD_S3_REGION"),
            )
        return store.read_uri(uri)
    if scheme == "file":
        return Path(urllib.parse.unquote(urllib.parse.urlsplit(uri).path)).read_bytes()
    if scheme == "":
        return Path(uri).read_bytes()
    raise ValueError(f"unsupported artifact URI: {uri}")


def store_from_settings(
    kind: str = "local",
    root: str | os.PathLike[str] | None = None,
    bucket: str | None = None,
    prefix: str | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
) -> ArtifactStore:
    kind = (kind or "local").lower()
    if kind == "local":
        return LocalArtifactStore(root or platform_home())
    if kind == "s3":
        if not bucket:
            raise ValueError("the s3 artifact store needs a bucket (COWORLD_S3_BUCKET)")
        return S3ArtifactStore(
            bucket, prefix if prefix is not None else "coworld", endpoint_url=endpoint_url, region=region
        )
    raise ValueError(f"unknown artifact store {kind!r} (use local or s3)")


_env_cache: dict[tuple[str | None, ...], ArtifactStore] = {}
_env_lock = threading.Lock()


def store_from_env(environ: dict[str, str] | None = None) -> ArtifactStore:
    """The store configured by COWORLD_ARTIFACT_STORE & co (see the module docstring). Cached per settings."""
    env = os.environ if environ is None else environ
    settings = (
        env.get("COWORLD_ARTIFACT_STORE") or "local",
        env.get("COWORLD_ARTIFACT_DIR") or str(Path(env.get("COWORLD_HOME") or platform_home())),
        env.get("COWORLD_S3_BUCKET"),
        env.get("COWORLD_S3_PREFIX"),
        env.get("COWORLD_S3_ENDPOINT_URL"),
        env.get("COWORLD_S3_REGION"),
    )
    with _env_lock:
        store = _env_cache.get(settings)
        if store is None:
            kind, root, bucket, prefix, endpoint, region = settings
            store = store_from_settings(kind, root, bucket, prefix, endpoint, region)
            _env_cache[settings] = store
        return store
