"""Deployment settings read from the environment once, when the code location loads.

| variable | default | meaning |
| --- | --- | --- |
| `COWORLD_RUNTIME` | `process` | episode runtime: `process` (embedded demo) or `docker` |
| `COWORLD_EPISODES_PER_RUN` | `50` | K: episodes one Dagster run plays at most (one partition each) |
| `COWORLD_EPISODE_PARALLELISM` | `2` | p: episodes a run plays at once (more when pool slots are idle) |
| `COWORLD_MAX_RUNS_PER_TICK` | `40` | run requests one commissioner tick may emit (the rest: next ticks) |
| `COWORLD_SENSOR_INTERVAL_SECONDS` | `5` | commissioner sensor interval (the daemon loops every >= 5 s) |
| `COWORLD_ROUND_SCHEDULE` | `* * * * *` | cron of the schedule that opens rounds of due leagues |
| `COWORLD_LEASE_SECONDS` | `45` | a claim not renewed for this long is requeued (`league/claims.py`) |
| `COWORLD_DEMO` | on in a checkout without `COWORLD_HOME` | seed the orchard demo league on first tick |

Resource settings (read through `dg.EnvVar` by `resources.py`): `COWORLD_DATABASE_URL`,
`COWORLD_HOME`, `COWORLD_RUNTIME`, `COWORLD_EPISODE_PARALLELISM`, `COWORLD_GAME_CPUS`,
`COWORLD_GAME_MEMORY`, `COWORLD_PLAYER_CPUS`, `COWORLD_PLAYER_MEMORY`, `COWORLD_PIDS_LIMIT` (the
`coworld` CLI's variables too), and the artifact store's `COWORLD_ARTIFACT_STORE` / `COWORLD_S3_*`.

All of them but the database, the home and the artifact store are checked together when the code
location loads (`check_environment`; `COWORLD_LEASE_SECONDS` by league/claims.py): a bad value
fails the load with one message naming each variable, where it would otherwise fail every run that
plays an episode.

The number of episode runs executing at once is the `coworld_episodes` concurrency pool
(`dagster.yaml` `concurrency.pools.default_limit`, or `dagster instance concurrency set coworld_episodes N`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

EPISODE_POOL = "coworld_episodes"

TAG_ROUND = "coworld/round"
TAG_LEAGUE = "coworld/league"
TAG_KIND = "coworld/kind"  # "episodes" | "round_results" | "standings"
TAG_PARALLELISM = "coworld/parallelism"  # episodes a play_episodes run plays at once
TAG_RANGE_START = "dagster/asset_partition_range_start"
TAG_RANGE_END = "dagster/asset_partition_range_end"
TAG_PARTITION = "dagster/partition"


class SettingsError(ValueError):
    """Environment settings the code location cannot run with, each named by its variable."""


def env_int(name: str, default: int | None, minimum: int = 1) -> int | None:
    """A whole-number setting; `default` when unset. SettingsError names the variable otherwise."""
    raw = (os.environ.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number >= {minimum}, not {raw[:40]!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be >= {minimum}, not {value}")
    return value


def env_float(name: str) -> float | None:
    """A decimal setting (CPUs); None when unset. SettingsError names the variable otherwise."""
    raw = (os.environ.get(name) or "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, not {raw[:40]!r}") from None


def _int(name: str, default: int, minimum: int = 1) -> int:
    value = env_int(name, default, minimum)
    assert value is not None
    return value


def check_environment() -> None:
    """Every setting at once, when the code location loads: a bad one fails the load with a message
    naming each variable (the Dagster UI shows it on the code location), instead of failing every
    run later (container limits) or failing with a bare `invalid literal for int()`."""
    from coworld_pipeline.runtime import RUNTIMES
    from coworld_pipeline.runtime.base import LimitsError, role_limits

    problems: list[str] = []
    for name, minimum in (
        ("COWORLD_EPISODES_PER_RUN", 1),
        ("COWORLD_EPISODE_PARALLELISM", 1),
        ("COWORLD_MAX_RUNS_PER_TICK", 1),
        ("COWORLD_SENSOR_INTERVAL_SECONDS", 1),
    ):
        try:
            env_int(name, None, minimum)
        except SettingsError as exc:
            problems.append(str(exc))
    runtime = os.environ.get("COWORLD_RUNTIME") or "process"
    if runtime not in RUNTIMES:
        problems.append(f"COWORLD_RUNTIME must be one of {', '.join(RUNTIMES)}, not {runtime[:40]!r}")
    limits: dict[str, float | int | str | None] = {}
    for key in ("game_cpus", "player_cpus"):
        try:
            limits[key] = env_float(f"COWORLD_{key.upper()}")
        except SettingsError as exc:
            problems.append(str(exc))
            limits[key] = 1.0
    try:
        limits["pids_limit"] = env_int("COWORLD_PIDS_LIMIT", 512)
    except SettingsError as exc:
        problems.append(str(exc))
    try:
        role_limits(
            limits.get("game_cpus") or 1.0,
            os.environ.get("COWORLD_GAME_MEMORY") or "1g",
            limits.get("player_cpus") or 1.0,
            os.environ.get("COWORLD_PLAYER_MEMORY") or "1g",
            limits.get("pids_limit") or 512,
        )
    except LimitsError as exc:
        problems += [f"COWORLD_{key.upper()}: {why}" for key, why in exc.problems.items()]
    if problems:
        raise SettingsError("; ".join(problems))


def _flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class OrchestrationSettings:
    runtime: str = "process"
    episodes_per_run: int = 50
    parallelism: int = 2
    max_runs_per_tick: int = 40
    sensor_interval_seconds: int = 5
    round_schedule: str = "* * * * *"
    demo: bool = False

    @classmethod
    def from_env(cls) -> OrchestrationSettings:
        check_environment()
        return cls(
            runtime=os.environ.get("COWORLD_RUNTIME") or "process",
            episodes_per_run=_int("COWORLD_EPISODES_PER_RUN", 50),
            parallelism=_int("COWORLD_EPISODE_PARALLELISM", 2),
            max_runs_per_tick=_int("COWORLD_MAX_RUNS_PER_TICK", 40),
            sensor_interval_seconds=_int("COWORLD_SENSOR_INTERVAL_SECONDS", 5),
            round_schedule=os.environ.get("COWORLD_ROUND_SCHEDULE") or "* * * * *",
            demo=_flag("COWORLD_DEMO", False),
        )


SETTINGS = OrchestrationSettings.from_env()


def use_checkout_defaults() -> None:
    """Called by the code location before it loads the definitions: served from a source checkout
    with no home set, it plays the embedded demo league (as `make demo` does) unless COWORLD_DEMO says
    otherwise. Tests and other importers keep the plain defaults."""
    global SETTINGS
    from coworld_pipeline.home import source_checkout_home

    if source_checkout_home() and not os.environ.get("COWORLD_HOME") and not os.environ.get("COWORLD_DEMO"):
        SETTINGS = replace(SETTINGS, demo=True)
