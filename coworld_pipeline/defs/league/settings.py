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

import math
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


@dataclass(frozen=True)
class _Number:
    default: float
    minimum: float | None  # None: bounded elsewhere (container CPUs: role_limits)
    whole: bool = True


# Every numeric setting of the code location, with its default and bounds in this one place: read
# where it is used (`whole_number` / `decimal`) and checked all together at load (`check_environment`).
NUMBERS: dict[str, _Number] = {
    "COWORLD_EPISODES_PER_RUN": _Number(50, 1),
    "COWORLD_EPISODE_PARALLELISM": _Number(2, 1),
    "COWORLD_MAX_RUNS_PER_TICK": _Number(40, 1),
    "COWORLD_SENSOR_INTERVAL_SECONDS": _Number(5, 1),
    "COWORLD_ARCHIVE_PARTITIONS_ABOVE": _Number(100_000, 1),  # archive.py
    "COWORLD_ROLE_RETRIES": _Number(2, 0),  # knowledge/assets.py
    "COWORLD_ROLE_RETRY_DELAY_SECONDS": _Number(2.0, 0, whole=False),
    "COWORLD_ROLE_TIMEOUT_SECONDS": _Number(300.0, 1, whole=False),  # knowledge/resources.py
    "COWORLD_CELERY_VISIBILITY_TIMEOUT": _Number(600.0, 5, whole=False),  # celery_executor.py
    "COWORLD_GAME_CPUS": _Number(1.0, None, whole=False),  # resources.py
    "COWORLD_PLAYER_CPUS": _Number(1.0, None, whole=False),
    "COWORLD_PIDS_LIMIT": _Number(512, 1),
}


def _read(name: str) -> float:
    """The setting `name` of NUMBERS, or its default when unset. SettingsError names the variable
    when it is no number or out of bounds (NaN and infinity included: no timeout is either)."""
    spec = NUMBERS[name]
    raw = (os.environ.get(name) or "").strip()
    if not raw:
        return spec.default
    if spec.whole:
        assert spec.minimum is not None
        try:
            whole = int(raw)
        except ValueError:
            raise SettingsError(
                f"{name} must be a whole number >= {spec.minimum:g}, not {raw[:40]!r}"
            ) from None
        if whole < spec.minimum:
            raise SettingsError(f"{name} must be >= {spec.minimum:g}, not {whole}")
        return whole
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, not {raw[:40]!r}") from None
    if spec.minimum is not None and not spec.minimum <= value < math.inf:
        raise SettingsError(f"{name} must be a number >= {spec.minimum:g}, not {raw[:40]!r}")
    return value


def whole_number(name: str) -> int:
    assert NUMBERS[name].whole, name
    return int(_read(name))


def decimal(name: str) -> float:
    assert not NUMBERS[name].whole, name
    return float(_read(name))


def check_environment() -> None:
    """Every setting at once, when the code location loads: a bad one fails the load with a message
    naming each variable (the Dagster UI shows it on the code location), instead of failing every
    run later (container limits) or failing with a bare `invalid literal for int()`."""
    from coworld_pipeline.runtime import RUNTIMES
    from coworld_pipeline.runtime.base import LimitsError, role_limits

    problems: list[str] = []
    values: dict[str, float] = {}
    for name, spec in NUMBERS.items():
        try:
            values[name] = _read(name)
        except SettingsError as exc:
            problems.append(str(exc))
            values[name] = spec.default
    runtime = os.environ.get("COWORLD_RUNTIME") or "process"
    if runtime not in RUNTIMES:
        problems.append(f"COWORLD_RUNTIME must be one of {', '.join(RUNTIMES)}, not {runtime[:40]!r}")
    memory = {
        key: os.environ.get(f"COWORLD_{key.upper()}") or "1g" for key in ("GAME_MEMORY", "PLAYER_MEMORY")
    }
    try:
        role_limits(
            values["COWORLD_GAME_CPUS"],
            memory["GAME_MEMORY"],
            values["COWORLD_PLAYER_CPUS"],
            memory["PLAYER_MEMORY"],
            int(values["COWORLD_PIDS_LIMIT"]),
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
            episodes_per_run=whole_number("COWORLD_EPISODES_PER_RUN"),
            parallelism=whole_number("COWORLD_EPISODE_PARALLELISM"),
            max_runs_per_tick=whole_number("COWORLD_MAX_RUNS_PER_TICK"),
            sensor_interval_seconds=whole_number("COWORLD_SENSOR_INTERVAL_SECONDS"),
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
