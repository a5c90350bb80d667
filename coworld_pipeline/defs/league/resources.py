"""Typed resources: the league database, the episode runtime and the artifact store."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field

from coworld_pipeline.defs.league.settings import SETTINGS
from coworld_pipeline.runtime.artifacts import ArtifactStore, store_from_env, store_from_settings

if TYPE_CHECKING:
    from coworld_pipeline.league.service import LeagueService

_services: dict[tuple[str | None, str | None], Any] = {}
_services_lock = threading.Lock()


class LeagueResource(dg.ConfigurableResource):
    """The league database and commissioner (`coworld_pipeline.league.LeagueService`).

    Unset fields fall back to the platform defaults: `COWORLD_DATABASE_URL`, else SQLite under the
    platform home (`COWORLD_HOME`, else `~/.coworld`). Nothing connects until first use, so the code
    location loads with no database running.
    """

    database_url: str | None = Field(default=None, description="SQLAlchemy URL of the league database.")
    home: str | None = Field(default=None, description="Platform home directory (workspaces, SQLite).")

    def service(self) -> LeagueService:
        """A process-wide `LeagueService` for these settings (created on first use)."""
        from coworld_pipeline.league.service import LeagueService

        key = (self.database_url, self.home)
        with _services_lock:
            service = _services.get(key)
            if service is None:
                service = LeagueService(database_url=self.database_url, home=self.home)
                _services[key] = service
            return service


class EpisodeRuntimeResource(dg.ConfigurableResource):
    """How episodes are played: the runtime (`process` for the embedded demo, `docker` for images)
    and how many episodes one run plays at the same time."""

    runtime: str = Field(default="process", description="Episode runtime: `process` or `docker`.")
    parallelism: int = Field(default=2, ge=1, description="Episodes a run plays concurrently.")


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


def default_resources() -> dict[str, dg.ConfigurableResource]:
    return {
        "league": LeagueResource(
            database_url=os.environ.get("COWORLD_DATABASE_URL") or None,
            home=os.environ.get("COWORLD_HOME") or None,
        ),
        "episode_runtime": EpisodeRuntimeResource(runtime=SETTINGS.runtime, parallelism=SETTINGS.parallelism),
        "artifacts": ArtifactStoreResource(),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=default_resources())
