"""One episode, Dagster-free: runtimes that start runnables, and the episode lifecycle on top."""

from __future__ import annotations

import os
from pathlib import Path

from coworld_pipeline.runtime.base import ResourceLimits, Runtime
from coworld_pipeline.runtime.episode import EpisodeLinks, EpisodeOptions, EpisodeOutcome, run_episode
from coworld_pipeline.runtime.errors import EpisodeFailure, ErrorType

RUNTIMES = ("docker", "process")


def default_runtime_name() -> str:
    return os.environ.get("COWORLD_RUNTIME", "docker")


def make_runtime(
    name: str | None = None, base_dir: Path | None = None, limits: dict[str, ResourceLimits] | None = None
) -> Runtime:
    """`process` runs `run` argvs on the host with cwd=base_dir; `docker` runs the images."""
    name = name or default_runtime_name()
    if name == "process":
        from coworld_pipeline.runtime.process_runtime import ProcessRuntime

        return ProcessRuntime(base_dir)
    if name == "docker":
        from coworld_pipeline.runtime.docker_runtime import DockerRuntime

        return DockerRuntime(limits)
    raise ValueError(f"unknown runtime {name!r}: choose one of {', '.join(RUNTIMES)}")


__all__ = [
    "RUNTIMES",
    "EpisodeFailure",
    "EpisodeLinks",
    "EpisodeOptions",
    "EpisodeOutcome",
    "ErrorType",
    "ResourceLimits",
    "Runtime",
    "make_runtime",
    "run_episode",
]
