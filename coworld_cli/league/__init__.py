"""League commands: catalogue, leagues, rounds, episodes and events, one module per group.

Names and fields mirror the reference CLI (CLI.md §2-§4). Every command takes `--json` (printing the
league's views' `to_json()`), `--db URL` (or COWORLD_DATABASE_URL) and `--home DIR` (or
COWORLD_HOME). Bad input prints one clear line (plus each problem path of an invalid manifest) and
exits 2; nothing is changed.

    options.py    option aliases shared by every command
    session.py    opening the service; bad input -> one line, exit 2; database errors -> exit 1
    render.py     Rich tables and cell formatting (user text never parsed as markup)
    artifacts.py  an episode's files, local or in the artifact store
    catalogue.py  upload-coworld, coworlds, upload-policy, policies, submit
    leagues.py    league create/pause/resume, leagues, divisions, memberships, submissions
    rounds.py     round run, rounds, results
    episodes.py   episodes, episode-results, episode-logs, replays, replay-open
    events.py     events

Every command is a module-level function (callable directly, e.g. in a test); each module's
`register(app)` only adds its commands. Importing the package imports neither SQLAlchemy nor the
runtime: commands import what they use when they run.
"""

from __future__ import annotations

import typer

from coworld_cli.league import catalogue, episodes, events, leagues, rounds


def register(app: typer.Typer) -> None:
    for group in (catalogue, leagues, rounds, episodes, events):
        group.register(app)
