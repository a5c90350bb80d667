"""`coworld events`: the league's decisions, newest first, as the scheduler recorded them."""

from __future__ import annotations

from typing import Annotated

import typer

from coworld_cli.league import render
from coworld_cli.league.options import (
    AsJson,
    Db,
    DivisionFilter,
    Home,
    LeagueFilter,
    PolicyFilter,
    RoundFilter,
    limit,
)
from coworld_cli.league.session import league_service
from coworld_cli.output import err_console, print_json, shortened


def events(
    league: LeagueFilter = None,
    division: DivisionFilter = None,
    round_id: RoundFilter = None,
    event_type: Annotated[
        str | None,
        typer.Option("--event-type", "--type", help="Only this kind, e.g. round_opened, policy_quarantined."),
    ] = None,
    policy: PolicyFilter = None,
    max_rows: Annotated[int, limit(100000, "events")] = 50,
    db: Db = None,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """Scheduler decisions: rounds opened/refused, episodes scheduled/rejected/retried, quarantines, …"""
    refs = {
        "--league": league,
        "--division": division,
        "--round": round_id,
        "--event-type": event_type,
        "--policy": policy,
    }
    with league_service(db, home, as_json, refs) as svc:
        rows = svc.events(
            league_ref=league,
            round_ref=round_id,
            event_type=event_type,
            policy_ref=policy,
            division_ref=division,
            limit=max_rows,
        )
        # A misspelt type matches nothing: an empty table would read as "there are none".
        recorded = svc.event_types() if event_type and not rows else None
    if as_json:
        print_json([e.to_json() for e in rows])
        return
    if recorded is not None and event_type not in recorded:  # a note, not an error: it may come yet
        err_console.print(
            f"no event of type {shortened(event_type)!r} was ever recorded "
            f"(types recorded: {', '.join(recorded) or 'none'})",
            markup=False,
        )
    render.table(
        "events",
        ["id", "time", "type", "headline"],
        [[e.id, e.created_at, e.event_type, e.headline] for e in rows],
    )


def register(app: typer.Typer) -> None:
    app.command("events")(events)
