"""Typed resources: the league database, the episode runtime and the artifact store.

Each is a `ConfigurableResource` whose settings come from `dg.EnvVar`s (see `default_resources`), so
the UI shows where a value comes from and nothing is read from the environment at import time.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field, PrivateAttr

from coworld_pipeline.defs.league.settings import decimal, whole_number
from coworld_pipeline.runtime.artifacts import ArtifactStore, store_from_env, store_from_settings
from coworld_pipeline.runtime.base import ResourceLimits, role_limits

if TYPE_CHECKING:
    from coworld_pipeline.league.play import RuntimePlayer
    from coworld_pipeline.league.service import LeagueService


class LeagueResource(dg.ConfigurableResource):
    """The league database and commissioner (`coworld_pipeline.league.LeagueService`).

    Unset fields fall back to the platform defaults: SQLite under the platform home (`home.py`: the
    repo's `.coworld/` in a source checkout, else `~/.coworld`). The service is opened when a run, sensor or
    schedule starts using the resource and closed when it is done; nothing connects at load time.
    """

    database_url: str | None = Field(default=None, description="SQLAlchemy URL of the league database.")
    home: str | None = Field(default=None, description="Platform home directory (workspaces, SQLite).")
    _service: LeagueService | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._service = None  # opened on first use: a tick that needs no database opens none

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._service is not None:
            self._service.close()
            self._service = None

    def service(self) -> LeagueService:
        if self._service is None:
            from coworld_pipeline.league.service import LeagueService

            # Unset: the platform's one home rule (home.py), the same as the CLI's.
            self._service = LeagueService(database_url=self.database_url or None, home=self.home or None)
        return self._service


class EpisodeRuntimeResource(dg.ConfigurableResource):
    """How episodes are played: the runtime (`process` for the embedded demo, `docker` for images),
    how many episodes one run plays at the same time, and the per-container limits (docker)."""

    runtime: str = Field(default="process", description="Episode runtime: `process` or `docker`.")
    parallelism: int = Field(default=2, ge=1, description="Episodes a run plays concurrently.")
    game_cpus: float = Field(default=1.0, gt=0, description="CPUs of a game container.")
    game_memory: str = Field(default="1g", description="Memory of a game container (no swap).")
    player_cpus: float = Field(default=1.0, gt=0, description="CPUs of a player container.")
    player_memory: str = Field(default="1g", description="Memory of a player container (no swap).")
    pids_limit: int = Field(default=512, ge=1, description="Processes per container.")

    def limits(self) -> dict[str, ResourceLimits]:
        return role_limits(
            self.game_cpus, self.game_memory, self.player_cpus, self.player_memory, self.pids_limit
        )

    def player(self, artifact_store: ArtifactStore | None) -> RuntimePlayer:
        """The episode player of one run: its runtimes are built once and reused for every episode."""
        from coworld_pipeline.league.play import RuntimePlayer

        return RuntimePlayer(self.runtime, self.limits(), artifact_store)


class ArtifactStoreResource(dg.ConfigurableResource):
    """Where episode artifacts go: a local directory (default) or S3 / an S3-compatible server.

    With `kind="s3"` the game writes `results.json` and `replay.json` straight to presigned PUT URLs.
    Credentials come from the standard boto3 chain (`AWS_ACCESS_KEY_ID`, ...). Leave everything unset
    to use the `COWORLD_ARTIFACT_STORE` / `COWORLD_S3_*` environment (`runtime/artifacts.py`).
    """

    kind: str | None = Field(default=None, description="`local` or `s3`; unset: COWORLD_ARTIFACT_STORE.")
    root: str | None = Field(default=None, description="Local store directory.")
    bucket: str | None = Field(default=None, description="S3 bucket.")
    prefix: str | None = Field(default=None, description="Key prefix inside the bucket.")
    endpoint_url: str | None = Field(default=None, description="S3-compatible endpoint (MinIO, moto, ...).")
    region: str | None = Field(default=None, description="S3 region.")

    def store(self) -> ArtifactStore:
        if self.kind is None:
            return store_from_env()
        return store_from_settings(
            self.kind, self.root, self.bucket, self.prefix, self.endpoint_url, self.region
        )


def _env(name: str) -> dg.EnvVar | None:
    """`dg.EnvVar(name)` when it is set (resolved when the resource is used), else the field's default."""
    return dg.EnvVar(name) if os.environ.get(name) else None


def default_resources() -> dict[str, dg.ConfigurableResource]:
    runtime_settings = {
        "runtime": _env("COWORLD_RUNTIME"),
        # Read here, not through `dg.EnvVar.int`/`.float`: their placeholder value (0) fails the
        # fields' bounds when the resource is nested in another one (the knowledge resource nests
        # this one). Checked with the rest of the environment when the code location loads.
        "parallelism": whole_number("COWORLD_EPISODE_PARALLELISM"),
        "game_cpus": decimal("COWORLD_GAME_CPUS"),
        "game_memory": _env("COWORLD_GAME_MEMORY"),
        "player_cpus": decimal("COWORLD_PLAYER_CPUS"),
        "player_memory": _env("COWORLD_PLAYER_MEMORY"),
        "pids_limit": whole_number("COWORLD_PIDS_LIMIT"),
    }
    return {
        "league": LeagueResource(database_url=_env("COWORLD_DATABASE_URL"), home=_env("COWORLD_HOME")),
        "episode_runtime": EpisodeRuntimeResource(
            **{k: v for k, v in runtime_settings.items() if v is not None}
        ),
        "artifacts": ArtifactStoreResource(),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=default_resources())
