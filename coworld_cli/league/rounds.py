"""Rounds: `round run` plays one now; `rounds` lists them; `results` shows standings or rankings."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Any

import typer

from coworld_cli.league import render
from coworld_cli.league.options import (
    AsJson,
    Db,
    GameCpus,
    GameMemory,
    Home,
    LeagueFilter,
    LeagueRequired,
    Offset,
    PidsLimit,
    PlayerCpus,
    PlayerMemory,
    Runtime,
    limit,
)
from coworld_cli.league.session import (
    check_status,
    league_service,
    quick_standings,
    refuse_filters_with_id,
    reject_empty,
)
from coworld_cli.output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    console,
    err_console,
    fail_usage,
    limits_or_exit,
    print_json,
)
from coworld_pipeline.league.readable import looks_like_round
from coworld_pipeline.league.status import EpisodeStatus, RoundStatus

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from coworld_pipeline.league.play import Played
    from coworld_pipeline.league.runner import RoundRun
    from coworld_pipeline.league.service import LeagueService
    from coworld_pipeline.league.views import DivisionStandings, RankingView, RoundProgress
    from coworld_pipeline.runtime.base import ResourceLimits


class RoundProgressView:
    """A round as it is played: a bar of finished episodes, and a line per episode played here.

    The lines matter where the bar cannot be redrawn (output piped to a file or a CI log): there Rich
    prints the bar once, at the end, and the lines are the progress a reader sees.
    """

    def __enter__(self) -> RoundProgressView:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar: Progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.bar.start()
        self.task: TaskID = self.bar.add_task("round", total=None, detail="")
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def __call__(self, progress: RoundProgress, played: Played | None) -> None:
        total = sum(progress.counts.values())
        self.bar.update(
            self.task,
            total=total or None,
            completed=progress.finished,
            detail=render.counts(progress.counts),
            description=f"round {progress.status}",
        )
        if played is None:
            return
        if played.platform_error:
            from coworld_pipeline.league.ids import public

            render.line("[red]{}[/] not recorded: {}", public("ereq", played.ereq_id), played.platform_error)
        elif played.episode is not None:
            ep = played.episode
            outcome = render.seat_scores(ep) if ep.error is None else _error_line(ep.error)
            # Pending again after an attempt: an infrastructure failure the league retries.
            status = "will be retried" if ep.status == EpisodeStatus.PENDING else ep.status
            render.line("{} {}: {}  {}", ep.key or ep.id, status, render.seats(ep), outcome)


def _error_line(error: dict[str, Any]) -> str:
    message = str(error.get("message") or "").strip().splitlines()
    return f"{error.get('error_type')}" + (f" ({message[0]})" if message else "")


def _play(
    svc: LeagueService,
    league_id: str,
    parallel: int,
    runtime: str,
    limits: dict[str, ResourceLimits],
    as_json: bool,
) -> RoundRun:
    from coworld_pipeline.runtime.signals import Terminated

    store = None
    if os.environ.get("COWORLD_ARTIFACT_STORE"):  # as configured for the league's Dagster runs (S3, ...)
        from coworld_pipeline.runtime.artifacts import store_from_env

        store = store_from_env()
    settings: dict[str, Any] = {
        "parallel": parallel,
        "runtime_name": runtime,
        "limits": limits,
        "artifact_store": store,
    }
    try:
        if as_json:
            return svc.run_round(league_id, **settings)
        with RoundProgressView() as view:
            return svc.run_round(league_id, on_progress=view, **settings)
    except (KeyboardInterrupt, Terminated) as exc:
        # The episodes in flight were stopped; the round stays open for the next runner to finish.
        reason = str(exc) or "SIGINT"
        err_console.print(
            f"[bold red]interrupted[/] ({reason}): the round stays open; `coworld round run` resumes it"
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None


def _exit_code(run: RoundRun) -> int:
    """0 unless the round failed: 2 when it failed before any episode of it existed (the commissioner
    refused the league's settings, e.g. more episodes than a round may schedule: nothing ran, fix the
    settings), else 1 (it ran and failed, e.g. its failed-seat budget was spent)."""
    progress = run.progress
    if run.round_id is None or progress is None or progress.status != RoundStatus.FAILED:
        return 0
    return EXIT_FAILED if sum(progress.counts.values()) else EXIT_USAGE


def round_run(
    league: LeagueRequired,
    parallel: Annotated[int, typer.Option("--parallel", min=1, max=64, help="Episodes at once.")] = 1,
    runtime: Runtime = "process",
    game_cpus: GameCpus = 1.0,
    game_memory: GameMemory = "1g",
    player_cpus: PlayerCpus = 1.0,
    player_memory: PlayerMemory = "1g",
    pids_limit: PidsLimit = 512,
    db: Db = None,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """Run one round of a league now (or finish its open round) and print the rankings.

    Exit 1 when the round failed after episodes were scheduled, 2 when it failed before any was."""
    from coworld_pipeline.runtime import RUNTIMES

    if runtime not in RUNTIMES:
        fail_usage(f"unknown runtime {runtime!r} (choose: {', '.join(RUNTIMES)})", as_json)
    limits = limits_or_exit(game_cpus, game_memory, player_cpus, player_memory, pids_limit, as_json)
    rankings: list[RankingView] = []
    standings: list[DivisionStandings] = []
    with league_service(db, home, as_json, {"--league": league}) as svc:
        league_id = svc.resolve_league_id(league)  # an unknown league fails before the progress bar
        run = _play(svc, league_id, parallel, runtime, limits, as_json)
        if run.round_id:
            played = svc.round(run.round_id)
            rankings = svc.round_rankings(run.round_id)
            standings = svc.standings(run.league_id)
    out = run.to_json()
    if as_json:
        if run.round_id:
            out["rankings"] = [r.to_json() for r in rankings]
            out["standings"] = [g.to_json() for g in standings]
        print_json(out)
        raise typer.Exit(_exit_code(run))
    if run.round_id is None:
        render.line("no round opened: {}", run.refused)
        return
    status = out["status"] + (f" ({out['error']})" if out["error"] else "")
    render.line(
        "round {}: {} in {}s; episodes: {}",
        played.key,
        status,
        render.num(run.wall_seconds, 1),
        render.counts(played.episodes) or "none",
    )
    render.rankings_table("round rankings", rankings, played.episodes)
    render.standings_tables(standings, render.TABLE_ROWS)
    raise typer.Exit(_exit_code(run))


def rounds(
    round_id: Annotated[
        str | None,
        typer.Argument(help="Show one round with its results: LEAGUE.rN, rN with --league, or round_…."),
    ] = None,
    league: LeagueFilter = None,
    status: Annotated[str | None, typer.Option("--status", help=" | ".join(RoundStatus))] = None,
    max_rows: Annotated[int, limit(200, "rounds")] = 25,
    offset: Offset = 0,
    db: Db = None,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """List rounds or show one."""
    check_status("--status", status, RoundStatus, as_json)
    refuse_filters_with_id("a round id", round_id, {"--status": status, "--offset": offset}, as_json)
    with league_service(
        db, home, as_json, {"the round id": round_id, "--league": league, "--status": status}
    ) as svc:
        page = svc.rounds(round_ref=round_id, league_ref=league, status=status, limit=max_rows, offset=offset)
    if as_json:
        print_json(page.entries[0].to_json() if round_id else page.to_json())
        return
    render.table(
        "rounds",
        ["round", "league", "#", "status", "episodes", "failed seats", "started", "error"],
        [
            [
                r.key,
                r.league.name,
                r.round_number,
                r.status,
                render.counts(r.episodes),
                r.failed_slots,
                r.started_at,
                r.error,
            ]
            for r in page.entries
        ],
    )
    if not round_id:
        shown = len(page.entries)
        if shown:
            console.print(f"Rows {offset + 1}-{offset + shown} of {page.total_count}")
        else:  # past the end (or none at all): "Rows 0-99999999 of 2" read as if rows were there
            where = f" at --offset {offset} ({page.total_count} in all)" if page.total_count else ""
            console.print(f"No rows{where}")
        return
    one = page.entries[0]
    render.rankings_table("results", one.results or (), one.episodes)
    if one.graduation_changes:
        render.table(
            "graduation",
            ["membership", "from", "to", "reason"],
            [
                [g.membership_id, g.from_division_id, g.to_division_id, g.reason]
                for g in one.graduation_changes
            ],
        )


def results(
    target: Annotated[
        str,
        typer.Argument(help="A league (id or name), a division (div_…) or a round (LEAGUE.rN or round_…)."),
    ],
    max_rows: Annotated[
        int | None,
        typer.Option(
            "--limit",
            min=0,
            help=f"Rows per table (default {render.TABLE_ROWS}; 0: all). --json: every row unless given.",
        ),
    ] = None,
    db: Db = None,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """Standings of a league or division (openskill, mu - 3 sigma), or a round's rankings."""
    reject_empty(as_json, {"the league, division or round": target})
    if max_rows is None and not as_json:
        max_rows = render.TABLE_ROWS
    # League and division standings come straight from the database driver when it can serve them:
    # this is the command users repeat, and loading the service costs more than the query.
    # By shape, so `ladder.r<huge>` is reported as an unknown round, not an unknown league.
    is_round = target.startswith("round_") or looks_like_round(target)
    groups = None if is_round else quick_standings(db, home, target, as_json)
    rankings: list[RankingView] = []
    if groups is None:
        with league_service(db, home, as_json) as svc:
            if is_round:
                rankings = svc.round_rankings(target)
            elif target.startswith("div_"):
                groups = svc.standings(svc.divisions(target)[0].league.id, division_ref=target)
            else:
                groups = svc.standings(target)
    if groups is None:
        shown = render.first(rankings, max_rows)
        if as_json:
            print_json([r.to_json() for r in shown])
        else:
            render.rankings_table(f"round {target}", shown)
            render.more_rows(len(shown), len(rankings))
    elif as_json:
        print_json([g.to_json(max_rows) for g in groups])
    else:
        render.standings_tables(groups, max_rows)


def register(app: typer.Typer) -> None:
    round_app = typer.Typer(help="Run and inspect league rounds.", no_args_is_help=True)
    round_app.command("run")(round_run)
    app.add_typer(round_app, name="round")
    app.command("rounds")(rounds)
    app.command("results")(results)
