"""Leagues and what they are made of: `league create/pause/resume`, leagues, divisions, memberships,
submissions."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from coworld_cli.league import render
from coworld_cli.league.options import AsJson, Db, DivisionFilter, Home, LeagueFilter, PolicyFilter, limit
from coworld_cli.league.session import check_status, league_service
from coworld_cli.output import fail_usage, parse_env_pairs, print_json, shortened
from coworld_pipeline.league.status import MembershipStatus

if TYPE_CHECKING:
    from coworld_pipeline.league.overview import LeagueOverview


def _config_value(key: str, raw: str, as_json: bool) -> Any:
    """One `--config KEY=VALUE`: VALUE as JSON, else (not JSON at all) as the string it is, so
    `--config mode=fast` means "fast". JSON beyond the contract's bounds (a 5000-digit integer,
    nesting thousands deep, more than 1 MiB) is refused naming the key: plain json.loads would
    raise ValueError or RecursionError on it."""
    from coworld_pipeline.contract.limits import MAX_DEPTH, parse_json_text, text_depth
    from coworld_pipeline.contract.problems import ContractError

    if text_depth(raw) <= MAX_DEPTH:  # shallow: the syntax check below cannot recurse too deep
        try:
            # Syntax only, numbers kept as text: a bare word is a string, not an error.
            json.loads(raw, parse_int=str, parse_float=str, parse_constant=str)
        except json.JSONDecodeError:
            return raw
    try:
        return parse_json_text(raw, f"--config {key}")
    except ContractError as exc:
        first = exc.problems[0] if exc.problems else None
        where = "" if first is None or first.path == "$" else f" (at {shortened(first.path)})"
        fail_usage(f"--config {shortened(key)}: {first.message if first else 'invalid'}{where}", as_json)


def league_create(
    name: Annotated[str, typer.Argument(help="League name.")],
    coworld: Annotated[str, typer.Option("--coworld", "-c", help="Coworld id, name or name:version.")],
    variant: Annotated[
        list[str] | None, typer.Option("--variant", help="Variant id (repeatable; default: the first).")
    ] = None,
    commissioner: Annotated[
        str,
        typer.Option(
            "--commissioner",
            help="round-robin | swiss | elimination | adaptive (informative pairings; stops once the "
            "order is settled)",
        ),
    ] = "round-robin",
    episodes_per_pair: Annotated[
        int | None, typer.Option("--episodes-per-pair", min=1, help="Episodes per pairing.")
    ] = None,
    graduation: Annotated[
        str, typer.Option("--graduation", help="Moving between divisions: none | percentile | win-streak")
    ] = "none",
    promote_top_pct: Annotated[
        float, typer.Option("--promote-top-pct", min=0, max=100, help="percentile: top % move up.")
    ] = 10.0,
    relegate_bottom_pct: Annotated[
        float, typer.Option("--relegate-bottom-pct", min=0, max=100, help="percentile: bottom % move down.")
    ] = 10.0,
    streak_length: Annotated[
        int, typer.Option("--streak-length", min=1, help="win-streak: wins in a row to move up.")
    ] = 3,
    divisions: Annotated[
        int, typer.Option("--divisions", min=1, max=20, help="Number of division levels.")
    ] = 1,
    interval_minutes: Annotated[
        float | None, typer.Option("--interval-minutes", help="Round cadence (scheduler).")
    ] = None,
    config: Annotated[
        list[str] | None, typer.Option("--config", help="Game config override KEY=JSON (repeatable).")
    ] = None,
    infra_retries: Annotated[
        int, typer.Option("--infra-retries", min=0, help="Retries of infrastructure failures.")
    ] = 2,
    quarantine_after: Annotated[
        int, typer.Option("--quarantine-after", min=1, help="Consecutive player failures.")
    ] = 3,
    failed_slot_budget: Annotated[
        int, typer.Option("--failed-slot-budget", min=0, help="Failed seats per round.")
    ] = 20,
    episode_timeout: Annotated[
        float | None,
        typer.Option(
            "--episode-timeout",
            min=1,
            help="Seconds per episode (default: the manifest's episode_timeout_minutes, else 600).",
        ),
    ] = None,
    reporter: Annotated[
        str | None, typer.Option("--reporter", help="Run this reporter on every episode (id or 'default').")
    ] = None,
    grader: Annotated[
        str | None, typer.Option("--grader", help="Run this grader on every episode (id or 'default').")
    ] = None,
    diagnoser: Annotated[
        str | None, typer.Option("--diagnoser", help="Diagnose each policy after a round (id or 'default').")
    ] = None,
    db: Db = None,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """Create a league on an uploaded Coworld."""
    overrides = {
        key: _config_value(key, raw, as_json)
        for key, raw in parse_env_pairs(config or [], "--config", as_json).items()
    }
    settings: dict[str, Any] = {
        "graduation": graduation,
        "promote_top_pct": promote_top_pct,
        "relegate_bottom_pct": relegate_bottom_pct,
        "streak_length": streak_length,
    }
    if episodes_per_pair:
        settings["episodes_per_pair"] = episodes_per_pair
    with league_service(db, home, as_json, {"the league name": name, "--coworld": coworld}) as svc:
        lg = svc.create_league(
            name,
            coworld,
            variants=variant or None,
            commissioner=commissioner,
            commissioner_config=settings,
            divisions=divisions,
            interval_minutes=interval_minutes,
            config_overrides=overrides,
            failure_policy={
                "infra_retries": infra_retries,
                "quarantine_after": quarantine_after,
                "failed_slot_budget": failed_slot_budget,
                **({"episode_timeout_seconds": episode_timeout} if episode_timeout else {}),
            },
            roles={"reporter": reporter, "grader": grader, "diagnoser": diagnoser},
        )
    if as_json:
        print_json(lg.to_json())
        return
    render.line(
        "league {} created: {} ({}, variants {}, {} division(s))",
        lg.name,
        lg.id,
        lg.commissioner_key,
        ", ".join(lg.variants),
        len(lg.divisions),
    )


LeagueArgument = Annotated[str, typer.Argument(help="League id or name.")]


def set_paused(league: str, paused: bool, db: str | None, home: str | None, as_json: bool) -> None:
    with league_service(db, home, as_json, {"the league": league}) as svc:
        lg = svc.set_paused(league, paused)
    if as_json:
        print_json(lg.to_json())
    else:
        render.line("league {} " + ("paused" if paused else "resumed"), lg.name)


def league_pause(league: LeagueArgument, db: Db = None, home: Home = None, as_json: AsJson = False) -> None:
    """Stop opening new rounds (an open round still finishes)."""
    set_paused(league, True, db, home, as_json)


def league_resume(league: LeagueArgument, db: Db = None, home: Home = None, as_json: AsJson = False) -> None:
    """Open rounds again."""
    set_paused(league, False, db, home, as_json)


def leagues(
    league: Annotated[str | None, typer.Argument(help="Show one league (id or name).")] = None,
    db: Db = None,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """List leagues or show one."""
    with league_service(db, home, as_json, {"the league": league}) as svc:
        rows = svc.leagues(league)
        overviews = {o.league_id: o for o in ([svc.overview(league)] if league else svc.overviews())}
    if as_json:
        print_json(rows[0].to_json() if league else [lg.to_json() for lg in rows])
        return
    render.table(
        "leagues",
        [
            "id",
            "name",
            "coworld",
            "commissioner",
            "variants",
            "members",
            "paused",
            "last round",
            "next round",
        ],
        [
            [
                lg.id,
                lg.name,
                lg.coworld.label,
                lg.commissioner_key,
                ", ".join(lg.variants),
                render.counts(lg.memberships),
                lg.paused,
                _round_cell(overviews.get(lg.id)),
                overviews[lg.id].next_round if lg.id in overviews else None,
            ]
            for lg in rows
        ],
    )
    with_roles = [lg for lg in rows if lg.roles]
    if with_roles:
        render.table(
            "league roles",
            ["league", "roles"],
            [[lg.name, ", ".join(f"{kind} {ref}" for kind, ref in lg.roles.items())] for lg in with_roles],
        )


def _round_cell(overview: LeagueOverview | None) -> str | None:
    """`#3 running: 12/18 played, 2 failed`."""
    r = overview.current_round if overview else None
    return f"#{r.number} {r.status}: {r.progress}" if r else None


def league_overview(
    league: Annotated[str | None, typer.Argument(help="League id or name (default: every league).")] = None,
    db: Db = None,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """What to look at first: the current round's progress, failures and quarantines with their
    reasons, and when the next round opens (or why none will)."""
    with league_service(db, home, as_json, {"the league": league}) as svc:
        overviews = [svc.overview(league)] if league else svc.overviews()
    if as_json:
        print_json(overviews[0].to_json() if league else [o.to_json() for o in overviews])
        return
    for o in overviews:
        render_overview(o)


def render_overview(o: LeagueOverview) -> None:
    r = o.current_round
    render.table(
        f"league {o.league}",
        ["current round", "status", "progress", "started", "next round", "entrants"],
        [
            [
                r.key if r else None,
                r.status if r else None,
                r.progress if r else None,
                r.started_at if r else None,
                o.next_round,
                render.counts(o.entrants),
            ]
        ],
    )
    if o.failures:
        render.table(
            o.failures_title,
            ["episode", "error", "blame", "policy", "reason"],
            [[f.episode, f.error_type, f.blame, f.policy, f.message] for f in o.failures],
        )
    if o.quarantines:
        render.table(
            "quarantined",
            ["policy", "since", "reason"],
            [[q.policy, q.since, q.reason] for q in o.quarantines],
        )


def divisions(
    division: Annotated[str | None, typer.Argument(help="Show one division (div_…).")] = None,
    league: LeagueFilter = None,
    db: Db = None,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """List divisions (optionally of one league) or show one."""
    with league_service(db, home, as_json, {"the division id": division, "--league": league}) as svc:
        rows = svc.divisions(division_ref=division, league_ref=league)
    if as_json:
        print_json(rows[0].to_json() if division else [d.to_json() for d in rows])
        return
    render.table(
        "divisions",
        ["id", "league", "name", "level", "eligible members", "schedule"],  # not quarantined or retired
        [[d.id, d.league.name, d.name, d.level, d.member_count, d.round_schedule] for d in rows],
    )


def memberships(
    league: LeagueFilter = None,
    division: DivisionFilter = None,
    policy: PolicyFilter = None,
    status: Annotated[str | None, typer.Option("--status", help=" | ".join(MembershipStatus))] = None,
    active_only: Annotated[
        bool, typer.Option("--active-only", help="Only members that can be scheduled.")
    ] = False,
    max_rows: Annotated[int, limit(1000, "memberships")] = 1000,
    db: Db = None,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """League memberships with their status and reason."""
    refs = {"--league": league, "--division": division, "--policy": policy, "--status": status}
    check_status("--status", status, MembershipStatus, as_json)
    with league_service(db, home, as_json, refs) as svc:
        rows = svc.memberships(
            league_ref=league, division_ref=division, policy_ref=policy, status=status, limit=max_rows
        )
    if active_only:
        rows = [m for m in rows if m.is_active]
    if as_json:
        print_json([m.to_json() for m in rows])
        return
    render.table(
        "memberships",
        ["id", "league", "division", "policy", "status", "reason", "failures"],
        [
            [
                m.id,
                m.league.name,
                m.division.name,
                m.policy_version.label,
                m.status,
                m.status_reason,
                m.consecutive_failures,
            ]
            for m in rows
        ],
    )


def submissions(
    league: LeagueFilter = None,
    policy: PolicyFilter = None,
    max_rows: Annotated[int, limit(1000, "submissions")] = 1000,
    db: Db = None,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """League submissions."""
    with league_service(db, home, as_json, {"--league": league, "--policy": policy}) as svc:
        rows = svc.submissions(league_ref=league, policy_ref=policy, limit=max_rows)
    if as_json:
        print_json([s.to_json() for s in rows])
        return
    render.table(
        "submissions",
        ["id", "league", "policy", "status", "membership", "created"],
        [
            [
                s.id,
                s.league.name,
                s.policy_version.label,
                s.status,
                s.league_policy_membership_id,
                s.created_at,
            ]
            for s in rows
        ],
    )


def register(app: typer.Typer) -> None:
    league_app = typer.Typer(help="Create and manage leagues.", no_args_is_help=True)
    league_app.command("create")(league_create)
    league_app.command("pause")(league_pause)
    league_app.command("resume")(league_resume)
    league_app.command("overview")(league_overview)
    from coworld_cli import knowledge_cli  # `league stats` (DuckDB over the league_stats dataset)

    knowledge_cli.register_league(league_app)
    app.add_typer(league_app, name="league")
    app.command("leagues")(leagues)
    app.command("divisions")(divisions)
    app.command("memberships")(memberships)
    app.command("submissions")(submissions)
