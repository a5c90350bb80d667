"""League knowledge commands: `coworld optimize` and `coworld league stats`.

    coworld optimize --league L --policy NAME [--recent 5] [--optimizer ID] [--runtime process]
    coworld league stats L [--sql "SELECT policy, avg(try_cast(value AS DOUBLE)) FROM league_stats ..."]

`optimize` runs the league's coworld optimizer over the policy's recent succeeded episodes in the
league: their stored reports, grades and advice (what the league's roles made under Dagster), making
the missing ones first. `league stats` runs DuckDB SQL over the league's `league_stats` dataset
(`$COWORLD_HOME/stats/<league id>/round=<id>/part-0.parquet`, built by the Dagster asset) as the view
`league_stats` (columns ts, player, key, value, episode, policy, round).
Exit codes: 0 success, 1 the optimizer failed (its logs are kept), 2 bad input, 130 interrupted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from coworld_cli.output import EXIT_FAILED, EXIT_INTERRUPTED, console, err_console, fail_usage, print_json

Db = Annotated[str | None, typer.Option("--db", envvar="COWORLD_DATABASE_URL", help="League database URL.")]
Home = Annotated[str | None, typer.Option("--home", envvar="COWORLD_HOME", help="Platform home.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]
DEFAULT_SQL = "SELECT * FROM league_stats ORDER BY round, episode, ts LIMIT 20"


def _artifact_store(home: Path) -> Any:
    """The configured artifact store; locally, the league's own home (as the league plays there)."""
    import os

    from coworld_pipeline.runtime.artifacts import LocalArtifactStore, store_from_env

    local = os.environ.get("COWORLD_ARTIFACT_STORE", "local") == "local"
    if local and not os.environ.get("COWORLD_ARTIFACT_DIR"):
        return LocalArtifactStore(home)
    return store_from_env()


def optimize(
    league: Annotated[str, typer.Option("--league", "-l", help="League id or name.")],
    policy: Annotated[str, typer.Option("--policy", "-p", help="Policy name, name:vN or version id.")],
    recent: Annotated[
        int, typer.Option("--recent", min=1, max=1000, help="Recent episodes to learn from.")
    ] = 5,
    optimizer: Annotated[
        str | None, typer.Option("--optimizer", help="Optimizer id in the manifest, or 'default'.")
    ] = None,
    runtime: Annotated[
        str | None,
        typer.Option("--runtime", envvar="COWORLD_RUNTIME", help="docker | process (default docker)."),
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", min=1, help="Seconds per role run.")] = 300.0,
    db: Db = None,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """The optimizer's plan for a policy from its recent reports, grades and diagnoser advice."""
    from coworld_cli.league.session import league_service
    from coworld_pipeline.defs.knowledge.core import Knowledge
    from coworld_pipeline.runtime import RUNTIMES
    from coworld_pipeline.runtime.signals import Terminated

    name = runtime or "docker"
    if name not in RUNTIMES:
        fail_usage(f"--runtime must be one of {', '.join(RUNTIMES)} (got {name!r})", as_json)
    with league_service(db, home, as_json, {"--league": league, "--policy": policy}) as svc:
        kn = Knowledge(svc, _artifact_store(svc.store.home), name, timeout)
        try:
            outcome, uri, used = kn.optimize(league, policy, recent, optimizer)
        except ValueError as exc:
            fail_usage(str(exc), as_json)
        except (KeyboardInterrupt, Terminated):
            err_console.print("[bold red]interrupted[/]: everything started was removed")
            raise typer.Exit(EXIT_INTERRUPTED) from None
    if not outcome.ok:
        if as_json:
            print_json({"ok": False, **outcome.summary(), "episodes": used})
        else:
            err_console.print(
                f"[bold red]optimizer {escape(outcome.runnable_id)} failed[/]: {escape(str(outcome.error))}"
            )
            err_console.print(f"logs kept in: {escape(str(outcome.logs_dir))}")
        raise typer.Exit(EXIT_FAILED)
    if as_json:
        print_json({"ok": True, **outcome.summary(), "plan_uri": uri, "episodes": used})
        return
    console.print(
        f"[bold green]optimizer[/] {escape(outcome.runnable_id)} over {len(used)} episode(s) "
        f"in {outcome.wall_seconds:.2f}s: {escape(uri or '')}"
    )
    import json

    console.print(escape(json.dumps(dict(outcome.plan or {}), indent=2)))


def league_stats(
    league: Annotated[str, typer.Argument(help="League id or name.")],
    sql: Annotated[str, typer.Option("--sql", help="DuckDB SQL over the view `league_stats`.")] = DEFAULT_SQL,
    db: Db = None,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """DuckDB SQL over a league's event-log dataset (the `league_stats` Dagster asset)."""
    from coworld_cli.league.session import league_service
    from coworld_pipeline.defs.knowledge.core import STATS_QUERY_ROWS, StatsQueryError, query_stats, stats_dir

    if not sql.strip():
        fail_usage("--sql must not be empty", as_json)
    with league_service(db, home, as_json, {"the league": league}) as svc:
        view = svc.leagues(league)[0]
        root = stats_dir(svc.store.home, view.id)
    if not any(root.glob("round=*/*.parquet")):
        fail_usage(
            f"league {view.name} has no stats yet at {root} (the league_stats asset writes one "
            "partition per closed round of a league with a reporter: league create ... --reporter ID)",
            as_json,
        )
    try:
        result = query_stats(root, sql)
    except StatsQueryError as exc:
        fail_usage(str(exc), as_json)
    columns, rows = result.columns, result.rows
    cut = f"only the first {STATS_QUERY_ROWS:,} rows: add a LIMIT or aggregate" if result.truncated else ""
    if as_json:
        print_json([dict(zip(columns, row, strict=True)) for row in rows])
        if cut:
            err_console.print(f"note: {cut}", markup=False)
        return
    from rich.table import Table

    table = Table(*(escape(c) for c in columns), title=f"league_stats of {escape(view.name)}")
    for row in rows:
        table.add_row(*("" if v is None else escape(str(v)) for v in row))
    console.print(table)
    console.print(f"[dim]{len(rows)} row(s){'; ' + cut if cut else ''}; dataset: {escape(str(root))}[/]")


def register(app: typer.Typer) -> None:
    app.command("optimize")(optimize)


def register_league(league_app: typer.Typer) -> None:
    """`coworld league stats`: added to the `league` group by coworld_cli/league/leagues.py."""
    league_app.command("stats")(league_stats)
