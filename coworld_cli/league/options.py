"""Option aliases shared by the league commands, so one flag means one thing with one help text.

They are `Annotated` types: a command declares `db: Db = None`, and the function keeps a real Python
default, so it can also be called directly (tests do) without Typer filling in its parameters.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

Db = Annotated[
    str | None,
    typer.Option(
        "--db", envvar="COWORLD_DATABASE_URL", help="Database URL (default: SQLite in the platform home)."
    ),
]
Home = Annotated[
    str | None,
    typer.Option(
        "--home",
        envvar="COWORLD_HOME",
        help="Platform home: database, episode workspaces (a checkout's .coworld/, else ~/.coworld).",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]

LeagueFilter = Annotated[str | None, typer.Option("--league", "-l", help="League id or name.")]
LeagueRequired = Annotated[str, typer.Option("--league", "-l", help="League id or name.")]
RoundFilter = Annotated[
    str | None, typer.Option("--round", "-r", help="Round: LEAGUE.rN, rN with --league, or round_….")
]
PolicyFilter = Annotated[
    str | None, typer.Option("--policy", "-p", help="Policy: NAME, NAME:vN or a policy version id.")
]
DivisionFilter = Annotated[str | None, typer.Option("--division", "-d", help="Division id (div_…).")]
# The bound keeps the number inside what the databases take (SQLite: 64-bit), far above any league's rows.
Offset = Annotated[
    int, typer.Option("--offset", min=0, max=10**9, help="Skip this many rows first (paging).")
]


def limit(maximum: int, what: str = "rows") -> Any:
    """`--limit`: the commands differ only in how many rows they allow."""
    return typer.Option("--limit", min=1, max=maximum, help=f"At most this many {what} (up to {maximum}).")


# Where league episodes run. No COWORLD_RUNTIME here: single episodes default to docker, a league
# round to process, and one variable must not silently change both.
Runtime = Annotated[str, typer.Option("--runtime", help="Where runnables run: process | docker.")]

# Container limits for `round run`, as `coworld run-episode` takes them (docker only).
GameCpus = Annotated[
    float, typer.Option("--game-cpus", envvar="COWORLD_GAME_CPUS", help="docker: CPUs of the game.")
]
GameMemory = Annotated[
    str,
    typer.Option("--game-memory", envvar="COWORLD_GAME_MEMORY", help="docker: memory of the game (1g)."),
]
PlayerCpus = Annotated[
    float, typer.Option("--player-cpus", envvar="COWORLD_PLAYER_CPUS", help="docker: CPUs per player.")
]
PlayerMemory = Annotated[
    str,
    typer.Option("--player-memory", envvar="COWORLD_PLAYER_MEMORY", help="docker: memory per player (1g)."),
]
PidsLimit = Annotated[
    int,
    typer.Option("--pids-limit", envvar="COWORLD_PIDS_LIMIT", min=1, help="docker: processes per container."),
]
