"""Links from the Dagster UI to `coworld serve` (coworld_pipeline/viewer/): an episode's replay, or its
live viewer while it is played. The serve app is found at COWORLD_SERVE_URL (`make demo` starts it at
the default, http://127.0.0.1:3001)."""

from __future__ import annotations

import os
from urllib.parse import quote

import dagster as dg

from coworld_pipeline.league.views import EpisodeView

SERVE_URL_ENV = "COWORLD_SERVE_URL"
DEFAULT_SERVE_URL = "http://127.0.0.1:3001"


def serve_url() -> str:
    return (os.environ.get(SERVE_URL_ENV) or DEFAULT_SERVE_URL).rstrip("/")


def episode_url(route: str, episode_id: str) -> str:
    return f"{serve_url()}/{route}/{quote(episode_id, safe='')}"


def episode_links(episode: EpisodeView) -> dict[str, dg.MetadataValue]:
    """`replay` only when the episode has one; `live` only while it is being played."""
    if episode.replay_path:
        return {"replay": dg.MetadataValue.url(episode_url("replay", episode.id))}
    if episode.status == "running":
        return {"live": dg.MetadataValue.url(episode_url("live", episode.id))}
    return {}


def replay_md(episode: EpisodeView) -> str:
    """` ([replay](URL))` for a markdown line about an episode that has a replay, else ``."""
    return f" ([replay]({episode_url('replay', episode.id)}))" if episode.replay_path else ""
