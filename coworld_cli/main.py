"""Entry point of the `coworld` command."""

from __future__ import annotations

import sys

import typer

from coworld_pipeline.runtime import signals

app = typer.Typer(
    name="coworld",
    help="Run Coworld episodes and leagues on your own machine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each command group is imported only when one of its commands runs (both for --help): the episode
# group pulls in the runtime stack, the league group SQLAlchemy and the league service, and start-up
# time is most of what a short command costs.
EPISODE_COMMANDS = {"validate", "schema", "run-episode", "play", "certify", "replay", "janitor"}


def register_episode_commands() -> None:
    from coworld_cli import episode_cli

    episode_cli.register(app)


def register_league_commands() -> None:
    from coworld_cli import league_cli

    league_cli.register(app)


def main() -> None:
    signals.install()
    command = sys.argv[1] if len(sys.argv) > 1 else None
    if command is None or command.startswith("-") or command in EPISODE_COMMANDS:
        register_episode_commands()
    if command is None or command.startswith("-") or command not in EPISODE_COMMANDS:
        register_league_commands()
    app(prog_name="coworld")


if __name__ == "__main__":
    sys.exit(main())
