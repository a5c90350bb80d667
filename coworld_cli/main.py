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

try:  # the league commands live in their own module
    from coworld_cli import league_cli
except ImportError as exc:  # pragma: no cover - only while the league package is absent
    if "league_cli" not in str(exc):
        raise
else:
    league_cli.register(app)


def main() -> None:
    signals.install()
    app(prog_name="coworld")


if __name__ == "__main__":
    sys.exit(main())
