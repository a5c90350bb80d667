"""Entry point of the `coworld` command."""

from __future__ import annotations

import sys

import typer

from coworld_cli import episode_cli
from coworld_pipeline.runtime import signals

app = typer.Typer(
    name="coworld",
    help="Run Coworld episodes and leagues on your own machine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
episode_cli.register(app)

# Single-episode commands skip importing the league layer (SQLAlchemy, openskill, ...): it is most of
# the start-up time of a short `run-episode`.
EPISODE_COMMANDS = {"validate", "schema", "run-episode", "play", "certify", "replay", "janitor"}


def register_league_commands() -> None:
    from coworld_cli import league_cli

    league_cli.register(app)


def main() -> None:
    signals.install()
    if len(sys.argv) < 2 or sys.argv[1] not in EPISODE_COMMANDS:
        register_league_commands()
    app(prog_name="coworld")


if __name__ == "__main__":
    sys.exit(main())
