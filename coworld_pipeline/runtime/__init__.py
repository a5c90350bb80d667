"""One episode, Dagster-free: runtimes that start runnables, and the episode lifecycle on top.

Exports resolve lazily (PEP 562) so that importing a light submodule such as `signals` does not
pull in the whole lifecycle stack: CLI start-up time matters for short commands.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from coworld_pipeline.lazy import lazy_exports

if TYPE_CHECKING:
    from coworld_pipeline.runtime.base import ResourceLimits, Runtime
    from coworld_pipeline.runtime.episode import EpisodeLinks, EpisodeOptions, EpisodeOutcome, run_episode
    from coworld_pipeline.runtime.errors import EpisodeFailure, ErrorType

RUNTIMES = ("docker", "process")

_EXPORTS = {
    "ResourceLimits": "coworld_pipeline.runtime.base",
    "Runtime": "coworld_pipeline.runtime.base",
    "EpisodeLinks": "coworld_pipeline.runtime.episode",
    "EpisodeOptions": "coworld_pipeline.runtime.episode",
    "EpisodeOutcome": "coworld_pipeline.runtime.episode",
    "run_episode": "coworld_pipeline.runtime.episode",
    "EpisodeFailure": "coworld_pipeline.runtime.errors",
    "ErrorType": "coworld_pipeline.runtime.errors",
}


__getattr__ = lazy_exports(__name__, _EXPORTS)


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
